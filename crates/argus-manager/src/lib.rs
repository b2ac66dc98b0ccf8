//! # argus-manager
//!
//! The original SDK's `WebSocketClientManager`: many named clients, created
//! from their configs, with every client's stats in one call and one call to
//! close them all. It is runtime-agnostic: it works with any client type that
//! implements [`ManagedClient`] (argus-tokio's `WebSocketClient` does, and its
//! crate exports the manager for it as `argus_tokio::WebSocketClientManager`).
//!
//! ```
//! use argus_core::ConnectionConfig;
//! use argus_manager::{ManagedClient, WebSocketClientManager};
//!
//! // A stand-in client; real code uses argus_tokio::WebSocketClient.
//! #[derive(Clone)]
//! struct Dummy(ConnectionConfig);
//! impl ManagedClient for Dummy {
//!     type Stats = String;
//!     type Error = std::convert::Infallible;
//!     fn from_config(config: ConnectionConfig) -> Result<Self, Self::Error> { Ok(Dummy(config)) }
//!     async fn stats(&self) -> String { self.0.url.clone() }
//!     async fn close(&self) {}
//! }
//!
//! # futures_util::FutureExt::now_or_never(async {
//! let manager = WebSocketClientManager::<Dummy>::new();
//! manager.create_client("client1", ConnectionConfig::new("ws://server1.example/ws")).unwrap();
//! let stats = manager.get_all_stats().await;
//! assert_eq!(stats["client1"], "ws://server1.example/ws");
//! manager.close_all().await;
//! assert!(manager.is_empty());
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use argus_core::ConnectionConfig;

/// What the manager needs of a client: to be made from a config, to report
/// stats, and to close. Cloning must be cheap (a handle).
pub trait ManagedClient: Clone + Send + Sync + 'static {
    /// The client's statistics.
    type Stats: Send;
    /// Why a client could not be made from a config.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a client, not yet connected.
    fn from_config(config: ConnectionConfig) -> Result<Self, Self::Error>;

    /// The client's statistics now.
    fn stats(&self) -> impl Future<Output = Self::Stats> + Send;

    /// Closes the connection and stops reconnecting.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Why [`WebSocketClientManager::create_client`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError<E: std::error::Error + 'static> {
    /// A client with this name exists; remove it first.
    #[error("a client named `{0}` already exists; remove it first or pick another name")]
    DuplicateName(String),
    /// The client could not be made.
    #[error("client `{name}`: {source}")]
    Client {
        /// The client's name.
        name: String,
        /// Why.
        #[source]
        source: E,
    },
}

/// Many named clients of one type. Cheap to share behind an `Arc`; every
/// method takes `&self`.
pub struct WebSocketClientManager<C: ManagedClient> {
    clients: Mutex<BTreeMap<String, C>>,
}

impl<C: ManagedClient> Default for WebSocketClientManager<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: ManagedClient> std::fmt::Debug for WebSocketClientManager<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketClientManager")
            .field("clients", &self.names())
            .finish()
    }
}

impl<C: ManagedClient> WebSocketClientManager<C> {
    /// An empty manager.
    pub fn new() -> Self {
        Self {
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, C>> {
        // The map stays consistent even if a holder panicked: every critical
        // section is a single map operation.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a client named `name` from `config` and keeps it. Returns a handle.
    pub fn create_client(
        &self,
        name: impl Into<String>,
        config: ConnectionConfig,
    ) -> Result<C, ManagerError<C::Error>> {
        let name = name.into();
        if self.lock().contains_key(&name) {
            return Err(ManagerError::DuplicateName(name));
        }
        let client = C::from_config(config).map_err(|source| ManagerError::Client {
            name: name.clone(),
            source,
        })?;
        self.add_client(name, client)
    }

    /// Keeps a client built elsewhere (with a builder's settings, say) under
    /// `name`. Returns a handle.
    pub fn add_client(
        &self,
        name: impl Into<String>,
        client: C,
    ) -> Result<C, ManagerError<C::Error>> {
        let name = name.into();
        let mut clients = self.lock();
        if clients.contains_key(&name) {
            return Err(ManagerError::DuplicateName(name));
        }
        clients.insert(name, client.clone());
        Ok(client)
    }

    /// The client named `name`.
    pub fn get(&self, name: &str) -> Option<C> {
        self.lock().get(name).cloned()
    }

    /// Forgets the client named `name` and returns it (it is not closed).
    pub fn remove(&self, name: &str) -> Option<C> {
        self.lock().remove(name)
    }

    /// The clients' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every client's stats, by name, gathered concurrently.
    pub async fn get_all_stats(&self) -> BTreeMap<String, C::Stats> {
        let clients: Vec<(String, C)> = self
            .lock()
            .iter()
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        let stats = futures_util::future::join_all(clients.iter().map(|(_, c)| c.stats())).await;
        clients.into_iter().map(|(n, _)| n).zip(stats).collect()
    }

    /// Closes every client, concurrently, and forgets them.
    pub async fn close_all(&self) {
        let clients: Vec<C> = std::mem::take(&mut *self.lock()).into_values().collect();
        futures_util::future::join_all(clients.iter().map(ManagedClient::close)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Debug)]
    struct Probe {
        url: String,
        closed: Arc<AtomicUsize>,
    }

    static CLOSED: AtomicUsize = AtomicUsize::new(0);

    impl ManagedClient for Probe {
        type Stats = String;
        type Error = argus_core::ConfigError;
        fn from_config(config: ConnectionConfig) -> Result<Self, Self::Error> {
            config.validate()?;
            Ok(Probe {
                url: config.url,
                closed: Arc::new(AtomicUsize::new(0)),
            })
        }
        async fn stats(&self) -> String {
            self.url.clone()
        }
        async fn close(&self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
            CLOSED.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("ready")
    }

    #[test]
    fn names_stats_and_close_all() {
        let m = WebSocketClientManager::<Probe>::new();
        for i in 0..3 {
            m.create_client(
                format!("client_{i}"),
                ConnectionConfig::new(format!("ws://server{i}.example/ws")),
            )
            .unwrap();
        }
        assert!(matches!(
            m.create_client("client_1", ConnectionConfig::new("ws://x/ws")),
            Err(ManagerError::DuplicateName(_))
        ));
        let err = m
            .create_client("bad", ConnectionConfig::new("http://x"))
            .unwrap_err();
        assert!(err.to_string().contains("url"), "{err}");
        assert_eq!(m.names(), ["client_0", "client_1", "client_2"]);
        let built = Probe::from_config(ConnectionConfig::new("ws://built.example/ws")).unwrap();
        assert!(matches!(
            m.add_client("client_2", built.clone()),
            Err(ManagerError::DuplicateName(_))
        ));
        m.add_client("built", built).unwrap();
        assert_eq!(
            block_on(m.get_all_stats())["built"],
            "ws://built.example/ws"
        );
        assert!(m.remove("built").is_some());
        let stats = block_on(m.get_all_stats());
        assert_eq!(stats["client_2"], "ws://server2.example/ws");
        let kept = m.get("client_0").unwrap();
        let before = CLOSED.load(Ordering::SeqCst);
        block_on(m.close_all());
        assert_eq!(CLOSED.load(Ordering::SeqCst) - before, 3);
        assert_eq!(kept.closed.load(Ordering::SeqCst), 1);
        assert!(m.is_empty());
    }
}
