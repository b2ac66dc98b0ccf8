//! Error handling and reconnection: the original SDK's `RobustClient`.
//!
//! The core reconnects and resumes by itself (with backoff, up to
//! `max_reconnect_attempts` in a row); the application only has to start
//! again when the client gives up, and to stop on errors retrying cannot
//! fix (a refused api key, a bad certificate).
//!
//! With the in-process server (`ARGUS_URL` unset) the example also drops
//! every connection after 2 s and restarts the server after 5 s, to show a
//! resume and a resubscription. `ARGUS_SECONDS` sets how long it runs (9).

use std::time::Duration;

use argus_examples::{init_logging, run_time, target};
use argus_tokio::{
    ConnectError, ConnectionConfig, ConnectionState, DataType, Event, MarketData, MessageKind,
    SubscribeError, SubscriptionConfig, WebSocketClient,
};

struct RobustClient {
    client: WebSocketClient,
    handlers_installed: bool,
}

impl RobustClient {
    fn new(url: &str, api_key: Option<&str>) -> Result<Self, argus_tokio::BuildError> {
        let config = ConnectionConfig {
            api_key: api_key.map(Into::into),
            max_reconnect_attempts: 10,
            reconnect_delay: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(15),
            ..ConnectionConfig::new(url)
        };
        Ok(Self {
            client: WebSocketClient::new(config)?,
            handlers_installed: false,
        })
    }

    /// Connects, subscribes, and follows the connection; starts again after
    /// 5 s whenever the client gives up. Returns on a fatal error.
    async fn start(&mut self) -> Result<(), ConnectError> {
        let mut events = self.client.events();
        loop {
            match self.client.connect().await {
                Ok(()) => {
                    self.setup_handlers();
                    if let Err(e) = self.resubscribe().await {
                        println!("subscribe failed: {e}");
                    }
                    self.client.wait_for_connection().await?;
                    let stats = self.client.stats().await;
                    println!(
                        "connected: {}",
                        serde_json::to_string(&stats).unwrap_or_default()
                    );
                    // Follow the connection until the client gives up.
                    while let Some(event) = events.recv().await {
                        match event {
                            Event::StateChanged { to, .. } => {
                                println!("state: {to}");
                                if to == ConnectionState::Error {
                                    break;
                                }
                            }
                            Event::Disconnected(reason) => println!("disconnected: {reason}"),
                            Event::Reconnecting { attempt, delay } => {
                                println!("reconnect attempt {attempt} in {delay:.1?}")
                            }
                            Event::Resumed { replayed } => {
                                println!("session resumed, {replayed} missed messages replayed")
                            }
                            Event::Gap(gap) => println!("data may be lost: {gap:?}"),
                            Event::Subscribed(id) => println!("subscribed: {id}"),
                            _ => {}
                        }
                    }
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    println!("connection failed ({e}); retrying in 5 s...");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    fn setup_handlers(&mut self) {
        if self.handlers_installed {
            return;
        }
        let handle_data = |data: &MarketData| println!("received: {data:?}");
        self.client
            .add_message_handler(MessageKind::Price, handle_data);
        self.client
            .add_message_handler(MessageKind::Volume, handle_data);
        self.handlers_installed = true;
    }

    async fn resubscribe(&self) -> Result<(), SubscribeError> {
        let config = SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price]);
        match self.client.subscribe("main", config).await {
            // The client still holds it from before: it resubscribes by itself.
            Err(SubscribeError::Invalid(argus_core::SubscribeError::Duplicate(_))) => Ok(()),
            other => other.map(drop),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target().await?;
    let mut robust = RobustClient::new(&target.url, target.api_key.as_deref())?;

    let faults = async {
        if let Some(server) = &target.server {
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("--- the network drops every connection ---");
            server.drop_connections();
            tokio::time::sleep(Duration::from_secs(3)).await;
            println!("--- the server restarts ---");
            let _ = server.restart().await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        result = robust.start() => result?,
        () = faults => {}
        () = tokio::time::sleep(run_time(9)) => println!("done"),
    }
    robust.client.disconnect().await;
    Ok(())
}
