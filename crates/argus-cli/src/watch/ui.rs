//! Draws a [`Model`]: the table of symbols and the status line.

use argus_tokio::ConnectionState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row as TableRow, Table};

use super::model::{Model, Row};

/// Width of the sparkline column, in cells.
const TREND: u16 = 24;

const UP: Color = Color::Green;
const DOWN: Color = Color::Red;
const DIM: Style = Style::new().fg(Color::DarkGray);

/// Draws one frame of `model` over the whole of `frame`.
pub fn render(frame: &mut Frame<'_>, model: &Model) {
    let [table, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    render_table(frame, table, model);
    frame.render_widget(Paragraph::new(status_line(model)), status);
}

fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

fn price(p: Option<f64>) -> String {
    p.map_or_else(|| "—".to_owned(), |p| format!("{p:.2}"))
}

fn row_cells(row: &Row) -> TableRow<'static> {
    let colour = match row.change() {
        Some(c) if c > 0.0 => Style::new().fg(UP),
        Some(c) if c < 0.0 => Style::new().fg(DOWN),
        _ => Style::new(),
    };
    let change = row
        .change()
        .map_or_else(|| "—".to_owned(), |c| format!("{c:+.2}"));
    let percent = row
        .change_percent()
        .map_or_else(|| "—".to_owned(), |c| format!("{c:+.2}%"));
    let volume = row.volume.map_or_else(|| "—".to_owned(), |v| v.to_string());
    TableRow::new([
        Cell::from(row.symbol.as_str().to_owned()).style(Style::new().add_modifier(Modifier::BOLD)),
        right(price(row.last)),
        right(change).style(colour),
        right(percent).style(colour),
        right(volume),
        right(price(row.bid.map(|l| l.price))),
        right(price(row.ask.map(|l| l.price))),
        Cell::from(row.sparkline(usize::from(TREND))).style(colour),
    ])
}

fn render_table(frame: &mut Frame<'_>, area: Rect, model: &Model) {
    let header = TableRow::new(
        [
            "Symbol", "Last", "Change", "Chg %", "Volume", "Bid", "Ask", "Trend",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            if (1..=6).contains(&i) {
                Cell::from(Line::from(h).right_aligned())
            } else {
                Cell::from(h)
            }
        }),
    )
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(TREND),
    ];
    let table = Table::new(model.rows().iter().map(row_cells), widths)
        .header(header)
        .column_spacing(1)
        .block(Block::bordered().title(format!(" argus watch · {} ", model.url())));
    frame.render_widget(table, area);
}

fn status_line(model: &Model) -> Line<'static> {
    let state = model.state();
    let colour = match state {
        ConnectionState::Connected => UP,
        ConnectionState::Connecting | ConnectionState::Reconnecting => Color::Yellow,
        ConnectionState::Error => DOWN,
        ConnectionState::Disconnected => Color::DarkGray,
    };
    let rtt = model.rtt().map_or_else(
        || "—".to_owned(),
        |rtt| format!("{:.1} ms", rtt.as_secs_f64() * 1000.0),
    );
    let mut spans = vec![
        Span::styled(format!(" ● {state}"), Style::new().fg(colour)),
        Span::styled("  │  ", DIM),
        Span::raw(format!("{:.0} msg/s", model.rate())),
        Span::styled("  │  ", DIM),
        Span::raw(format!("reconnects {}", model.reconnects())),
        Span::styled("  │  ", DIM),
        Span::raw(format!("gaps {}", model.gaps())),
        Span::styled("  │  ", DIM),
        Span::raw(format!("rtt {rtt}")),
    ];
    if model.missed_events() > 0 {
        spans.push(Span::styled("  │  ", DIM));
        spans.push(Span::styled(
            format!("missed events {}", model.missed_events()),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(problem) = model.problem() {
        spans.push(Span::styled("  │  ", DIM));
        spans.push(Span::styled(problem.to_owned(), Style::new().fg(DOWN)));
    }
    spans.push(Span::styled("  │  q quits", DIM));
    Line::from(spans)
}
