//! Reading a relay's stream back, from another host: the data and event
//! lines in the stream's order, through an ordered (ephemeral) consumer or
//! a durable one.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// How many messages a durable reader asks for at a time.
const BATCH: usize = 100;

/// How long a durable reader's request waits for its messages: at most
/// this long between [`StreamReader::stop`] and the end of the reader.
const BATCH_WAIT: Duration = Duration::from_millis(500);

type Messages = BoxStream<'static, Result<Message, async_nats::Error>>;

/// A reader of a relay's stream, from [`read_stream`].
pub struct StreamReader {
    inner: Inner,
    stopping: bool,
}

enum Inner {
    /// An ordered consumer: no acknowledgements, nothing held back.
    Ordered(Messages),
    /// A durable pull consumer, asked for [`BATCH`] messages at a time.
    Durable {
        consumer: Box<PullConsumer>,
        /// The request being made: kept across calls, so that a `next`
        /// dropped half-way (in a `select!`) loses no request.
        asking: Option<BoxFuture<'static, Result<Messages, async_nats::Error>>>,
        batch: Option<Messages>,
    },
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Ordered(_) => "ordered",
            Inner::Durable { .. } => "durable",
        };
        f.debug_struct("StreamReader")
            .field("consumer", &kind)
            .field("stopping", &self.stopping)
            .finish()
    }
}

impl StreamReader {
    /// The next message, in the stream's order; `None` once stopped and
    /// drained. Cancel-safe: a call dropped half-way loses nothing.
    pub async fn next(&mut self) -> Option<Result<Message, async_nats::Error>> {
        match &mut self.inner {
            Inner::Ordered(messages) => {
                if self.stopping {
                    return None;
                }
                messages.next().await
            }
            Inner::Durable {
                consumer,
                asking,
                batch,
            } => loop {
                if let Some(messages) = batch {
                    match messages.next().await {
                        Some(message) => return Some(message),
                        None => *batch = None,
                    }
                }
                if asking.is_none() {
                    if self.stopping {
                        return None;
                    }
                    let consumer = (**consumer).clone();
                    *asking = Some(Box::pin(async move {
                        let messages = consumer
                            .batch()
                            .max_messages(BATCH)
                            .expires(BATCH_WAIT)
                            .messages()
                            .await?;
                        Ok(messages.boxed())
                    }));
                }
                let asked = asking.as_mut().expect("asking").await;
                *asking = None;
                match asked {
                    Ok(messages) => *batch = Some(messages),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }

    /// Asks for nothing more. A durable reader's [`next`](Self::next) then
    /// yields what it already asked for (at most one batch, over at most
    /// half a second) and ends: acknowledge those too, and the consumer's
    /// next reader goes on right after the last. A message the server sent
    /// and nobody acknowledged would be held back from it until the
    /// consumer's acknowledgement wait (30 s) ran out, and then come after
    /// newer ones.
    pub fn stop(&mut self) {
        self.stopping = true;
    }
}

/// A reader of the messages of `stream` from its first, as the relay
/// stored them, those whose subject matches `filter` (`argus.>` for all,
/// or `argus.price.>`, `argus.*.AAPL`, …).
///
/// With `durable`, a durable pull consumer of that name (created when
/// missing) remembers what was acknowledged: acknowledge each message
/// (`message.ack().await`) once it is handled, and to end, call
/// [`StreamReader::stop`] and handle what [`StreamReader::next`] still
/// yields; a restarted reader then goes on right after the last message.
/// Without, an ordered consumer reads the stream from the start and needs
/// no acknowledgements.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    durable: Option<&str>,
) -> Result<StreamReader, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let inner = match durable {
        Some(name) => Inner::Durable {
            consumer: Box::new(
                stream
                    .get_or_create_consumer(
                        name,
                        pull::Config {
                            durable_name: Some(name.to_owned()),
                            filter_subject: filter.to_owned(),
                            deliver_policy: DeliverPolicy::All,
                            ack_policy: AckPolicy::Explicit,
                            ..Default::default()
                        },
                    )
                    .await?,
            ),
            asking: None,
            batch: None,
        },
        None => {
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: filter.to_owned(),
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                })
                .await?;
            Inner::Ordered(
                consumer
                    .messages()
                    .await?
                    .map(|m| m.map_err(Into::into))
                    .boxed(),
            )
        }
    };
    Ok(StreamReader {
        inner,
        stopping: false,
    })
}
