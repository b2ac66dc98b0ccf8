//! The forms a handler may take, told apart by their argument's type, and
//! their erased form for the table.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use argus_core::{Event, MarketData};

use crate::interest::Interest;

pub(super) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A handler with its type erased, ready for the table. Built by
/// [`MessageHandler::into_handler`].
pub struct Handler {
    pub(super) callback: Callback,
    /// The kinds its argument can carry (data only, for a `MarketData` handler).
    pub(super) accepts: Interest,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("form", &self.callback.form())
            .field("accepts", &self.accepts)
            .finish()
    }
}

pub(super) enum Callback {
    Borrowed(Box<dyn FnMut(&Event) + Send>),
    Owned(Box<dyn FnMut(Event) + Send>),
    Async(Box<dyn FnMut(Event) -> BoxFuture + Send>),
    /// The handler was removed and its closure dropped.
    Removed,
}

impl Callback {
    fn form(&self) -> &'static str {
        match self {
            Self::Borrowed(_) => "sync(&Event)",
            Self::Owned(_) => "sync(Event)",
            Self::Async(_) => "async(Event)",
            Self::Removed => "removed",
        }
    }
}

/// Something [`WebSocketClient::add_message_handler`](crate::WebSocketClient::add_message_handler)
/// accepts. `M` is a marker that tells the forms apart; it is inferred.
pub trait MessageHandler<M>: Send + 'static {
    /// Erases the handler's type.
    fn into_handler(self) -> Handler;
}

/// Marks a synchronous handler taking `&MarketData`.
#[derive(Debug)]
pub enum Borrowed {}

/// Marks a synchronous handler taking `MarketData`.
#[derive(Debug)]
pub enum Owned {}

/// Marks a synchronous handler taking `&Event`.
#[derive(Debug)]
pub enum BorrowedEvent {}

/// Marks a synchronous handler taking `Event`.
#[derive(Debug)]
pub enum OwnedEvent {}

/// Marks an asynchronous handler taking `MarketData`, returning `Fut`.
pub struct Async<Fut>(PhantomData<fn() -> Fut>);

/// Marks an asynchronous handler taking `Event`, returning `Fut`.
pub struct AsyncEvent<Fut>(PhantomData<fn() -> Fut>);

impl<Fut> fmt::Debug for Async<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Async")
    }
}

impl<Fut> fmt::Debug for AsyncEvent<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncEvent")
    }
}

fn data_handler(callback: Callback) -> Handler {
    Handler {
        callback,
        accepts: Interest::DATA,
    }
}

fn event_handler(callback: Callback) -> Handler {
    Handler {
        callback,
        accepts: Interest::ALL,
    }
}

impl<F> MessageHandler<Borrowed> for F
where
    F: FnMut(&MarketData) + Send + 'static,
{
    fn into_handler(mut self) -> Handler {
        data_handler(Callback::Borrowed(Box::new(move |event: &Event| {
            if let Event::Data(data) = event {
                self(data);
            }
        })))
    }
}

impl<F> MessageHandler<Owned> for F
where
    F: FnMut(MarketData) + Send + 'static,
{
    fn into_handler(mut self) -> Handler {
        data_handler(Callback::Owned(Box::new(move |event: Event| {
            if let Event::Data(data) = event {
                self(data);
            }
        })))
    }
}

impl<F, Fut> MessageHandler<Async<Fut>> for F
where
    F: FnMut(MarketData) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn into_handler(mut self) -> Handler {
        data_handler(Callback::Async(Box::new(move |event: Event| match event {
            Event::Data(data) => Box::pin(self(data)),
            _ => Box::pin(std::future::ready(())),
        })))
    }
}

impl<F> MessageHandler<BorrowedEvent> for F
where
    F: FnMut(&Event) + Send + 'static,
{
    fn into_handler(self) -> Handler {
        event_handler(Callback::Borrowed(Box::new(self)))
    }
}

impl<F> MessageHandler<OwnedEvent> for F
where
    F: FnMut(Event) + Send + 'static,
{
    fn into_handler(self) -> Handler {
        event_handler(Callback::Owned(Box::new(self)))
    }
}

impl<F, Fut> MessageHandler<AsyncEvent<Fut>> for F
where
    F: FnMut(Event) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn into_handler(mut self) -> Handler {
        event_handler(Callback::Async(Box::new(move |event| {
            Box::pin(self(event))
        })))
    }
}
