//! Reading a relay's stream back, from another host: the data and event
//! lines in the stream's order, through an ordered (ephemeral) consumer or
//! a durable one.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// The messages of `stream` from its first, as the relay stored them,
/// those whose subject matches `filter` (`argus.>` for all, or
/// `argus.price.>`, `argus.*.AAPL`, …).
///
/// With `durable`, a durable pull consumer of that name (created when
/// missing) remembers what was acknowledged: acknowledge each message
/// (`message.ack().await`) once it is handled, and a restarted reader goes
/// on after the last one. Without, an ordered consumer reads the stream
/// from the start and needs no acknowledgements.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    durable: Option<&str>,
) -> Result<BoxStream<'static, Result<Message, async_nats::Error>>, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let messages = match durable {
        Some(name) => {
            let consumer = stream
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
                .await?;
            consumer
                .messages()
                .await?
                .map(|m| m.map_err(Into::into))
                .boxed()
        }
        None => {
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: filter.to_owned(),
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                })
                .await?;
            consumer
                .messages()
                .await?
                .map(|m| m.map_err(Into::into))
                .boxed()
        }
    };
    Ok(messages)
}
