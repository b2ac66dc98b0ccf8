//! What every adapter crate exports, named for its runtime.

/// Declares an adapter's public types for runtime `$runtime`: the client,
/// its builder and weak handle, the quick-start client and the manager as
/// aliases, and everything else of this crate and the core as re-exports.
/// `$name` is the runtime's name in the docs. An adapter's `lib.rs` calls
/// it once, next to its [`Runtime`](crate::Runtime) impl:
/// `argus_client::adapter!(Tokio, "tokio");` in `argus-tokio`.
#[macro_export]
macro_rules! adapter {
    ($runtime:ty, $name:literal) => {
        #[doc = concat!(
                    "A connection to an Argus server on ", $name,
                    ": the original SDK's `WebSocketClient`. Its methods are documented on ",
                    "[`argus_client::WebSocketClient`]."
                )]
        pub type WebSocketClient = $crate::WebSocketClient<$runtime>;
        /// A handle that does not keep a [`WebSocketClient`] alive.
        pub type WeakClient = $crate::WeakClient<$runtime>;
        /// Builds a [`WebSocketClient`] with the adapter's own settings.
        pub type ClientBuilder = $crate::ClientBuilder<$runtime>;
        #[doc = concat!("The original SDK's `QuickStartClient`, on ", $name, ".")]
        pub type QuickStartClient = $crate::QuickStartClient<$runtime>;
        #[doc = concat!(
                    "Many named ", $name, " clients: the original SDK's `WebSocketClientManager` ",
                    "(`create_client`, `get_all_stats`, `close_all`)."
                )]
        pub type WebSocketClientManager =
            $crate::argus_manager::WebSocketClientManager<WebSocketClient>;
        /// Why the manager could not create a client.
        pub type ManagerError = $crate::argus_manager::ManagerError<$crate::BuildError>;

        pub use $crate::{handler, lines};
        pub use $crate::{
            BuildError, CertificateDer, ClientStats, ConnectError, DEFAULT_EVENT_CAPACITY,
            DEFAULT_QUEUE_CAPACITY, EventStream, HandlerId, Interest, Lagged, LossyEventStream,
            MessageHandler, MessageKind, QueuePolicy, QueueStats, QuickStartError, Runtime,
            STOCK_DATA_TYPES, SubscribeError, SubscriptionInfo, UnsubscribeError,
        };

        pub use $crate::argus_core;
        pub use $crate::argus_core::{
            ApiKey, ConnectionConfig, ConnectionState, DataType, DisconnectReason, Event, Gap,
            GapCause, GiveUpReason, MarketData, OpenError, ProtocolError, RequestKind,
            ResumePoint, ServerError, SessionToken, Stats, SubscriptionConfig, SubscriptionId, SubscriptionStatus,
            UpdateFrequency,
        };
    };
}
