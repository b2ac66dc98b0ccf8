//! argus-core: the sans-IO heart of the Argus market-data SDK.
#![forbid(unsafe_code)]

pub mod config;
pub mod subscription;
pub mod wire;

pub use config::{
    ApiKey, ConfigError, ConnectionConfig, ConnectionConfigBuilder, NormalizedSubscription,
    SubscriptionConfig, SubscriptionConfigError,
};
pub use subscription::{DataType, Filters, SubscriptionId, Symbol, UpdateFrequency};
