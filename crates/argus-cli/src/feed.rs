//! One ordered, lossless stream of data and events from a client.
//!
//! The client offers two outputs, and neither is enough alone:
//!
//! - its **message handlers** see every data message, in order, through a
//!   bounded queue whose [`QueuePolicy`](argus_tokio::QueuePolicy) decides
//!   what happens when the consumer is slow (with backpressure, nothing is
//!   lost: the socket slows down instead); but they see no events;
//! - its **event stream** ([`WebSocketClient::events`]) sees data and events
//!   (state changes, gaps, resumes, errors) in the order they happened, but
//!   it is a broadcast: a reader that falls further behind than its buffer
//!   misses events ([`ClientEvent::Lagged`]).
//!
//! A [`Feed`] reads both and uses the event stream only for **order**: the
//! data it prints comes from the handler, and an event is released once
//! every data message before it in the event stream came through the
//! handler (or is known to have been dropped by the queue policy). The
//! client publishes a message on the event stream before it queues it for
//! the handler, so when the handler delivers a message its copy on the event
//! stream is already there to be read.
//!
//! The event stream cannot lag under backpressure: everything on it that the
//! feed has not read is still in the handler's pipeline (queue, channel),
//! which the feed bounds; [`Feed::event_capacity`] is larger than that
//! pipeline. Under the dropping policies it can lag when the consumer stays
//! slow; the feed then says so with a [`ClientEvent::Lagged`] item and
//! carries on (the order of events near the loss is then best effort).

use std::collections::VecDeque;

use argus_tokio::{ClientEvent, EventStream, MarketData, MessageKind, WebSocketClient};
use futures_util::FutureExt;
use tokio::sync::mpsc;

/// Room of the channel between the client's handler and the feed.
pub const DATA_CHANNEL: usize = 256;

/// Room, beyond the data pipeline, for events that are not data.
const EVENT_SLACK: usize = 8192;

/// Most inputs one [`Feed::try_next`] takes in.
const TRY_LIMIT: usize = 1024;

/// Most items [`Feed::close`] takes from each source.
const CLOSE_LIMIT: usize = 1 << 16;

/// One thing that happened, in order.
#[derive(Clone, Debug)]
pub enum Item {
    /// A data message.
    Data(MarketData),
    /// Anything else: a state change, a gap, a resume, an error, or the
    /// feed's own [`ClientEvent::Lagged`].
    Event(ClientEvent),
}

/// Merges the handler's data and the event stream into one ordered
/// [`Item`] stream. Attach it before connecting, so it sees everything.
#[derive(Debug)]
pub struct Feed {
    events: EventStream,
    data: mpsc::Receiver<MarketData>,
    merge: Merge,
    closed: bool,
}

impl Feed {
    /// The event stream's buffer a client needs for a feed to never lag
    /// under backpressure, given its handler queue's capacity.
    pub fn event_capacity(queue_capacity: usize) -> usize {
        queue_capacity
            .saturating_add(DATA_CHANNEL)
            .saturating_add(EVENT_SLACK)
    }

    /// Subscribes to `client`'s events and registers a handler for all of
    /// its data.
    pub fn attach(client: &WebSocketClient) -> Self {
        let events = client.events();
        let (tx, data) = mpsc::channel(DATA_CHANNEL);
        client.add_message_handler(MessageKind::All, move |message: MarketData| {
            let tx = tx.clone();
            async move {
                // Waiting here is what carries backpressure to the client.
                let _ = tx.send(message).await;
            }
        });
        Self {
            events,
            data,
            merge: Merge::default(),
            closed: false,
        }
    }

    /// The next item, waiting for it; `None` once the client is gone.
    /// Cancel-safe: nothing is lost when the future is dropped unfinished.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.merge.pop() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.merge.push_event(event),
                    None => self.close(),
                },
                message = self.data.recv() => match message {
                    Some(message) => self.on_data(message),
                    None => self.close(),
                },
            }
        }
    }

    /// The next item if one is ready now, without waiting. `None` also
    /// when the ready input does not release an item soon (a data message
    /// still on its way from the handler holds back what follows it).
    pub fn try_next(&mut self) -> Option<Item> {
        for _ in 0..TRY_LIMIT {
            if let Some(item) = self.merge.pop() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            if let Ok(message) = self.data.try_recv() {
                self.on_data(message);
            } else if let Some(event) = self.event_now() {
                self.merge.push_event(event);
            } else {
                return None;
            }
        }
        self.merge.pop()
    }

    /// Ends the feed: what is ready now comes out of [`try_next`](Self::try_next)
    /// and [`next`](Self::next), events waiting for data included, and then
    /// nothing more.
    pub fn close(&mut self) {
        // Bounded: a client still running keeps adding.
        for _ in 0..CLOSE_LIMIT {
            let Some(event) = self.event_now() else { break };
            self.merge.push_event(event);
        }
        for _ in 0..CLOSE_LIMIT {
            let Ok(message) = self.data.try_recv() else {
                break;
            };
            self.on_data(message);
        }
        self.merge.flush();
        self.closed = true;
    }

    /// An event already in the stream's buffer. The budget of tokio's
    /// cooperative scheduling must not make a ready event look absent.
    fn event_now(&mut self) -> Option<ClientEvent> {
        tokio::task::unconstrained(self.events.recv())
            .now_or_never()
            .flatten()
    }

    fn on_data(&mut self, message: MarketData) {
        if self.merge.push_data(&message) {
            return;
        }
        // The client published it before queueing it, so it is already
        // buffered on the event stream, unless the stream lagged past it.
        // Each event is looked at once: the stream's buffer bounds the search.
        while let Some(event) = self.event_now() {
            let found = matches!(&event, ClientEvent::Data(d) if *d == message);
            let lagged = matches!(event, ClientEvent::Lagged(_));
            self.merge.push_event(event);
            if found && self.merge.push_data(&message) {
                return;
            }
            if lagged {
                break;
            }
        }
        self.merge.push_unmatched(message);
    }
}

/// The ordering logic of a [`Feed`], without I/O: event-stream items wait
/// in `pending` until the handler's data catches up with them.
#[derive(Debug, Default)]
pub struct Merge {
    /// Event-stream items not released yet; data items here are markers.
    pending: VecDeque<ClientEvent>,
    /// Items ready to come out, in order.
    ready: VecDeque<Item>,
}

impl Merge {
    /// An item of the event stream, in the stream's order.
    pub fn push_event(&mut self, event: ClientEvent) {
        self.pending.push_back(event);
        self.release();
    }

    /// A data message from the handler. True when it was found on the event
    /// stream: it is released with every event before it (event-stream data
    /// before it never reached the handler: the queue policy dropped it).
    /// False when the event stream has not shown it (yet).
    pub fn push_data(&mut self, message: &MarketData) -> bool {
        let Some(at) = self
            .pending
            .iter()
            .position(|e| matches!(e, ClientEvent::Data(d) if d == message))
        else {
            return false;
        };
        for event in self.pending.drain(..=at) {
            if !matches!(event, ClientEvent::Data(_)) {
                self.ready.push_back(Item::Event(event));
            }
        }
        self.ready.push_back(Item::Data(message.clone()));
        self.release();
        true
    }

    /// A data message the event stream lost: released after every pending
    /// event.
    pub fn push_unmatched(&mut self, message: MarketData) {
        self.flush();
        self.ready.push_back(Item::Data(message));
    }

    /// Releases every pending event and forgets the data markers.
    pub fn flush(&mut self) {
        for event in self.pending.drain(..) {
            if !matches!(event, ClientEvent::Data(_)) {
                self.ready.push_back(Item::Event(event));
            }
        }
    }

    /// The next released item.
    pub fn pop(&mut self) -> Option<Item> {
        self.ready.pop_front()
    }

    /// Releases the events at the front, up to the first data marker.
    fn release(&mut self) {
        while let Some(front) = self.pending.front() {
            if matches!(front, ClientEvent::Data(_)) {
                break;
            }
            if let Some(event) = self.pending.pop_front() {
                self.ready.push_back(Item::Event(event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::wire::ServerMessage;
    use argus_tokio::{ConnectionState, SubscriptionId};

    fn price(seq: u64) -> MarketData {
        let text = format!(
            r#"{{"type":"price","sub":"s","seq":{seq},"symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
        );
        let msg = ServerMessage::decode(&text).unwrap();
        MarketData::from_wire(&msg, SubscriptionId::new("s").unwrap())
            .unwrap()
            .unwrap()
    }

    fn state() -> ClientEvent {
        ClientEvent::StateChanged {
            from: ConnectionState::Connected,
            to: ConnectionState::Reconnecting,
        }
    }

    /// `d3`, `e` for an event.
    fn names(merge: &mut Merge) -> Vec<String> {
        std::iter::from_fn(|| merge.pop())
            .map(|item| match item {
                Item::Data(d) => format!("d{}", d.seq()),
                Item::Event(_) => "e".to_owned(),
            })
            .collect()
    }

    #[test]
    fn an_event_waits_for_the_data_before_it() {
        let mut m = Merge::default();
        m.push_event(ClientEvent::Data(price(1)));
        m.push_event(state());
        m.push_event(ClientEvent::Data(price(2)));
        assert!(names(&mut m).is_empty(), "nothing before d1 arrives");
        assert!(m.push_data(&price(1)));
        assert_eq!(names(&mut m), ["d1", "e"]);
        assert!(m.push_data(&price(2)));
        assert_eq!(names(&mut m), ["d2"]);
    }

    #[test]
    fn events_without_data_before_them_go_at_once() {
        let mut m = Merge::default();
        m.push_event(state());
        m.push_event(state());
        assert_eq!(names(&mut m), ["e", "e"]);
        assert!(!m.push_data(&price(1)), "not on the event stream yet");
    }

    #[test]
    fn data_the_policy_dropped_does_not_hold_events_back() {
        let mut m = Merge::default();
        for seq in 1..=3 {
            m.push_event(ClientEvent::Data(price(seq)));
        }
        m.push_event(state());
        m.push_event(ClientEvent::Data(price(4)));
        // The queue dropped 1..=3; the handler's next message is 4.
        assert!(m.push_data(&price(4)));
        assert_eq!(names(&mut m), ["e", "d4"]);
    }

    #[test]
    fn lost_markers_flush_in_order() {
        let mut m = Merge::default();
        m.push_event(ClientEvent::Data(price(1)));
        m.push_event(state());
        m.push_unmatched(price(7));
        assert_eq!(names(&mut m), ["e", "d7"]);
        m.push_event(ClientEvent::Data(price(8)));
        m.push_event(state());
        m.flush();
        assert_eq!(names(&mut m), ["e"]);
    }
}
