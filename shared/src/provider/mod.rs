//! Providers: the SaaS APIs Seatkeeper reads and acts on.
//!
//! - [`http`]: the one HTTP client with retry (429 + Retry-After, 5xx and dropped
//!   connections with jittered exponential backoff, bounded attempts).
//! - [`box_client`]: Box's REST API (tokens, users, enterprise events, and the reads
//!   and writes reclamation makes).
//! - [`box_source`]: where a Box user becomes an [`Account`](crate::domain::Account).
//! - [`LicenseSource`]: the port the license sync reads through, one per provider.

pub mod box_client;
pub mod box_source;
pub mod http;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Account;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The token endpoint refused: `invalid_client`, `unauthorized_client`, `invalid_grant`, …
    #[error("{provider} refused the credentials ({code}): {description}")]
    Auth {
        provider: &'static str,
        code: String,
        description: String,
    },
    #[error("{provider} denied access ({status} {code}): {message}")]
    Forbidden {
        provider: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{provider}: {what} not found")]
    NotFound {
        provider: &'static str,
        what: String,
    },
    #[error("{provider} rejected the request ({status} {code}): {message}")]
    Rejected {
        provider: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{provider} kept rate-limiting after {attempts} attempts")]
    RateLimited {
        provider: &'static str,
        attempts: u32,
    },
    #[error("{provider} unavailable after {attempts} attempts: {detail}")]
    Unavailable {
        provider: &'static str,
        attempts: u32,
        detail: String,
    },
    #[error("unexpected response from {provider}: {detail}")]
    Malformed {
        provider: &'static str,
        detail: String,
    },
    /// Our side of token handling failed: the integration's secret could not be read or
    /// written, or another container's refresh did not finish in time. Never holds a token.
    #[error("{provider} token handling failed: {detail}")]
    TokenHandling {
        provider: &'static str,
        detail: String,
    },
    /// A content transfer from `user_id` has not finished: a delete refused because the
    /// user still owns content, or a second transfer refused while one runs (Box's 409
    /// `operation_blocked_temporary`). Retryable, with a long backoff.
    #[error("{provider}: transfer from user {user_id} not finished ({code}): {message}")]
    TransferPending {
        provider: &'static str,
        user_id: String,
        code: String,
        message: String,
    },
    /// Not sent: an argument cannot be valid for the provider (e.g. a user id that is not
    /// a Box id). A bug or tampered input, never worth retrying.
    #[error("not sent to {provider}: {detail}")]
    InvalidInput {
        provider: &'static str,
        detail: String,
    },
}

/// One page of a provider's user list, already mapped to accounts.
#[derive(Debug)]
pub struct RosterPage {
    pub accounts: Vec<Account>,
    /// Opaque; `None` when the roster is complete.
    pub next: Option<String>,
}

/// One login seen in the provider's activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    pub event_id: String,
    pub external_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct LoginPage {
    pub logins: Vec<LoginEvent>,
    /// Where the next page starts (kept as a string: Box positions exceed 2^53).
    pub next_position: Option<String>,
    /// True when this page was empty: the read reached the end of the window.
    pub exhausted: bool,
}

/// What the license sync reads from a provider.
#[async_trait]
pub trait LicenseSource: Send + Sync {
    async fn roster_page(&self, cursor: Option<&str>) -> Result<RosterPage, ProviderError>;
    /// Logins created in `[created_after, created_before)`, from `position` on.
    async fn login_page(
        &self,
        created_after: DateTime<Utc>,
        created_before: DateTime<Utc>,
        position: Option<&str>,
    ) -> Result<LoginPage, ProviderError>;
    /// Requests sent to the provider so far (token requests included).
    fn requests_sent(&self) -> u64;
}
