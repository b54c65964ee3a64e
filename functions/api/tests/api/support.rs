//! The API as Lambda runs it: real API Gateway HTTP API (v2) event JSON, turned into a
//! request by `lambda_http` and served by the router, over the CLI's adapters (embedded store,
//! file secrets) and the Box simulator. Every response is checked against `openapi.json`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use seatkeeper_shared::clock::{Clock, FixedClock};
use seatkeeper_shared::domain::{Actor, IntegrationId, TaskToken};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::Secrets;
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::reclaim::LogNotifier;
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, ServiceContext, SyncOptions,
};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger, TriggerError};
use seatkeeper_shared::workflow::{
    ExecutionId, ExecutionInput, TaskFailure, Workflow, WorkflowError, execution_name,
};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::schema::OpenApi;

pub const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
pub const PUBLIC_BASE_URL: &str = "https://api.seatkeeper.example";

/// The simulated "now" of the tenant; the API's clock runs five minutes later.
pub fn tenant_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn tenant(seed: u64, users: usize) -> BoxTenantSpec {
    let mut spec = BoxTenantSpec::new(seed, users);
    spec.now = tenant_now();
    spec
}

/// The `Workflow` port's test double: records every call; its start can be told to fail.
/// (The Step Functions adapter is tested on moto with the state machine itself.)
#[derive(Default)]
pub struct RecordingWorkflow {
    pub starts: Mutex<Vec<ExecutionInput>>,
    pub successes: Mutex<Vec<(String, Value)>>,
    pub failures: Mutex<Vec<(String, TaskFailure)>>,
    pub fail_start: AtomicBool,
}

impl RecordingWorkflow {
    pub fn started(&self) -> Vec<ExecutionInput> {
        self.starts.lock().expect("lock").clone()
    }

    pub fn successes(&self) -> Vec<(String, Value)> {
        self.successes.lock().expect("lock").clone()
    }

    pub fn failures(&self) -> Vec<(String, TaskFailure)> {
        self.failures.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Workflow for RecordingWorkflow {
    async fn start(&self, input: &ExecutionInput) -> Result<ExecutionId, WorkflowError> {
        if self.fail_start.load(Ordering::SeqCst) {
            return Err(WorkflowError::Service {
                operation: "start an execution",
                source: "the service is down (test)".into(),
            });
        }
        self.starts.lock().expect("lock").push(input.clone());
        Ok(ExecutionId::new(format!(
            "arn:aws:states:eu-west-1:123456789012:execution:sk-reclaim:{}",
            execution_name(&input.job_id)
        )))
    }

    async fn send_task_success(
        &self,
        token: &TaskToken,
        output: &Value,
    ) -> Result<(), WorkflowError> {
        self.successes
            .lock()
            .expect("lock")
            .push((token.expose().to_owned(), output.clone()));
        Ok(())
    }

    async fn send_task_failure(
        &self,
        token: &TaskToken,
        failure: TaskFailure,
        _cause: &str,
    ) -> Result<(), WorkflowError> {
        self.failures
            .lock()
            .expect("lock")
            .push((token.expose().to_owned(), failure));
        Ok(())
    }

    async fn stop(&self, _execution: &ExecutionId, _cause: &str) -> Result<(), WorkflowError> {
        panic!("the API never stops an execution")
    }
}

/// Records what it was asked to start; can be told to fail.
#[derive(Default)]
pub struct RecordingTrigger {
    pub requests: Mutex<Vec<SyncRequest>>,
}

impl RecordingTrigger {
    pub fn started(&self) -> Vec<IntegrationId> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.integration_id.clone())
            .collect()
    }
}

#[async_trait]
impl SyncTrigger for RecordingTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        self.requests.lock().expect("lock").push(request.clone());
        Ok(())
    }
}

pub struct TestApp {
    pub sim: SimHandle,
    pub ctx: ServiceContext,
    pub clock: Arc<FixedClock>,
    pub trigger: Arc<RecordingTrigger>,
    pub workflow: Arc<RecordingWorkflow>,
    pub dir: tempfile::TempDir,
    pub openapi: OpenApi,
    router: Router,
}

impl TestApp {
    pub async fn start(users: usize) -> Self {
        Self::with_sim(BoxSimConfig::new(tenant(1, users))).await
    }

    pub async fn with_sim(config: BoxSimConfig) -> Self {
        let sim = BoxSim::start(config).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("store.redb")).expect("store opens");
        let clock = Arc::new(FixedClock::new(tenant_now() + Duration::minutes(5)));
        let trigger = Arc::new(RecordingTrigger::default());
        let workflow = Arc::new(RecordingWorkflow::default());
        let ctx = ServiceContext {
            store: Arc::new(store),
            secrets: Arc::new(FileSecrets::new(dir.path().join("secrets.json"))),
            clock: clock.clone(),
            http: HttpClient::for_tests().expect("http client"),
            box_config: BoxConfig {
                api_base: sim.base_url(),
                retry: RetryPolicy::fast_for_tests(),
                ..BoxConfig::default()
            },
            box_authorize_url: sim.authorize_url(),
            public_base_url: PUBLIC_BASE_URL.to_owned(),
            sync_trigger: trigger.clone(),
            workflow: workflow.clone(),
            notifier: Arc::new(LogNotifier),
        };
        Self {
            router: seatkeeper_api::router(ctx.clone()),
            sim,
            ctx,
            clock,
            trigger,
            workflow,
            dir,
            openapi: OpenApi::load(),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.ctx.store.as_ref()
    }

    pub fn secrets(&self) -> &dyn Secrets {
        self.ctx.secrets.as_ref()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Sends the event through `lambda_http` and the router; checks the answer against the
    /// OpenAPI document (or, for unknown routes and methods, the error schema).
    pub async fn send(&self, event: Event) -> TestResponse {
        let response = self.send_unchecked(&event).await;
        if let Err(problem) = self.openapi.check(
            &event.method,
            &event.path,
            response.status,
            response.header("content-type").unwrap_or(""),
            &response.body,
        ) {
            panic!(
                "{} {} answered {} in violation of openapi.json: {problem}\n{}",
                event.method,
                event.path,
                response.status,
                response.text()
            );
        }
        response
    }

    pub async fn send_unchecked(&self, event: &Event) -> TestResponse {
        let request = event.to_request();
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// The simulated tenant's own credentials, as `POST /integrations` takes them.
    pub fn connect_body(&self) -> Value {
        json!({
            "provider": "box",
            "client_id": self.sim.client_id(),
            "client_secret": self.sim.client_secret(),
            "enterprise_id": self.sim.enterprise_id(),
            "plan": "business",
            "seats": 1000,
            "name": "Simulated Box",
        })
    }

    /// Connects the simulated tenant through the API; the new integration's id.
    pub async fn connect(&self) -> IntegrationId {
        let response = self
            .send(Event::post("/integrations").json(&self.connect_body()))
            .await;
        assert_eq!(response.status, 201, "{}", response.text());
        IntegrationId::parse(response.json()["id"].as_str().expect("id")).expect("an id")
    }

    /// Runs a whole sync in-process (what the triggered license-sync function does).
    pub async fn sync(&self, id: &IntegrationId) {
        let sources = ProviderSources::new(
            self.ctx.store.clone(),
            self.ctx.secrets.clone(),
            self.clock.clone(),
            self.ctx.http.clone(),
            self.ctx.box_config.clone(),
        );
        LicenseSync {
            store: self.store(),
            sources: &sources,
            clock: self.clock.as_ref(),
            options: SyncOptions::default(),
        }
        .run(id, None, Deadline::none())
        .await
        .expect("sync completes");
    }

    /// Connects and syncs: an integration with accounts and a snapshot.
    pub async fn connected_and_synced(&self) -> IntegrationId {
        let id = self.connect().await;
        self.sync(&id).await;
        id
    }
}

pub struct TestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `error.code` of an error answer (and checks it is one).
    pub fn error_code(&self) -> String {
        let body = self.json();
        assert!(
            (400..600).contains(&self.status),
            "not an error: {}",
            self.status
        );
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {body}"))
            .to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn error_field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_owned)
    }
}

/// One API Gateway HTTP API (payload 2.0) request, as the `AWS_IAM`-authorised route hands
/// it to the function.
#[derive(Clone)]
pub struct Event {
    pub method: String,
    pub path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    base64: bool,
    caller_arn: Option<String>,
    actor: Option<Actor>,
    content_length: bool,
}

impl Event {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: None,
            base64: false,
            caller_arn: Some(ALICE.to_owned()),
            actor: None,
            content_length: true,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    pub fn patch(path: &str) -> Self {
        Self::new("PATCH", path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    /// The raw query string, as API Gateway passes it (already percent-encoded).
    pub fn query(mut self, raw: &str) -> Self {
        self.query = raw.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(&value.to_string())
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// API Gateway base64-encodes bodies it considers binary.
    pub fn base64_body(mut self, body: &[u8]) -> Self {
        use base64::Engine;
        self.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
        self.base64 = true;
        self
    }

    pub fn without_content_length(mut self) -> Self {
        self.content_length = false;
        self
    }

    /// No IAM authorizer context (a misconfigured route, or a direct invoke).
    pub fn anonymous(mut self) -> Self {
        self.caller_arn = None;
        self
    }

    pub fn caller(mut self, arn: &str) -> Self {
        self.caller_arn = Some(arn.to_owned());
        self
    }

    /// What `seatkeeper serve` does: the caller in the request's extensions.
    pub fn local_actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    pub fn payload(&self) -> Value {
        let host = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
        let mut headers = serde_json::Map::new();
        for (name, value) in [
            ("accept", "application/json"),
            ("host", host),
            ("user-agent", "seatkeeper-tests/1.0"),
            ("x-amz-date", "20261101T120500Z"),
            (
                "x-amzn-trace-id",
                "Root=1-6724c1d4-0123456789abcdef01234567",
            ),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-proto", "https"),
        ] {
            headers.insert(name.to_owned(), json!(value));
        }
        if self.content_length
            && let Some(body) = &self.body
        {
            let length = if self.base64 {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_or(0, |b| b.len())
            } else {
                body.len()
            };
            headers.insert("content-length".to_owned(), json!(length.to_string()));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), json!(value));
        }
        let authorizer = self.caller_arn.as_ref().map(|arn| {
            json!({
                "iam": {
                    "accessKey": "ASIAXAMPLEACCESSKEY1",
                    "accountId": "123456789012",
                    "callerId": "AIDAEXAMPLECALLERID1",
                    "cognitoIdentity": null,
                    "principalOrgId": "o-exampleorg1",
                    "userArn": arn,
                    "userId": "AIDAEXAMPLECALLERID1"
                }
            })
        });
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": host,
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "seatkeeper-tests/1.0"
            },
            "requestId": "JqMgCjQvIAMEVxg=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Nov/2026:12:05:00 +0000",
            "timeEpoch": 1_793_534_700_000_i64
        });
        if let Some(authorizer) = authorizer {
            context["authorizer"] = authorizer;
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "cookies": ["session=ignored"],
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": self.base64
        });
        if let Some(body) = &self.body {
            event["body"] = json!(body);
        }
        event
    }

    pub fn to_request(&self) -> lambda_http::Request {
        let mut request = lambda_http::request::from_str(&self.payload().to_string())
            .expect("a valid API Gateway v2 event");
        if let Some(actor) = &self.actor {
            request.extensions_mut().insert(actor.clone());
        }
        request
    }
}
