//! The original SDK's `WebSocketClientManager`: [`argus_manager`]'s manager
//! over clients of any runtime.

use argus_core::ConnectionConfig;

use crate::{BuildError, ClientStats, Runtime, WebSocketClient};

impl<R: Runtime> argus_manager::ManagedClient for WebSocketClient<R> {
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
