//! The relay's upstream: one client per planned connection, held by the
//! manager, each subscribed to its symbols and resuming its stored point.

use argus_client::argus_core::{ConnectionConfig, DataType, SubscriptionConfig};
use argus_client::argus_manager::WebSocketClientManager;
use argus_client::{BuildError, ConnectError, Runtime, WebSocketClient};

use crate::config::UpstreamPlan;
use crate::relay::{Feed, Relay, RelayError};

/// The id of each upstream connection's one subscription.
pub const SUBSCRIPTION_ID: &str = "relay";

/// The running upstream: the clients, by their resume-point keys, and the
/// feeds to give [`Relay::run`].
pub struct Upstream<R: Runtime> {
    /// The clients; `close_all` ends the feeds.
    pub manager: WebSocketClientManager<WebSocketClient<R>>,
    /// One feed per client, in plan order.
    pub feeds: Vec<Feed>,
}

/// Why the upstream could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// A resume point could not be read.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A client could not be built.
    #[error("connection `{key}`: {source}")]
    Build {
        /// Its resume-point key.
        key: String,
        /// Why.
        #[source]
        source: BuildError,
    },
    /// Two connections of the plan have the same key.
    #[error("two connections share the key `{0}`")]
    DuplicateKey(String),
    /// A client could not connect.
    #[error("connection `{key}`: {source}")]
    Connect {
        /// Its resume-point key.
        key: String,
        /// Why.
        #[source]
        source: ConnectError,
    },
}

/// Starts one client per entry of `plan` from `base` (each subscribing its
/// symbols to `data_types` as [`SUBSCRIPTION_ID`], and resuming the point
/// `relay` stored for it, if any), keeps them in a manager under their
/// keys, takes each one's events and connects them all.
pub async fn start_upstream<R: Runtime>(
    relay: &Relay,
    base: &ConnectionConfig,
    plan: &[UpstreamPlan],
    data_types: &[DataType],
) -> Result<Upstream<R>, UpstreamError> {
    let manager = WebSocketClientManager::new();
    let mut feeds = Vec::with_capacity(plan.len());
    let mut clients = Vec::with_capacity(plan.len());
    for connection in plan {
        let point = relay.resume_point(connection, data_types).await?;
        let mut builder = WebSocketClient::<R>::builder(base.clone()).subscribe(
            SUBSCRIPTION_ID,
            SubscriptionConfig::new(
                connection.symbols.iter().cloned(),
                data_types.iter().copied(),
            ),
        );
        if let Some(point) = point.clone() {
            tracing::info!(key = %connection.key, last_seq = point.last_seq, "resuming the stored session");
            builder = builder.resume_from(point);
        }
        let build_error = |source| UpstreamError::Build {
            key: connection.key.clone(),
            source,
        };
        let client = builder.build().map_err(build_error)?;
        let client = manager
            .add_client(connection.key.clone(), client)
            .map_err(|_| UpstreamError::DuplicateKey(connection.key.clone()))?;
        feeds.push(Feed::new(connection.key.clone(), client.events(), point));
        clients.push((connection.key.clone(), client));
    }
    for (key, client) in clients {
        client
            .connect()
            .await
            .map_err(|source| UpstreamError::Connect { key, source })?;
    }
    Ok(Upstream { manager, feeds })
}
