//! No secret value reaches a response, a log line or the store.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::{Event, TestApp};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_client_secret_reaches_a_response_a_log_line_or_the_store() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    // The test runs on one thread (current-thread runtime): the guard covers every request.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::start(15).await;
    let secret = app.sim.client_secret();
    let mut responses = Vec::new();
    let mut wrong = app.connect_body();
    wrong["client_secret"] = json!("wrong-secret-value-123");
    responses.push(app.send(Event::post("/integrations").json(&wrong)).await);
    let mut typo = app.connect_body();
    typo["seats"] = json!("lots");
    responses.push(app.send(Event::post("/integrations").json(&typo)).await);
    responses.push(
        app.send(
            Event::post("/integrations")
                .header("content-type", "text/plain")
                .body(&app.connect_body().to_string()),
        )
        .await,
    );
    let ok = app
        .send(Event::post("/integrations").json(&app.connect_body()))
        .await;
    let id = ok.json()["id"].as_str().expect("id").to_owned();
    responses.push(ok);
    app.sync(&seatkeeper_shared::domain::IntegrationId::parse(&id).expect("id"))
        .await;
    for path in [
        "",
        "/audit",
        "/licenses",
        "/accounts",
        "/tasks",
        "/snapshots",
    ] {
        responses.push(
            app.send(Event::get(&format!("/integrations/{id}{path}")))
                .await,
        );
    }
    responses.push(
        app.send(Event::delete(&format!("/integrations/{id}")))
            .await,
    );
    responses.push(app.send(Event::get("/integrations")).await);

    for response in &responses {
        let text = response.text();
        assert!(
            !text.contains(&secret),
            "a response holds the secret: {text}"
        );
        assert!(!text.contains("wrong-secret-value-123"), "{text}");
    }
    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(!logged.is_empty(), "logs were captured");
    assert!(!logged.contains(&secret), "a log line holds the secret");
    assert!(!logged.contains("wrong-secret-value-123"));
    let store = std::fs::read(app.dir.path().join("store.redb")).expect("store file");
    assert!(
        !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the store holds the secret"
    );
}
