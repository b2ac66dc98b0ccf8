//! The delivery stage: where the core's events leave the connection task,
//! once and in the core's order, for every consumer.
//!
//! The consumers of one client are
//! - the **inline handlers** (synchronous handlers under
//!   [`QueuePolicy::Backpressure`](crate::QueuePolicy::Backpressure)),
//!   called right here, as each event is delivered: no queue, no hop;
//! - the **handler queue**, in front of the handler task (async handlers,
//!   and every handler under a lossy policy);
//! - one **queue per event stream**.
//!
//! Each consumer sees the events it asked for in the one order. A full
//! backpressure queue holds the connection task's reading (see
//! [`Delivery::full_queue`]), so a slow consumer slows the socket and
//! loses nothing; a lossy queue drops or conflates and counts it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use argus_core::Event;

use crate::handler::Snapshot;
use crate::interest::Interest;
use crate::queue::Queue;
use crate::shared::{Consumer, Shared};

pub(crate) struct Delivery {
    shared: Arc<Shared>,
    /// The handler table as last seen, and its generation then.
    handlers: Arc<Snapshot>,
    handlers_generation: u64,
    /// The event streams as last seen, and their generation then.
    streams: Vec<Consumer>,
    streams_generation: u64,
}

impl Delivery {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            handlers: Arc::default(),
            handlers_generation: u64::MAX,
            streams: Vec::new(),
            streams_generation: u64::MAX,
        }
    }

    /// Takes a new view of the handlers and streams when either changed.
    fn refresh(&mut self) {
        let generation = self.shared.handlers.generation();
        if generation != self.handlers_generation {
            self.handlers = self.shared.handlers.snapshot();
            self.handlers_generation = generation;
        }
        let generation = self.shared.streams.generation();
        if generation != self.streams_generation {
            self.streams = self.shared.streams.list();
            self.streams_generation = generation;
        }
    }

    /// Hands one event to every consumer that wants it: a clone to each
    /// queue, then the event itself to the inline handlers (or to the last
    /// queue, when no inline handler wants it).
    pub(crate) fn deliver(&mut self, event: Event) {
        self.refresh();
        let kind = Interest::of(&event);
        let to_handler_queue = self.handlers.queue_wants(kind, &event);
        let queues = self
            .streams
            .iter()
            .filter(|c| c.interest.intersects(kind))
            .count()
            + usize::from(to_handler_queue);
        if queues == 0 {
            // The common case: inline handlers only, no clone.
            self.dispatch_inline(kind, event);
            return;
        }
        let inline = self.handlers.inline_wants(kind, &event);
        let mut left = queues;
        let mut event = Some(event);
        let mut abandoned = false;
        for consumer in self.streams.iter().filter(|c| c.interest.intersects(kind)) {
            left -= 1;
            let last = left == 0 && !inline;
            abandoned |= !consumer.queue.push(hand_on(&mut event, last));
        }
        if to_handler_queue {
            self.shared.handler_queue.push(hand_on(&mut event, !inline));
        }
        if let Some(event) = event {
            self.dispatch_inline(kind, event);
        }
        if abandoned {
            self.shared.streams.prune();
        }
    }

    fn dispatch_inline(&self, kind: Interest, event: Event) {
        if self
            .shared
            .handlers
            .dispatch_inline(&self.handlers, kind, event)
        {
            // One writer (this task): a load and a store, no read-modify-write.
            let inline = &self.shared.inline;
            inline.store(inline.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// A backpressure queue that is full, if any: the connection task reads
    /// nothing more until it has room.
    pub(crate) fn full_queue(&self) -> Option<&Queue> {
        std::iter::once(&self.shared.handler_queue)
            .chain(self.streams.iter().map(|c| &*c.queue))
            .find(|q| q.is_full())
    }

    /// How many more events every backpressure queue takes before it is full.
    pub(crate) fn room(&self) -> usize {
        std::iter::once(&self.shared.handler_queue)
            .chain(self.streams.iter().map(|c| &*c.queue))
            .map(Queue::room)
            .min()
            .unwrap_or(usize::MAX)
    }

    /// The connection task ends: every consumer takes what it holds, then ends.
    pub(crate) fn close(&mut self) {
        self.shared.handler_queue.close();
        self.shared.streams.close();
    }
}

/// The event itself when this is its last consumer, a clone otherwise.
fn hand_on(event: &mut Option<Event>, last: bool) -> Event {
    let taken = if last { event.take() } else { event.clone() };
    taken.expect("an event is handed on once, to its last consumer")
}
