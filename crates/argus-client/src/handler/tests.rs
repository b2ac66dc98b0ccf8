//! Unit tests of the handler table.

use super::*;
use argus_core::{Gap, GapCause, MarketData};
use std::sync::atomic::AtomicUsize;

fn price(seq: u64) -> Event {
    let text = format!(
        r#"{{"type":"price","sub":"main","seq":{seq},"symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
    );
    let msg = argus_core::wire::ServerMessage::decode(&text).unwrap();
    Event::Data(
        MarketData::from_wire(&msg, SubscriptionId::new("main").unwrap())
            .unwrap()
            .unwrap(),
    )
}

/// Hands `event` to the inline handlers, as the delivery stage does.
fn inline(table: &HandlerTable, snapshot: &Snapshot, event: Event) -> bool {
    table.dispatch_inline(snapshot, Interest::of(&event), event)
}

fn gap() -> Event {
    Event::Gap(Gap {
        from: 2,
        to: Some(3),
        cause: GapCause::SeqJump,
    })
}

fn counter(seen: &Arc<AtomicUsize>, by: usize) -> impl FnMut(&MarketData) + use<> {
    let seen = seen.clone();
    move |_: &MarketData| {
        seen.fetch_add(by, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn every_form_and_where_it_runs() {
    let table = HandlerTable::new(QueuePolicy::Backpressure);
    let seen = Arc::new(AtomicUsize::new(0));
    let a = table.add(
        MessageKind::Price.into(),
        None,
        counter(&seen, 1).into_handler(),
    );
    let s = seen.clone();
    table.add(
        Interest::ALL,
        None,
        (move |e: Event| {
            if matches!(e, Event::Gap(_)) {
                s.fetch_add(10, Ordering::SeqCst);
            }
        })
        .into_handler(),
    );
    let s = seen.clone();
    table.add(
        Interest::DATA,
        None,
        (move |_: MarketData| {
            let s = s.clone();
            async move {
                tokio::task::yield_now().await;
                s.fetch_add(100, Ordering::SeqCst);
            }
        })
        .into_handler(),
    );
    let snapshot = table.snapshot();
    assert_eq!((snapshot.inline.len(), snapshot.queued.len()), (2, 1));
    assert!(inline(&table, &snapshot, price(1)));
    assert!(snapshot.queue_wants(Interest::PRICE, &price(1)));
    assert!(
        !snapshot.queue_wants(Interest::GAP, &gap()),
        "a data handler never sees a gap"
    );
    table.dispatch_queued(&snapshot, price(1)).await;
    inline(&table, &snapshot, gap());
    assert_eq!(seen.load(Ordering::SeqCst), 111);
    assert!(table.remove(a));
    assert!(!table.remove(a));
    assert_eq!(table.len(), 2);
}

#[test]
fn a_lossy_policy_queues_every_handler() {
    let table = HandlerTable::new(QueuePolicy::DropOldest);
    let seen = Arc::new(AtomicUsize::new(0));
    table.add(Interest::DATA, None, counter(&seen, 1).into_handler());
    let snapshot = table.snapshot();
    assert_eq!((snapshot.inline.len(), snapshot.queued.len()), (0, 1));
}

#[test]
fn removal_drops_the_closure_though_a_snapshot_still_lists_it() {
    let table = HandlerTable::new(QueuePolicy::Backpressure);
    let held = Arc::new(());
    let h = held.clone();
    let id = table.add(
        Interest::DATA,
        None,
        (move |_: &MarketData| {
            let _ = &h;
        })
        .into_handler(),
    );
    let snapshot = table.snapshot();
    let generation = table.generation();
    assert_eq!(Arc::strong_count(&held), 2);
    assert!(table.remove(id));
    assert_eq!(
        Arc::strong_count(&held),
        1,
        "the closure outlived its removal"
    );
    assert_ne!(table.generation(), generation);
    // The stale snapshot calls nothing.
    inline(&table, &snapshot, price(1));
}

#[test]
fn a_handler_removing_itself_is_dropped_after_its_call() {
    let table = Arc::new(HandlerTable::new(QueuePolicy::Backpressure));
    let held = Arc::new(());
    let (h, t) = (held.clone(), Arc::downgrade(&table));
    let id = Arc::new(std::sync::OnceLock::new());
    let me = id.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    id.set(
        table.add(
            Interest::DATA,
            None,
            (move |_: &MarketData| {
                let _ = &h;
                c.fetch_add(1, Ordering::SeqCst);
                if let (Some(table), Some(id)) = (t.upgrade(), me.get()) {
                    assert!(table.remove(*id));
                }
            })
            .into_handler(),
        ),
    )
    .unwrap();
    let snapshot = table.snapshot();
    inline(&table, &snapshot, price(1));
    inline(&table, &snapshot, price(2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(&held), 1);
}

#[tokio::test]
async fn panics_are_contained() {
    let table = HandlerTable::new(QueuePolicy::DropOldest);
    table.add(
        Interest::DATA,
        None,
        (|_: &MarketData| panic!("boom")).into_handler(),
    );
    let hit = Arc::new(AtomicBool::new(false));
    let h = hit.clone();
    table.add(
        Interest::DATA,
        None,
        (move |_: &MarketData| h.store(true, Ordering::SeqCst)).into_handler(),
    );
    table.dispatch_queued(&table.snapshot(), price(1)).await;
    assert!(hit.load(Ordering::SeqCst));
    assert_eq!(table.panics(), 1);
}

#[test]
fn kinds_parse_from_the_seeds_names() {
    assert_eq!("debug".parse::<MessageKind>().unwrap(), MessageKind::All);
    assert_eq!(
        "orderbook".parse::<MessageKind>().unwrap(),
        MessageKind::OrderBook
    );
    assert!("ticks".parse::<MessageKind>().is_err());
    assert!(MessageKind::All.matches(DataType::Volume));
    assert!(!MessageKind::Price.matches(DataType::Volume));
}
