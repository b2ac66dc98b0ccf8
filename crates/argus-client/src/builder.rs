//! The client's builder: the adapter's own settings (queues, TLS roots,
//! randomness).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};

use argus_core::{Client, ConnectionConfig, ResumePoint, SubscriptionConfig};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::mpsc;

use crate::client::{Inner, WebSocketClient};
use crate::driver::Driver;
use crate::error::BuildError;
use crate::queue::QueuePolicy;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::tasks::spawn_tasks;

/// Default room in the handler queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default room of each event stream.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Builds a [`WebSocketClient`] with the adapter's own settings.
///
/// ```
/// use argus_client::{ConnectionConfig, ConnectionState, QueuePolicy, Runtime, WebSocketClient};
///
/// fn build<R: Runtime>() -> WebSocketClient<R> {
///     let client = WebSocketClient::<R>::builder(ConnectionConfig::new("wss://feed.example.com/ws"))
///         .queue_capacity(4096)
///         .queue_policy(QueuePolicy::ConflateLatest)
///         .rng_seed(7)
///         .build()
///         .unwrap();
///     assert_eq!(client.state(), ConnectionState::Disconnected);
///     client
/// }
/// ```
#[must_use]
pub struct ClientBuilder<R: Runtime> {
    runtime: PhantomData<fn() -> R>,
    config: ConnectionConfig,
    queue_capacity: usize,
    queue_policy: QueuePolicy,
    event_capacity: usize,
    roots_der: Vec<CertificateDer<'static>>,
    roots_pem: Vec<Vec<u8>>,
    builtin_roots: bool,
    rng_seed: Option<u64>,
    subscriptions: Vec<(String, SubscriptionConfig)>,
    resume_from: Option<ResumePoint>,
}

impl<R: Runtime> Clone for ClientBuilder<R> {
    fn clone(&self) -> Self {
        Self {
            runtime: PhantomData,
            config: self.config.clone(),
            queue_capacity: self.queue_capacity,
            queue_policy: self.queue_policy,
            event_capacity: self.event_capacity,
            roots_der: self.roots_der.clone(),
            roots_pem: self.roots_pem.clone(),
            builtin_roots: self.builtin_roots,
            rng_seed: self.rng_seed,
            subscriptions: self.subscriptions.clone(),
            resume_from: self.resume_from.clone(),
        }
    }
}

impl<R: Runtime> fmt::Debug for ClientBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_policy", &self.queue_policy)
            .field("event_capacity", &self.event_capacity)
            .field(
                "added_roots",
                &(self.roots_der.len() + self.roots_pem.len()),
            )
            .field("builtin_roots", &self.builtin_roots)
            .field("rng_seed", &self.rng_seed)
            .field("subscriptions", &self.subscriptions)
            .field("resume_from", &self.resume_from)
            .finish()
    }
}

impl<R: Runtime> ClientBuilder<R> {
    pub(crate) fn new(config: ConnectionConfig) -> Self {
        Self {
            runtime: PhantomData,
            config,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_policy: QueuePolicy::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            roots_der: Vec::new(),
            roots_pem: Vec::new(),
            builtin_roots: cfg!(feature = "webpki-roots"),
            rng_seed: None,
            subscriptions: Vec::new(),
            resume_from: None,
        }
    }

    /// Room in the handler queue (default [`DEFAULT_QUEUE_CAPACITY`]).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// What to do when the handler queue is full (default
    /// [`QueuePolicy::Backpressure`]).
    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.queue_policy = policy;
        self
    }

    /// Room of each event stream (default [`DEFAULT_EVENT_CAPACITY`]): a
    /// lossless stream that falls this far behind holds the socket's
    /// reading; a lossy one drops or conflates.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Trusts this root certificate (DER) for `wss://`, besides the built-in
    /// roots.
    pub fn add_root_certificate(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.roots_der.push(der.into());
        self
    }

    /// Trusts every certificate in this PEM text for `wss://`, besides the
    /// built-in roots.
    pub fn add_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.roots_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Whether to trust the built-in Mozilla roots (the `webpki-roots`
    /// feature, on by default). With `false`, only the added roots are.
    pub fn builtin_roots(mut self, enabled: bool) -> Self {
        self.builtin_roots = enabled && cfg!(feature = "webpki-roots");
        self
    }

    /// Seeds the reconnect jitter, for reproducible runs (default: random).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// A subscription the client holds from the start: sent on the first
    /// connection, with no call to wait on. With
    /// [`resume_from`](Self::resume_from), these are what the resumed
    /// session is expected to hold; the client reconciles the session with
    /// them. Checked by [`build`](Self::build).
    pub fn subscribe(mut self, id: impl Into<String>, config: SubscriptionConfig) -> Self {
        self.subscriptions.push((id.into(), config));
        self
    }

    /// Resumes a session persisted by an earlier process (see
    /// [`ResumePoint`] and [`Event::SessionStarted`](argus_core::Event::SessionStarted)) on the first
    /// connection instead of starting a new one. If the server can no
    /// longer resume it, the events say so with one gap from
    /// `point.last_seq + 1` before the new session. Add the session's
    /// subscriptions with [`subscribe`](Self::subscribe). The point is a
    /// secret; `Debug` redacts its token.
    pub fn resume_from(mut self, point: ResumePoint) -> Self {
        self.resume_from = Some(point);
        self
    }

    /// The built-in roots, when enabled.
    fn base_roots(&self) -> RootCertStore {
        #[allow(unused_mut)]
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "webpki-roots")]
        if self.builtin_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    }

    /// A TLS configuration of this client's own, with the added roots.
    fn tls_with_added_roots(&self) -> Result<Arc<rustls::ClientConfig>, BuildError> {
        let mut roots = self.base_roots();
        for der in &self.roots_der {
            roots
                .add(der.clone())
                .map_err(|e| BuildError::RootCertificate(e.to_string()))?;
        }
        for pem in &self.roots_pem {
            let mut found = false;
            for der in CertificateDer::pem_slice_iter(pem) {
                let der = der.map_err(|e| BuildError::RootCertificate(e.to_string()))?;
                roots
                    .add(der)
                    .map_err(|e| BuildError::RootCertificate(e.to_string()))?;
                found = true;
            }
            if !found {
                return Err(BuildError::RootCertificate(
                    "no certificate in the PEM text".into(),
                ));
            }
        }
        crate::transport::tls_config(roots).map_err(|e| BuildError::Tls(e.to_string()))
    }

    /// Checks the settings and builds the client. Needs no runtime: the
    /// tasks start at the first `async` call.
    pub fn build(self) -> Result<WebSocketClient<R>, BuildError> {
        if self.queue_capacity == 0 {
            return Err(BuildError::ZeroQueueCapacity);
        }
        if self.event_capacity == 0 {
            return Err(BuildError::ZeroEventCapacity);
        }
        let seed = self
            .rng_seed
            .unwrap_or_else(|| RandomState::new().hash_one(0x5eed_u64));
        let mut core = Client::new(self.config.clone(), seed)?;
        for (id, config) in &self.subscriptions {
            core.subscribe(R::now(), id, config)
                .map_err(BuildError::Subscription)?;
        }
        if let Some(point) = self.resume_from.clone() {
            core.resume_from(point);
        }

        let tls = if self.roots_der.is_empty() && self.roots_pem.is_empty() {
            // Clients without roots of their own share one configuration.
            static SHARED: [OnceLock<Arc<rustls::ClientConfig>>; 2] =
                [OnceLock::new(), OnceLock::new()];
            let slot = &SHARED[usize::from(self.builtin_roots)];
            match slot.get() {
                Some(tls) => tls.clone(),
                None => {
                    let tls = crate::transport::tls_config(self.base_roots())
                        .map_err(|e| BuildError::Tls(e.to_string()))?;
                    slot.get_or_init(|| tls).clone()
                }
            }
        } else {
            self.tls_with_added_roots()?
        };

        let shared = Arc::new(Shared::new(
            self.queue_capacity,
            self.queue_policy,
            self.event_capacity,
        ));
        let (commands, receiver) = mpsc::unbounded_channel();
        let driver = Driver::<R>::new(core, receiver, shared.clone(), tls);
        let url = self.config.url.clone();
        let tasks = shared.clone();
        let start = move || spawn_tasks::<R>(&url, tasks, driver.run());
        Ok(WebSocketClient::from_inner(Inner {
            commands,
            shared,
            unstarted: Mutex::new(Some(Box::new(start))),
            config: self.config,
        }))
    }
}
