//! The original SDK's `WebSocketClientManager`, for tokio clients.

use argus_core::ConnectionConfig;

use crate::{BuildError, ClientStats, WebSocketClient};

/// Many named tokio clients: `create_client`, `get_all_stats`, `close_all`.
///
/// ```no_run
/// use argus_tokio::{ConnectionConfig, WebSocketClientManager};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = WebSocketClientManager::new();
/// let client1 = manager.create_client("client1", ConnectionConfig::new("ws://server1.example/ws"))?;
/// client1.connect().await?;
/// for (name, stats) in manager.get_all_stats().await {
///     println!("{name}: {}", serde_json::to_string(&stats)?);
/// }
/// manager.close_all().await;
/// # Ok(()) }
/// ```
pub type WebSocketClientManager = argus_manager::WebSocketClientManager<WebSocketClient>;

/// Why the manager could not create a tokio client.
pub type ManagerError = argus_manager::ManagerError<BuildError>;

impl argus_manager::ManagedClient for WebSocketClient {
    type Stats = ClientStats;
    type Error = BuildError;

    fn from_config(config: ConnectionConfig) -> Result<Self, BuildError> {
        WebSocketClient::new(config)
    }

    async fn stats(&self) -> ClientStats {
        WebSocketClient::stats(self).await
    }

    async fn close(&self) {
        self.disconnect().await;
    }
}
