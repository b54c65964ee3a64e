//! Services: the behaviour, written against the ports. Functions and the CLI call these.

pub mod connect;
pub mod context;
pub mod integrations;
pub mod license_sync;
pub mod local_workflow;
pub mod oauth_connect;
pub mod reclaim;
pub mod report;
pub mod sources;
pub mod tokens;

pub use context::{AwsSettings, ServiceContext};
pub use license_sync::{
    Deadline, LicenseSync, SyncCheckpoint, SyncError, SyncOptions, SyncRunSummary,
};
pub use sources::{ProviderSources, SourceFactory};
