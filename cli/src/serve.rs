//! `seatkeeper serve`: the API and OAuth handlers of the Lambda functions, served on
//! 127.0.0.1 over the embedded store, so a tenant can be connected from a laptop.
//!
//! A local server is reachable by every web page the user visits (a page can send requests
//! to 127.0.0.1, and DNS rebinding can make a foreign name resolve to it), so a guard in front
//! of every route makes it useless to them: only `Host: 127.0.0.1|localhost[:port]`; a bearer
//! token on every route but the OAuth ones (a page cannot add an `Authorization` header to a
//! cross-origin request without a CORS preflight, and no CORS header is ever sent); request
//! bodies only as `application/json` (which a plain form or `fetch` without preflight cannot
//! send). The OAuth routes need no token because the browser follows them from Box; they
//! are protected by their single-use ticket and state.

use crate::app::{InProcessSyncTrigger, LocalApp};
use anyhow::{Context, Result};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, StatusCode};
use seatkeeper_shared::domain::Actor;
use seatkeeper_shared::services::ServiceContext;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// `seatkeeper serve`'s default port.
pub const DEFAULT_PORT: u16 = 8787;
/// Largest request body accepted (the API's limit too).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Where the token comes from when it is not generated.
pub const TOKEN_ENV: &str = "SEATKEEPER_LOCAL_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "{TOKEN_ENV} must be 16 to 512 printable ASCII characters without spaces (it is a password: make it long and random)"
    )]
    Unusable,
}

/// The bearer token of the local server. Only its digest is compared, in constant time.
pub struct LocalToken {
    value: SecretString,
    digest: [u8; 32],
    from_env: bool,
}

impl LocalToken {
    /// `SEATKEEPER_LOCAL_TOKEN` if set, else 256 random bits (hex).
    pub fn from_env_or_random() -> Result<Self, TokenError> {
        match std::env::var(TOKEN_ENV) {
            Ok(value) if !value.is_empty() => Self::parse(value),
            _ => Ok(Self::new(random_hex_token(), false)),
        }
    }

    fn parse(value: String) -> Result<Self, TokenError> {
        let usable =
            (16..=512).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        if !usable {
            return Err(TokenError::Unusable);
        }
        Ok(Self::new(value, true))
    }

    fn new(value: String, from_env: bool) -> Self {
        let digest = Sha256::digest(value.as_bytes()).into();
        Self {
            value: SecretString::from(value),
            digest,
            from_env,
        }
    }

    /// Compares digests, so neither the length nor the content of the presented token
    /// changes how long the comparison takes.
    fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let difference = self
            .digest
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// 256 random bits (a CSPRNG seeded by the operating system), as 64 hex digits.
fn random_hex_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who the handlers see as the caller: whoever runs the server on this machine.
pub fn local_actor() -> Actor {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "local".to_owned());
    Actor::Local { user }
}

/// What the guard checks every request against.
struct Guard {
    port: u16,
    token: LocalToken,
    actor: Actor,
}

/// How an OAuth callback ended (for `connect box --oauth`, which waits for it).
#[derive(Debug, Clone, Copy)]
pub struct CallbackOutcome {
    pub status: StatusCode,
}

/// The api router and the oauth router behind the guard. Requests under `/oauth/` go to the
/// OAuth handlers (each router keeps its own fallback, so neither is merged into the other).
pub fn local_router(
    ctx: ServiceContext,
    port: u16,
    token: LocalToken,
    actor: Actor,
    callbacks: Option<mpsc::UnboundedSender<CallbackOutcome>>,
) -> axum::Router {
    let api = seatkeeper_api::router(ctx.clone());
    let oauth = seatkeeper_oauth_callback::router(ctx);
    let dispatch = tower::service_fn(move |request: Request| {
        let path = request.uri().path();
        let is_oauth = is_oauth_path(path);
        let is_callback = is_oauth && path.ends_with("/callback");
        let api = api.clone();
        let oauth = oauth.clone();
        let callbacks = callbacks.clone();
        async move {
            let response = if is_oauth {
                oauth.oneshot(request).await
            } else {
                api.oneshot(request).await
            };
            if let (true, Some(callbacks), Ok(response)) = (is_callback, &callbacks, &response) {
                // Nobody listening any more is fine: the command already finished.
                let _ = callbacks.send(CallbackOutcome {
                    status: response.status(),
                });
            }
            response
        }
    });
    let guard = Arc::new(Guard { port, token, actor });
    axum::Router::new()
        .fallback_service(dispatch)
        .layer(axum::middleware::from_fn_with_state(guard, guard_request))
}

fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/oauth/")
}

async fn guard_request(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if !host_allowed(&request, guard.port) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            "this server answers only to Host 127.0.0.1 or localhost",
        );
    }
    if !is_oauth_path(request.uri().path()) && !bearer_matches(request.headers(), &guard.token) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the token `seatkeeper serve` printed as `Authorization: Bearer <token>`",
        );
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return response;
    }
    let mut request = if has_body(request.headers()) {
        if !is_json(request.headers()) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request bodies must be JSON (Content-Type: application/json)",
            );
        }
        match buffer_body(request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    request.extensions_mut().insert(guard.actor.clone());
    next.run(request).await
}

/// Exactly one Host header naming the loopback address or `localhost`, on our port if a
/// port is given; an absolute-form request target must name the same.
fn host_allowed(request: &Request, port: u16) -> bool {
    let mut hosts = request.headers().get_all(HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    if !authority_allowed(host, port) {
        return false;
    }
    request
        .uri()
        .authority()
        .is_none_or(|authority| authority_allowed(authority.as_str(), port))
}

fn authority_allowed(authority: &str, port: u16) -> bool {
    let (name, given_port) = match authority.rsplit_once(':') {
        Some((name, p)) => match p.parse::<u16>() {
            Ok(p) => (name, Some(p)),
            Err(_) => return false,
        },
        None => (authority, None),
    };
    (name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost"))
        && given_port.is_none_or(|p| p == port)
}

fn bearer_matches(headers: &HeaderMap, token: &LocalToken) -> bool {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let value = value.as_bytes();
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared as sent.
    match value.split_at_checked(7) {
        Some((scheme, presented)) if scheme.eq_ignore_ascii_case(b"bearer ") => {
            token.matches(presented)
        }
        _ => false,
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value.to_str().is_ok_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Reads the body (at most [`MAX_BODY_BYTES`]) before any handler runs, so an oversized or
/// broken body is refused here with a JSON answer whatever the route.
async fn buffer_body(request: Request) -> Result<Request, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request bodies are limited to 1 MiB",
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if is_length_limit(&e) => return Err(too_large()),
        Err(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            ));
        }
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The API's error shape, `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(serde_json::json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// Binds `127.0.0.1:port` (never a wildcard address); port 0 picks a free one.
pub async fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} (is another server using it? choose one with --port)"))
}

/// A local server running on this process's runtime (for `connect box --oauth`).
pub struct LocalServer {
    pub base_url: String,
    pub trigger: Arc<InProcessSyncTrigger>,
    pub context: ServiceContext,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    pub async fn start(
        app: &LocalApp,
        listener: TcpListener,
        callbacks: Option<mpsc::UnboundedSender<CallbackOutcome>>,
    ) -> Result<Self> {
        let port = listener.local_addr()?.port();
        let base_url = format!("http://127.0.0.1:{port}");
        let trigger = app.in_process_trigger();
        let context = app.service_context(base_url.clone(), trigger.clone());
        let token = LocalToken::from_env_or_random()?;
        let router = local_router(context.clone(), port, token, local_actor(), callbacks);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            base_url,
            trigger,
            context,
            shutdown,
            task,
        })
    }

    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.context("the local server task failed")??;
        Ok(())
    }
}

/// `seatkeeper serve`: serves until Ctrl-C (or SIGTERM), then lets running syncs finish.
pub async fn run(app: LocalApp, port: u16) -> Result<()> {
    let token = LocalToken::from_env_or_random()?;
    let listener = bind(port).await?;
    let port = listener.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let trigger = app.in_process_trigger();
    let context = app.service_context(base_url.clone(), trigger.clone());
    announce(&base_url, &token);
    let router = local_router(context, port, token, local_actor(), None);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal())
        .await
        .context("the local server failed")?;
    let running = trigger.running();
    if running > 0 {
        // A sync cut short is safe (its lease expires and the next one starts afresh), but
        // finishing it is better.
        eprintln!(
            "Stopped listening; waiting for {running} running sync(s) to finish (Ctrl-C again to stop now)"
        );
        tokio::select! {
            () = trigger.wait_idle() => {}
            () = stop_signal() => {}
        }
    }
    Ok(())
}

/// The one time the token is shown: on stdout, next to the URL.
fn announce(base_url: &str, token: &LocalToken) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Seatkeeper is listening on {base_url} (this machine only)"
    );
    if token.from_env {
        let _ = writeln!(out, "Token: the value of {TOKEN_ENV}");
    } else {
        let _ = writeln!(out, "Token: {}", token.value.expose_secret());
    }
    let _ = writeln!(
        out,
        "Send it as `Authorization: Bearer <token>`, e.g. curl -H \"Authorization: Bearer $TOKEN\" {base_url}/integrations"
    );
    let _ = writeln!(
        out,
        "OpenAPI document: {base_url}/openapi.json. Stop with Ctrl-C."
    );
    let _ = out.flush();
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_on_our_port_are_accepted() {
        for ok in ["127.0.0.1", "127.0.0.1:8787", "localhost", "LocalHost:8787"] {
            assert!(authority_allowed(ok, 8787), "{ok}");
        }
        for bad in [
            "127.0.0.1:8788",
            "evil.example",
            "evil.example:8787",
            "127.0.0.1.evil.example",
            "localhost.:8787",
            "[::1]:8787",
            "0.0.0.0:8787",
            "127.0.0.1:",
            "",
        ] {
            assert!(!authority_allowed(bad, 8787), "{bad}");
        }
    }

    #[test]
    fn the_token_matches_only_itself() {
        let token = LocalToken::parse("a-long-enough-test-token".to_owned()).expect("usable");
        assert!(token.matches(b"a-long-enough-test-token"));
        assert!(!token.matches(b"a-long-enough-test-toke"));
        assert!(!token.matches(b""));
        assert!(LocalToken::parse("short".to_owned()).is_err());
        assert!(LocalToken::parse("has a space in the middle".to_owned()).is_err());
    }

    #[test]
    fn a_generated_token_has_256_bits_and_is_never_repeated() {
        let a = random_hex_token();
        let b = random_hex_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&headers));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&headers));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jsonx"));
        assert!(!is_json(&headers));
    }
}
