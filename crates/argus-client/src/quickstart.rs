//! The original SDK's `QuickStartClient`: a client in one call, stocks in
//! another.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use argus_core::{
    ApiKey, ConnectionConfig, ConnectionState, DataType, SubscriptionConfig, SubscriptionId,
};

use crate::client::WebSocketClient;
use crate::error::{BuildError, ConnectError, SubscribeError};
use crate::handler::{MessageHandler, MessageKind};
use crate::runtime::Runtime;

/// The data types [`QuickStartClient::subscribe_stocks`] asks for.
pub const STOCK_DATA_TYPES: [DataType; 2] = [DataType::Price, DataType::Volume];

/// Why [`QuickStartClient::subscribe_stocks`] failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuickStartError {
    /// The client was not connected, and connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The subscription failed.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
}

/// Shortcuts for the common case, as in the original SDK, on runtime `R`
/// (each adapter names it: `argus_tokio::QuickStartClient`).
///
/// ```no_run
/// use argus_client::{QuickStartClient, Runtime};
/// use argus_core::MarketData;
///
/// # async fn run<R: Runtime>() -> Result<(), Box<dyn std::error::Error>> {
/// let client = QuickStartClient::<R>::create("ws://localhost:8000/ws", None).await?;
/// client.connect().await?;
/// let id = QuickStartClient::subscribe_stocks(&client, ["AAPL", "GOOGL", "MSFT"], |data: &MarketData| {
///     println!("price update: {data:?}");
/// })
/// .await?;
/// println!("subscribed as {id}");
/// client.disconnect().await;
/// # Ok(()) }
/// ```
pub struct QuickStartClient<R: Runtime>(PhantomData<fn() -> R>);

impl<R: Runtime> fmt::Debug for QuickStartClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuickStartClient")
    }
}

static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

impl<R: Runtime> QuickStartClient<R> {
    /// A client for `url` with the default settings and an optional api key.
    /// It does not connect yet: call [`WebSocketClient::connect`] (or let
    /// [`subscribe_stocks`](Self::subscribe_stocks) do it).
    pub async fn create(
        url: impl Into<String>,
        api_key: Option<&str>,
    ) -> Result<WebSocketClient<R>, BuildError> {
        let config = ConnectionConfig {
            api_key: api_key.map(ApiKey::from),
            ..ConnectionConfig::new(url)
        };
        WebSocketClient::new(config)
    }

    /// Subscribes to the price and volume of `symbols` under a fresh id
    /// (`stocks-N`), with `handler` seeing that subscription's messages, and
    /// returns the id once the server acknowledged it. Connects first when
    /// the client is not connected. On failure the handler is removed again.
    pub async fn subscribe_stocks<M, H, S>(
        client: &WebSocketClient<R>,
        symbols: impl IntoIterator<Item = S>,
        handler: H,
    ) -> Result<SubscriptionId, QuickStartError>
    where
        H: MessageHandler<M>,
        S: AsRef<str>,
    {
        if client.state() != ConnectionState::Connected {
            client.connect().await?;
        }
        let n = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        let id = SubscriptionId::new(format!("stocks-{n}"))
            .map_err(|e| SubscribeError::Invalid(e.into()))?;
        let handler = client.add_subscription_handler(id.clone(), MessageKind::All, handler);
        let config = SubscriptionConfig::new(symbols, STOCK_DATA_TYPES);
        match client.subscribe(id.as_str(), config).await {
            Ok(id) => Ok(id),
            Err(error) => {
                client.remove_message_handler(handler);
                Err(error.into())
            }
        }
    }
}
