//! No ticket, state, binding nonce, code, token or client secret reaches a log line, at any
//! level, on success or refusal. One test per binary: it installs the global subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;
use support::{Harness, new_box_request};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn no_secret_value_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            "seatkeeper_shared=trace,seatkeeper_oauth_callback=trace,lambda_http=trace,warn",
        )
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::new().await;
    // Success.
    let ticket = h.ticket(new_box_request()).await;
    let start = h.start(&ticket).await;
    let back = h.authorize(&start, "approve").await;
    let cookies = [start.cookie.clone()];
    h.callback(&back, &cookies).await.assert_callback_page(200);
    // Refusals: a replay, a used ticket, a forged code.
    h.callback(&back, &cookies).await.assert_callback_page(400);
    h.get(
        "/oauth/box/start",
        &format!("ticket={}", ticket.expose_secret()),
        &[],
    )
    .await
    .assert_page(400);
    let other = h.start(&h.ticket(new_box_request()).await).await;
    h.get(
        "/oauth/box/callback",
        &format!("code=forged-code-value&state={}", other.state),
        std::slice::from_ref(&other.cookie),
    )
    .await
    .assert_callback_page(400);

    let integration = h.store.list_integrations().await.unwrap().remove(0);
    let creds = h.credentials(&integration).await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let nonce = start.cookie.split_once('=').unwrap().1.to_owned();
    let logs = captured.text();
    assert!(
        logs.contains("OAuth connect completed"),
        "the capture works: {logs}"
    );
    for (what, value) in [
        ("ticket", ticket.expose_secret().to_owned()),
        ("state", start.state.clone()),
        ("other state", other.state.clone()),
        ("binding nonce", nonce),
        ("code", code),
        ("forged code", "forged-code-value".to_owned()),
        (
            "refresh token",
            creds.refresh_token.unwrap().expose_secret().to_owned(),
        ),
        (
            "access token",
            creds.access_token.unwrap().expose_secret().to_owned(),
        ),
        ("client secret", h.sim.client_secret()),
    ] {
        assert!(!logs.contains(&value), "the {what} is in the logs");
    }
}
