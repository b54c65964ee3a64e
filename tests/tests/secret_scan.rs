//! No secret value appears in any response, log line or stored item.
//!
//! The API and OAuth routers run in-process (as `seatkeeper serve` and the Lambdas run them)
//! over DynamoDB and Secrets Manager on moto and the Box simulator over real HTTP. The test
//! connects a tenant with client credentials, syncs it and disconnects it; then connects the
//! same tenant by OAuth, syncs it (with token refreshes) and disconnects it. Every log line
//! at TRACE level is captured as JSON; every response (status, headers, body) is kept; and at
//! the end the whole table is scanned. None of them may hold a client secret, an access or
//! refresh token, or an OAuth ticket, state, code or browser-binding value, except where the
//! flow hands that value to its holder (the ticket in the start URL answered to the caller
//! who asked, the state in the redirect to Box, the binding in its cookie).

use axum::body::Body;
use http_body_util::BodyExt;
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{Actor, IntegrationId};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::secrets::{Secrets, SecretsError};
use seatkeeper_shared::services::local_workflow::LocalWorkflow;
use seatkeeper_shared::services::reclaim::LogNotifier;
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, ServiceContext, SyncOptions,
};
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger, TriggerError};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle};
use seatkeeper_tests::{Moto, dynamo_client, dynamo_store, secrets_manager};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use tower::ServiceExt;

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

/// Where the Lambdas would be served; https, as in AWS (the secure cookie variant).
const PUBLIC_BASE_URL: &str = "https://seatkeeper.example.test";

// ---------------------------------------------------------------------------------------
// Log capture

/// Every formatted log line, as written.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// JSON lines at TRACE, every event with its spans' fields, from every crate and thread.
fn capture_logs() -> LogBuffer {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(buffer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    buffer
}

// ---------------------------------------------------------------------------------------
// Requests and what came back

/// One response as the caller saw it, and the secrets it may legitimately carry.
struct Seen {
    label: String,
    status: u16,
    text: String,
    allowed: BTreeSet<String>,
}

struct Harness {
    api: axum::Router,
    oauth: axum::Router,
    seen: Vec<Seen>,
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "JSON expected, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("text header")
            .to_owned()
    }
}

impl Harness {
    async fn call(
        &mut self,
        oauth: bool,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        allowed: &[&str],
    ) -> Answer {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).expect("request");
        request.extensions_mut().insert(Actor::Local {
            user: "secret-scan".to_owned(),
        });
        let router = if oauth { &self.oauth } else { &self.api };
        let response = router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes().to_vec();
        let mut text = format!("{}\n", parts.status);
        for (name, value) in &parts.headers {
            text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push_str(&String::from_utf8_lossy(&body));
        self.seen.push(Seen {
            label: format!("{method} {}", uri.split('?').next().unwrap_or(uri)),
            status: parts.status.as_u16(),
            text,
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
        });
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.call(false, "GET", uri, None, &[], &[]).await
    }

    /// The read routes of one integration, as an admin would use them.
    async fn read_everything(&mut self, id: &str) {
        for path in [
            "/integrations".to_owned(),
            format!("/integrations/{id}"),
            format!("/integrations/{id}/licenses"),
            format!("/integrations/{id}/accounts?limit=1000"),
            format!("/integrations/{id}/snapshots"),
            format!("/integrations/{id}/tasks"),
            format!("/integrations/{id}/audit"),
        ] {
            let answer = self.get(&path).await;
            assert_eq!(
                answer.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        let csv = self
            .call(
                false,
                "GET",
                &format!("/integrations/{id}/accounts"),
                None,
                &[("accept", "text/csv")],
                &[],
            )
            .await;
        assert_eq!(csv.status, 200);
    }
}

/// Records the syncs the handlers ask for; the test runs them itself, in order.
#[derive(Default)]
struct RecordingTrigger(Mutex<Vec<SyncRequest>>);

#[async_trait::async_trait]
impl SyncTrigger for RecordingTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        self.0.lock().unwrap().push(request.clone());
        Ok(())
    }
}

impl RecordingTrigger {
    fn take(&self) -> Vec<SyncRequest> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

// ---------------------------------------------------------------------------------------
// Where secrets live

/// The Secrets Manager adapter, remembering every value written through it: every client
/// secret and every token, rotated ones included, is looked for afterwards.
struct RecordingSecrets {
    inner: SecretsManagerSecrets,
    written: Mutex<BTreeSet<String>>,
}

#[async_trait::async_trait]
impl Secrets for RecordingSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        self.inner.get(name).await
    }

    async fn put(&self, name: &str, value: SecretString) -> Result<(), SecretsError> {
        let parsed = serde_json::from_str(value.expose_secret()).unwrap_or(Value::Null);
        collect_strings(&parsed, &mut self.written.lock().unwrap());
        self.inner.put(name, value).await
    }

    async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        self.inner.delete(name).await
    }
}

/// The string leaves of a secret's JSON that are secret material (not ids or timestamps).
fn collect_strings(value: &Value, found: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (key, value) in map {
            match value {
                Value::String(s)
                    if matches!(
                        key.as_str(),
                        "client_secret" | "refresh_token" | "access_token"
                    ) =>
                {
                    found.insert(s.clone());
                }
                other => collect_strings(other, found),
            }
        }
    }
}

/// Every item of every table, rendered as text.
async fn scan_tables() -> (usize, String) {
    let client = dynamo_client(&MOTO).await;
    let tables = client.list_tables().send().await.expect("ListTables");
    let mut items = 0;
    let mut text = String::new();
    for table in tables.table_names() {
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("Scan");
            for item in page.items() {
                items += 1;
                text.push_str(&format!("{item:?}\n"));
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
    }
    (items, text)
}

fn query_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

fn path_and_query(url: &str) -> String {
    let rest = url
        .strip_prefix(PUBLIC_BASE_URL)
        .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_BASE_URL}"));
    rest.to_owned()
}

async fn run_sync(ctx: &ServiceContext, id: &IntegrationId) {
    let sources = ProviderSources::new(
        ctx.store.clone(),
        ctx.secrets.clone(),
        ctx.clock.clone(),
        ctx.http.clone(),
        ctx.box_config.clone(),
    );
    LicenseSync {
        store: ctx.store.as_ref(),
        sources: &sources,
        clock: ctx.clock.as_ref(),
        options: SyncOptions::default(),
    }
    .run(id, None, Deadline::none())
    .await
    .expect("sync");
}

async fn start_sim() -> SimHandle {
    BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(31, 60)))
        .await
        .expect("simulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_responses_logs_or_stored_items() {
    let logs = capture_logs();
    let sim = start_sim().await;
    let trigger = Arc::new(RecordingTrigger::default());
    let recorded = Arc::new(RecordingSecrets {
        inner: secrets_manager(&MOTO).await,
        written: Mutex::default(),
    });
    let store: Arc<dyn seatkeeper_shared::store::Store> = Arc::new(dynamo_store(&MOTO).await);
    let http = HttpClient::for_tests().expect("http client");
    let box_config = BoxConfig {
        api_base: sim.base_url(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    };
    let ctx = ServiceContext {
        store: store.clone(),
        secrets: recorded.clone(),
        clock: Arc::new(SystemClock),
        http: http.clone(),
        box_config: box_config.clone(),
        box_authorize_url: sim.authorize_url(),
        public_base_url: PUBLIC_BASE_URL.to_owned(),
        sync_trigger: trigger.clone(),
        workflow: Arc::new(LocalWorkflow::in_process(
            store,
            recorded.clone(),
            Arc::new(SystemClock),
            http,
            box_config,
            Arc::new(LogNotifier),
        )),
        notifier: Arc::new(LogNotifier),
    };
    let mut h = Harness {
        api: seatkeeper_api::router(ctx.clone()),
        oauth: seatkeeper_oauth_callback::router(ctx.clone()),
        seen: Vec::new(),
    };
    // Secret material, and values that must stay where the flow puts them.
    let mut secrets: BTreeSet<String> = BTreeSet::from([sim.client_secret()]);
    let mut one_time: BTreeSet<String> = BTreeSet::new();

    // 1. Client Credentials: connect, sync, read, disconnect.
    let connect = h
        .call(
            false,
            "POST",
            "/integrations",
            Some(json!({
                "provider": "box",
                "client_id": sim.client_id(),
                "client_secret": sim.client_secret(),
                "enterprise_id": sim.enterprise_id(),
                "plan": "business",
                "seats": 80,
                "name": "Scanned tenant",
            })),
            &[],
            &[],
        )
        .await;
    assert_eq!(
        connect.status,
        201,
        "{}",
        String::from_utf8_lossy(&connect.body)
    );
    let ccg_id = connect.json()["id"].as_str().expect("id").to_owned();
    let requested = trigger.take();
    assert_eq!(requested.len(), 1, "the connect starts the first sync");
    run_sync(&ctx, &requested[0].integration_id).await;
    h.read_everything(&ccg_id).await;
    let ccg_assigned = h
        .get(&format!("/integrations/{ccg_id}/licenses"))
        .await
        .json()["seats"]["assigned"]
        .clone();
    // A wrong secret is refused without being echoed.
    let wrong = "wrong-client-secret-0123456789";
    secrets.insert(wrong.to_owned());
    let refused = h
        .call(
            false,
            "POST",
            "/integrations",
            Some(json!({
                "provider": "box", "client_id": sim.client_id(), "client_secret": wrong,
                "enterprise_id": sim.enterprise_id(), "plan": "business",
            })),
            &[],
            &[],
        )
        .await;
    assert!((400..500).contains(&refused.status));
    let deleted = h
        .call(
            false,
            "DELETE",
            &format!("/integrations/{ccg_id}"),
            None,
            &[],
            &[],
        )
        .await;
    assert_eq!(
        deleted.status,
        200,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );

    // 2. OAuth: the app's credentials, a ticket, the browser's trip, a sync with token
    //    refreshes, reads, a replayed callback, a disconnect.
    ctx.secrets
        .put(
            "seatkeeper/apps/box",
            SecretString::from(
                json!({ "client_id": sim.client_id(), "client_secret": sim.client_secret() })
                    .to_string(),
            ),
        )
        .await
        .expect("app credentials");
    let issued = h
        .call(
            false,
            "POST",
            "/integrations/oauth",
            Some(json!({ "provider": "box", "plan": "business_plus", "name": "OAuth tenant" })),
            &[],
            &[],
        )
        .await;
    assert_eq!(
        issued.status,
        201,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    let start_url = issued.json()["start_url"]
        .as_str()
        .expect("start_url")
        .to_owned();
    let ticket = query_param(&start_url, "ticket");
    one_time.insert(ticket.clone());
    // Only this answer, to the caller who asked, carries the ticket.
    h.seen
        .last_mut()
        .expect("seen")
        .allowed
        .insert(ticket.clone());

    let start = h
        .call(true, "GET", &path_and_query(&start_url), None, &[], &[])
        .await;
    assert_eq!(
        start.status,
        302,
        "{}",
        String::from_utf8_lossy(&start.body)
    );
    let authorize = start.header("location");
    let state = query_param(&authorize, "state");
    let set_cookie = start.header("set-cookie");
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let binding = cookie.split_once('=').expect("value").1.to_owned();
    one_time.extend([state.clone(), binding.clone()]);
    let last = h.seen.last_mut().expect("seen");
    last.allowed.extend([state.clone(), binding.clone()]);

    let consent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
        .get(&authorize)
        .send()
        .await
        .expect("authorize");
    assert_eq!(consent.status(), 302);
    let back = consent.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let code = query_param(&back, "code");
    one_time.insert(code.clone());

    let page = h
        .call(
            true,
            "GET",
            &path_and_query(&back),
            None,
            &[("cookie", cookie.as_str())],
            &[],
        )
        .await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let requested = trigger.take();
    assert_eq!(requested.len(), 1, "the callback starts the first sync");
    let oauth_id = requested[0].integration_id.clone();

    // Tokens wear out every few requests, so the sync refreshes (and rotates) them.
    sim.set_faults(Faults {
        token_lifetime_requests: Some(4),
        ..Faults::default()
    });
    run_sync(&ctx, &oauth_id).await;
    sim.set_faults(Faults::default());
    assert!(
        sim.oauth_stats().refresh_token_grants >= 1,
        "the sync refreshed its token: {:?}",
        sim.oauth_stats()
    );
    h.read_everything(&oauth_id.to_string()).await;
    // The admin who authorised holds a seat like any managed user (only a client-credentials
    // service account holds none): both ways of connecting count the same seats.
    let oauth_assigned = h
        .get(&format!("/integrations/{oauth_id}/licenses"))
        .await
        .json()["seats"]["assigned"]
        .clone();
    assert!(
        ccg_assigned.as_u64().is_some_and(|n| n > 0),
        "{ccg_assigned}"
    );
    assert_eq!(oauth_assigned, ccg_assigned);

    let replay = h
        .call(
            true,
            "GET",
            &path_and_query(&back),
            None,
            &[("cookie", cookie.as_str())],
            &[],
        )
        .await;
    assert_eq!(replay.status, 400, "a replayed state is refused");
    let deleted = h
        .call(
            false,
            "DELETE",
            &format!("/integrations/{oauth_id}"),
            None,
            &[],
            &[],
        )
        .await;
    assert_eq!(
        deleted.status,
        200,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    assert!(sim.oauth_stats().revocations >= 1, "the grant was revoked");

    // 3. The scan.
    secrets.extend(recorded.written.lock().unwrap().iter().cloned());
    let (items, table) = scan_tables().await;
    let log_text = logs.text();
    let secret_count = secrets.len();
    let all: BTreeSet<String> = secrets.into_iter().chain(one_time).collect();
    for value in &all {
        assert!(
            value.len() >= 16,
            "too short to be a meaningful search: {value:?}"
        );
    }
    assert!(
        secret_count >= 5,
        "client secret, a wrong secret, and at least two access and two refresh tokens: {secret_count}"
    );
    for value in &all {
        assert!(
            !log_text.contains(value.as_str()),
            "a secret is in the logs: {}",
            log_text
                .lines()
                .find(|l| l.contains(value.as_str()))
                .unwrap_or_default()
                .replace(value.as_str(), "<SECRET>")
        );
        assert!(!table.contains(value.as_str()), "a secret is in the table");
        for seen in h.seen.iter().filter(|s| !s.allowed.contains(value)) {
            assert!(
                !seen.text.contains(value.as_str()),
                "a secret is in the response to {} ({})",
                seen.label,
                seen.status
            );
        }
    }
    // The scan looked at real data.
    let log_lines = log_text.lines().count();
    assert!(log_lines > 100, "{log_lines} log lines");
    assert!(
        log_text.contains("TRACE") && log_text.contains("Box integration connected"),
        "every level, our events included"
    );
    assert!(
        items > 120,
        "{items} items: two syncs' accounts, snapshots, task runs, audit"
    );
    assert!(h.seen.len() >= 20, "{} responses", h.seen.len());
    sim.shutdown().await;
}
