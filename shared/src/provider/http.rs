//! The one HTTP client every provider goes through.
//!
//! [`HttpClient::send`] builds a request from a closure (so it can be rebuilt for each
//! attempt), sends it, reads the whole body and retries what is worth retrying:
//!
//! - `429 Too Many Requests`: waits `Retry-After` (capped) or backs off;
//! - `5xx` and `202 Accepted` with `Retry-After` (the provider is still working);
//! - transport failures: connect errors always (nothing reached the server); timeouts,
//!   closed/reset connections and broken bodies only when the request is
//!   [`Idempotency::Idempotent`], because the provider may already have acted on it.
//!
//! Backoff is full-jitter exponential: `U(0.5, 1.5) * base * 2^retry`, capped at
//! `max_delay`. Attempts are bounded by [`RetryPolicy::max_attempts`]; after the last one
//! the caller gets [`ProviderError::RateLimited`] or [`ProviderError::Unavailable`]. Any
//! other status (2xx, 3xx, 4xx) is handed back for the caller to interpret.
//!
//! Nothing here logs or reports a URL, header or body: error details are a short kind
//! ("HTTP 503", "timeout", "connection closed") plus the low-level cause.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use super::ProviderError;

/// How hard [`HttpClient::send`] tries before giving up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (0 is treated as 1).
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub base_delay: Duration,
    /// Upper bound of one backoff delay.
    pub max_delay: Duration,
    /// Upper bound of a wait asked for by `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Same attempts as the default, but millisecond waits (`Retry-After` included) so
    /// fault-injection tests run fast.
    pub fn fast_for_tests() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(50),
        }
    }

    /// Attempts actually made: at least one.
    fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// Randomised backoff before retry number `retry` (0 = the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let jitter = rand::rng().random_range(0.5..1.5);
        self.backoff_with_jitter(retry, jitter)
    }

    /// Backoff for a given jitter factor (expected in `0.5..1.5`):
    /// `min(max_delay, jitter * min(max_delay, base * 2^retry))`.
    ///
    /// The exponential part is capped before the jitter is applied so the arithmetic
    /// cannot overflow and delays near the cap stay spread out (no thundering herd).
    pub fn backoff_with_jitter(&self, retry: u32, jitter: f64) -> Duration {
        let exponential = 2u32
            .checked_pow(retry)
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 2.0)
        } else {
            1.0
        };
        exponential.mul_f64(jitter).min(self.max_delay)
    }

    /// The wait a response asks for with `Retry-After`, capped at `max_retry_after`;
    /// `None` when the header is missing or unreadable.
    pub fn retry_after(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
        let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
        parse_retry_after(value, now).map(|wait| wait.min(self.max_retry_after))
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, a date in the past meaning "now").
/// Anything else (negative, fractional, garbage) is `None`, so the caller backs off.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // A number too large for u64 is still a (very long) delay: the caller caps it.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether a request may be sent again when its fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it is harmless (GET, token requests, PUT of a full state, …).
    Idempotent,
    /// Repeating it could act twice: retried only when the provider certainly did not
    /// act on it (connect errors, 429).
    NotIdempotent,
}

/// Describes one logical call for [`HttpClient::send`]: who it goes to, what it is (for
/// logs and errors; must not contain secrets), how to retry it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub provider: &'static str,
    pub operation: &'static str,
    pub policy: &'a RetryPolicy,
    pub idempotency: Idempotency,
    /// Overrides the client's request timeout (e.g. Box content transfers > 10 min).
    pub timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    /// An idempotent call with the client's default timeout.
    pub fn new(provider: &'static str, operation: &'static str, policy: &'a RetryPolicy) -> Self {
        Self {
            provider,
            operation,
            policy,
            idempotency: Idempotency::Idempotent,
            timeout: None,
        }
    }

    pub fn not_idempotent(mut self) -> Self {
        self.idempotency = Idempotency::NotIdempotent;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A response whose body has been read completely (so a connection dropped mid-body is
/// retried like any other transport failure).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Decodes the body as JSON. The error names the position, never the content (which
    /// may hold tokens or personal data).
    pub fn json<T: DeserializeOwned>(&self, provider: &'static str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|err| ProviderError::Malformed {
            provider,
            detail: describe_json_error(&err),
        })
    }
}

/// A JSON error without the offending input (serde quotes values in its messages).
pub fn describe_json_error(err: &serde_json::Error) -> String {
    format!(
        "invalid JSON ({:?} error at line {} column {})",
        err.classify(),
        err.line(),
        err.column()
    )
}

/// Settings of the underlying `reqwest::Client`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    /// Default whole-request timeout (body included); see [`Call::with_timeout`].
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Honour `HTTP(S)_PROXY`/`NO_PROXY` from the environment (production). Loopback
    /// tests turn it off so a proxy in the environment cannot intercept them.
    pub use_env_proxy: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(50),
            use_env_proxy: true,
        }
    }
}

impl HttpConfig {
    /// For servers on 127.0.0.1: no proxy, short timeouts.
    pub fn for_tests() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(10),
            use_env_proxy: false,
        }
    }
}

/// The shared HTTP client. Cloning is cheap and shares the connection pool and the
/// request counter; [`HttpClient::with_new_counter`] shares only the pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    sent: Arc<AtomicU64>,
}

impl HttpClient {
    pub fn new(config: &HttpConfig) -> Result<Self, reqwest::Error> {
        // No redirects: a 307/308 on a token POST would resend the client secret elsewhere.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(config.pool_idle_timeout)
            .user_agent(concat!("seatkeeper/", env!("CARGO_PKG_VERSION")));
        if !config.use_env_proxy {
            builder = builder.no_proxy();
        }
        Ok(Self {
            client: builder.build()?,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// [`HttpClient::new`] with [`HttpConfig::for_tests`].
    pub fn for_tests() -> Result<Self, reqwest::Error> {
        Self::new(&HttpConfig::for_tests())
    }

    /// The same connection pool with its own request counter (one per integration run).
    pub fn with_new_counter(&self) -> Self {
        Self {
            client: self.client.clone(),
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests that reached the network, retries and token requests included
    /// (connect failures excluded: the server never saw them).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends the request `build` makes, retrying as the module docs describe.
    ///
    /// `build` is called once per attempt. Returns the first response that is neither
    /// 429, 5xx nor 202-with-`Retry-After`, whatever its status.
    pub async fn send(
        &self,
        call: Call<'_>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<HttpResponse, ProviderError> {
        let attempts = call.policy.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(&call, &build).await {
                Outcome::Done(response) => return Ok(response),
                Outcome::Fatal(detail) => {
                    return Err(ProviderError::Unavailable {
                        provider: call.provider,
                        attempts: attempt,
                        detail,
                    });
                }
                Outcome::Retry(failure) => failure,
            };
            if attempt >= attempts {
                tracing::debug!(
                    provider = call.provider,
                    operation = call.operation,
                    attempt,
                    reason = %failure.detail,
                    "giving up"
                );
                return Err(failure.into_error(call.provider, attempt));
            }
            let delay = failure
                .retry_after
                .unwrap_or_else(|| call.policy.backoff(attempt - 1));
            tracing::debug!(
                provider = call.provider,
                operation = call.operation,
                attempt,
                reason = %failure.detail,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Outcome {
        let mut builder = build(&self.client);
        if let Some(timeout) = call.timeout {
            builder = builder.timeout(timeout);
        }
        let request = match builder.build() {
            Ok(request) => request,
            // A bad URL or header is a bug or a misconfiguration: retrying cannot help.
            Err(err) => return Outcome::Fatal(format!("invalid request: {}", root_cause(&err))),
        };
        let response = match self.client.execute(request).await {
            Ok(response) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                response
            }
            Err(err) => {
                if !err.is_connect() {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                }
                return transport_outcome(&err, call.idempotency);
            }
        };
        let status = response.status();
        let retry_after = call.policy.retry_after(response.headers(), Utc::now());
        if let Some(kind) = retryable_status(status, response.headers(), call.idempotency) {
            return Outcome::Retry(Failure {
                kind,
                retry_after,
                detail: format!("HTTP {}", status.as_u16()),
            });
        }
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(body) => Outcome::Done(HttpResponse {
                status,
                headers,
                body: Vec::from(body),
            }),
            Err(err) => transport_outcome(&err, call.idempotency),
        }
    }
}

enum Outcome {
    Done(HttpResponse),
    Retry(Failure),
    Fatal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    RateLimited,
    Unavailable,
}

struct Failure {
    kind: FailureKind,
    /// The wait the server asked for (already capped), if any.
    retry_after: Option<Duration>,
    detail: String,
}

impl Failure {
    fn into_error(self, provider: &'static str, attempts: u32) -> ProviderError {
        match self.kind {
            FailureKind::RateLimited => ProviderError::RateLimited { provider, attempts },
            FailureKind::Unavailable => ProviderError::Unavailable {
                provider,
                attempts,
                detail: self.detail,
            },
        }
    }
}

/// Which statuses are retried. A 5xx or 202 means the provider may have acted, so only
/// idempotent requests repeat them; a 429 was refused outright and is always retried.
fn retryable_status(
    status: StatusCode,
    headers: &HeaderMap,
    idempotency: Idempotency,
) -> Option<FailureKind> {
    let idempotent = idempotency == Idempotency::Idempotent;
    if status == StatusCode::TOO_MANY_REQUESTS {
        Some(FailureKind::RateLimited)
    } else if status.is_server_error() && idempotent {
        Some(FailureKind::Unavailable)
    } else if status == StatusCode::ACCEPTED && headers.contains_key(RETRY_AFTER) && idempotent {
        // Box: "202 with Retry-After" = not ready yet, ask again later.
        Some(FailureKind::Unavailable)
    } else {
        None
    }
}

/// Classifies a transport error: retried when nothing reached the server (connect) or
/// when repeating the request is harmless.
fn transport_outcome(err: &reqwest::Error, idempotency: Idempotency) -> Outcome {
    let kind = if err.is_connect() {
        "connect error"
    } else if err.is_timeout() {
        "timeout"
    } else if err.is_body() || err.is_decode() {
        "response body interrupted"
    } else if err.is_request() {
        "connection closed or reset"
    } else if err.is_redirect() {
        return Outcome::Fatal(format!("redirect error: {}", root_cause(err)));
    } else {
        return Outcome::Fatal(format!("request failed: {}", root_cause(err)));
    };
    let detail = format!("{kind}: {}", root_cause(err));
    if err.is_connect() || idempotency == Idempotency::Idempotent {
        Outcome::Retry(Failure {
            kind: FailureKind::Unavailable,
            retry_after: None,
            detail,
        })
    } else {
        Outcome::Fatal(detail)
    }
}

/// The innermost cause of a reqwest error (an io/hyper message), which unlike reqwest's
/// own message never carries the URL.
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut innermost = None;
    while let Some(current) = cause {
        innermost = Some(current);
        cause = current.source();
    }
    match innermost {
        Some(inner) => inner.to_string(),
        None => "no further detail".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn backoff_doubles_per_retry_without_jitter() {
        let p = policy();
        assert_eq!(p.backoff_with_jitter(0, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff_with_jitter(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff_with_jitter(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.backoff_with_jitter(6, 1.0), Duration::from_secs(32));
    }

    #[test]
    fn backoff_jitter_spans_half_to_one_and_a_half() {
        let p = policy();
        assert_eq!(p.backoff_with_jitter(2, 0.5), Duration::from_secs(1));
        assert_eq!(p.backoff_with_jitter(2, 1.5), Duration::from_secs(3));
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let p = policy();
        assert_eq!(p.backoff_with_jitter(7, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff_with_jitter(7, 1.5), Duration::from_secs(60));
        assert_eq!(p.backoff_with_jitter(7, 0.5), Duration::from_secs(30));
        assert_eq!(p.backoff_with_jitter(40, 1.0), Duration::from_secs(60));
        assert_eq!(
            p.backoff_with_jitter(u32::MAX, 1.4),
            Duration::from_secs(60)
        );
        assert_eq!(p.backoff_with_jitter(3, f64::NAN), Duration::from_secs(4));
    }

    #[test]
    fn random_backoff_stays_within_bounds() {
        let p = policy();
        for retry in 0..12 {
            let exponential = p
                .base_delay
                .saturating_mul(2u32.saturating_pow(retry))
                .min(p.max_delay);
            for _ in 0..200 {
                let delay = p.backoff(retry);
                assert!(delay >= exponential.mul_f64(0.5), "{delay:?} at {retry}");
                assert!(delay <= exponential.mul_f64(1.5).min(p.max_delay));
            }
        }
    }

    #[test]
    fn fast_policy_is_fast() {
        let p = RetryPolicy::fast_for_tests();
        assert!(p.backoff(30) <= Duration::from_millis(50));
        assert_eq!(p.max_attempts, RetryPolicy::default().max_attempts);
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert_eq!(p.attempts(), 1);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1", now()), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 30 ", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_http_date() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now()),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        for value in ["", "  ", "-1", "1.5", "soon", "0x10", "1e3", "+5"] {
            assert_eq!(parse_retry_after(value, now()), None, "{value:?}");
        }
    }

    #[test]
    fn retry_after_header_is_capped() {
        let p = policy();
        let mut headers = HeaderMap::new();
        assert_eq!(p.retry_after(&headers, now()), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(p.retry_after(&headers, now()), Some(Duration::from_secs(5)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(
            p.retry_after(&headers, now()),
            Some(Duration::from_secs(120))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("later"));
        assert_eq!(p.retry_after(&headers, now()), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(p.retry_after(&headers, now()), None);
    }

    #[test]
    fn retryable_statuses() {
        use Idempotency::*;
        let none = HeaderMap::new();
        let mut with_retry_after = HeaderMap::new();
        with_retry_after.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        let check = |status: u16, headers: &HeaderMap, idem| {
            retryable_status(StatusCode::from_u16(status).unwrap(), headers, idem)
        };
        assert_eq!(
            check(429, &none, Idempotent),
            Some(FailureKind::RateLimited)
        );
        assert_eq!(
            check(429, &none, NotIdempotent),
            Some(FailureKind::RateLimited)
        );
        assert_eq!(
            check(500, &none, Idempotent),
            Some(FailureKind::Unavailable)
        );
        assert_eq!(check(503, &none, NotIdempotent), None);
        assert_eq!(
            check(202, &with_retry_after, Idempotent),
            Some(FailureKind::Unavailable)
        );
        assert_eq!(check(202, &none, Idempotent), None);
        for status in [200, 204, 301, 400, 401, 403, 404, 409] {
            assert_eq!(
                check(status, &with_retry_after, Idempotent),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn json_errors_do_not_quote_the_body() {
        let response = HttpResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: br#"{"access_token": 987654321, "secret": "hunter2"}"#.to_vec(),
        };
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Token {
            access_token: String,
        }
        let err = response.json::<Token>("box").unwrap_err().to_string();
        assert!(
            !err.contains("987654321") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
