//! A deployment of the OAuth routes over a simulated Box enterprise: real API Gateway HTTP
//! API v2 events through the router, the simulator over real HTTP, a recording sync
//! trigger, and a test "browser" that follows the start redirect to the authorize page.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use reqwest::Url;
use seatkeeper_oauth_callback::router;
use seatkeeper_shared::clock::FixedClock;
use seatkeeper_shared::domain::{Actor, BoxPlan, Integration, Provider};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::secrets::{IntegrationCredentials, Secrets};
use seatkeeper_shared::services::ServiceContext;
use seatkeeper_shared::services::local_workflow::LocalWorkflow;
use seatkeeper_shared::services::oauth_connect::{OAuthTicketRequest, issue_ticket};
use seatkeeper_shared::services::reclaim::LogNotifier;
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger, TriggerError};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tower::ServiceExt;

/// The deployment's public base URL (`SEATKEEPER_PUBLIC_BASE_URL`).
pub const BASE: &str = "https://seatkeeper.example.test";
pub const CALLBACK: &str = "https://seatkeeper.example.test/oauth/box/callback";
pub const COOKIE: &str = "__Secure-seatkeeper-oauth";
pub const APP_SECRET: &str = "seatkeeper/apps/box";

/// Starts a sync by recording the request; can be told to fail.
#[derive(Default)]
pub struct RecordingTrigger {
    pub requests: Mutex<Vec<SyncRequest>>,
    pub fail: AtomicBool,
}

impl RecordingTrigger {
    pub fn requests(&self) -> Vec<SyncRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl SyncTrigger for RecordingTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(TriggerError {
                integration_id: request.integration_id.clone(),
                message: "the test trigger refuses".into(),
                source: None,
            });
        }
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        Ok(())
    }
}

/// An HTTP answer of the router.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The headers every response of the OAuth routes carries.
    pub fn assert_security_headers(&self) {
        assert_eq!(
            self.header("content-security-policy"),
            Some("default-src 'none'")
        );
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }

    /// A page: HTML with the security headers and the given status.
    pub fn assert_page(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        self.assert_security_headers();
        assert!(self.body.starts_with("<!DOCTYPE html>"), "{}", self.body);
    }

    /// A callback page: it also clears the binding cookie.
    pub fn assert_callback_page(&self, status: u16) {
        self.assert_page(status);
        let cleared = format!("{COOKIE}=; Path=/oauth/; Max-Age=0");
        assert!(
            self.set_cookies().iter().any(|c| c.starts_with(&cleared)),
            "{:?}",
            self.set_cookies()
        );
    }
}

/// A started flow: where the browser goes and the cookie it got.
pub struct Started {
    pub authorize_url: Url,
    /// The `Set-Cookie` header as sent.
    pub set_cookie: String,
    /// `name=value`, as the browser sends it back.
    pub cookie: String,
    pub state: String,
}

pub struct Harness {
    pub sim: SimHandle,
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<FixedClock>,
    pub trigger: Arc<RecordingTrigger>,
    pub ctx: ServiceContext,
    pub router: Router,
    pub dir: tempfile::TempDir,
}

pub fn sim_config(seed: u64) -> BoxSimConfig {
    let mut config = BoxSimConfig::new(BoxTenantSpec::new(seed, 20));
    // Registered exactly, as on Box: a redirect_uri built from anything else is refused.
    config.oauth_redirect_uris = vec![CALLBACK.to_owned()];
    config
}

pub fn requester() -> Actor {
    Actor::Local {
        user: "alice".into(),
    }
}

pub fn new_box_request() -> OAuthTicketRequest {
    OAuthTicketRequest {
        provider: Provider::Box,
        name: Some("Acme <Box> & Co".into()),
        plan: Some(BoxPlan::BusinessPlus),
        purchased_seats: Some(50),
        integration_id: None,
    }
}

impl Harness {
    /// Embedded store and file secrets in a temporary directory.
    pub async fn new() -> Harness {
        Self::with_sim(sim_config(7)).await
    }

    pub async fn with_sim(config: BoxSimConfig) -> Harness {
        let sim = BoxSim::start(config).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("store.redb")).expect("store opens");
        let secrets = FileSecrets::new(dir.path().join("secrets.json"));
        Self::with_adapters(sim, Arc::new(store), Arc::new(secrets), dir).await
    }

    pub async fn with_adapters(
        sim: SimHandle,
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        dir: tempfile::TempDir,
    ) -> Harness {
        secrets
            .put(
                APP_SECRET,
                SecretString::from(
                    json!({"client_id": sim.client_id(), "client_secret": sim.client_secret()})
                        .to_string(),
                ),
            )
            .await
            .expect("app secret stored");
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        ));
        let trigger = Arc::new(RecordingTrigger::default());
        let http = HttpClient::for_tests().expect("http client");
        let box_config = BoxConfig {
            api_base: sim.base_url(),
            retry: RetryPolicy::fast_for_tests(),
            ..BoxConfig::default()
        };
        let ctx = ServiceContext {
            store: store.clone(),
            secrets: secrets.clone(),
            clock: clock.clone(),
            http: http.clone(),
            box_config: box_config.clone(),
            box_authorize_url: sim.authorize_url(),
            public_base_url: BASE.to_owned(),
            sync_trigger: trigger.clone(),
            workflow: Arc::new(LocalWorkflow::in_process(
                store.clone(),
                secrets.clone(),
                clock.clone(),
                http,
                box_config,
                Arc::new(LogNotifier),
            )),
            notifier: Arc::new(LogNotifier),
        };
        let router = router(ctx.clone());
        Harness {
            sim,
            store,
            secrets,
            clock,
            trigger,
            ctx,
            router,
            dir,
        }
    }

    pub fn secrets_path(&self) -> PathBuf {
        self.dir.path().join("secrets.json")
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store.redb")
    }

    /// A start URL's ticket, as `POST /integrations/oauth` would hand it out.
    pub async fn ticket(&self, request: OAuthTicketRequest) -> SecretString {
        let issued = issue_ticket(&self.ctx, request, &requester())
            .await
            .expect("ticket issued");
        let url = Url::parse(issued.start_url.expose_secret()).expect("start URL");
        assert_eq!(url.origin().ascii_serialization(), BASE);
        assert_eq!(url.path(), "/oauth/box/start");
        let ticket = url
            .query_pairs()
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
            .expect("ticket parameter");
        SecretString::from(ticket)
    }

    /// Sends an API Gateway HTTP API v2 event through the router.
    pub async fn send_event(&self, event: serde_json::Value) -> Reply {
        let request = lambda_http::request::from_str(&event.to_string()).expect("v2 event parses");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        }
    }

    pub async fn get(&self, path: &str, query: &str, cookies: &[String]) -> Reply {
        self.send_event(event(
            "GET",
            path,
            query,
            cookies,
            "seatkeeper.example.test",
        ))
        .await
    }

    /// `GET /oauth/box/start?ticket=…`, which must redirect; the redirect's parts.
    pub async fn start(&self, ticket: &SecretString) -> Started {
        let reply = self
            .get(
                "/oauth/box/start",
                &format!("ticket={}", ticket.expose_secret()),
                &[],
            )
            .await;
        started(&reply)
    }

    /// The browser at the authorize page: approve or deny, and where Box sends it back.
    pub async fn authorize(&self, started: &Started, decision: &str) -> Url {
        let mut url = started.authorize_url.clone();
        url.query_pairs_mut().append_pair("sim_decision", decision);
        let response = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser")
            .get(url)
            .send()
            .await
            .expect("authorize page answers");
        assert_eq!(response.status().as_u16(), 302, "authorize redirects");
        let location = response.headers()["location"].to_str().expect("ascii");
        Url::parse(location).expect("callback URL")
    }

    /// The browser following the provider's redirect back to Seatkeeper.
    pub async fn callback(&self, url: &Url, cookies: &[String]) -> Reply {
        assert_eq!(url.origin().ascii_serialization(), BASE);
        self.get(url.path(), url.query().unwrap_or_default(), cookies)
            .await
    }

    /// A whole connect: ticket, start, approve, callback.
    pub async fn connect(&self, request: OAuthTicketRequest) -> Reply {
        let ticket = self.ticket(request).await;
        let started = self.start(&ticket).await;
        let back = self.authorize(&started, "approve").await;
        self.callback(&back, std::slice::from_ref(&started.cookie))
            .await
    }

    /// Names of the secrets in the secrets file.
    pub fn secret_names(&self) -> Vec<String> {
        let raw = std::fs::read(self.secrets_path()).expect("secrets file");
        let all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&raw).expect("secrets JSON");
        all.keys().cloned().collect()
    }

    /// Nothing but what existed before: the same integrations, no claim on the simulated
    /// tenant unless `claim_owner` already held it, no secret besides `secrets`.
    pub async fn assert_nothing_stored(
        &self,
        integrations: &[Integration],
        claim_owner: Option<&Integration>,
        secrets: &[&str],
    ) {
        let mut now = self.store.list_integrations().await.expect("list");
        now.sort_by(|a, b| a.id.cmp(&b.id));
        let mut before = integrations.to_vec();
        before.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(now, before, "integrations changed");
        assert_eq!(
            self.store
                .tenant_owner(Provider::Box, &self.sim.enterprise_id())
                .await
                .expect("claim"),
            claim_owner.map(|i| i.id.clone()),
            "tenant claim changed"
        );
        let mut expected: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        expected.push(APP_SECRET.to_owned());
        expected.sort();
        assert_eq!(self.secret_names(), expected, "secrets changed");
        assert!(self.trigger.requests().is_empty(), "no sync may start");
    }

    pub async fn credentials(&self, integration: &Integration) -> IntegrationCredentials {
        IntegrationCredentials::load(self.secrets.as_ref(), &integration.secret_name)
            .await
            .expect("integration secret")
    }
}

/// The start's 302: the authorize URL and the binding cookie.
pub fn started(reply: &Reply) -> Started {
    assert_eq!(reply.status, 302, "{}", reply.body);
    reply.assert_security_headers();
    let location = reply.header("location").expect("Location");
    let authorize_url = Url::parse(location).expect("absolute authorize URL");
    let set_cookie = reply
        .set_cookies()
        .into_iter()
        .next()
        .expect("a binding cookie");
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .trim()
        .to_owned();
    let state = authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    Started {
        authorize_url,
        set_cookie,
        cookie,
        state,
    }
}

/// A real API Gateway HTTP API v2 event (payload format 2.0) for a browser request.
pub fn event(
    method: &str,
    path: &str,
    raw_query: &str,
    cookies: &[String],
    host: &str,
) -> serde_json::Value {
    let query: serde_json::Map<String, serde_json::Value> = url_query_pairs(raw_query)
        .into_iter()
        .fold(serde_json::Map::new(), |mut map, (k, v)| {
            // API Gateway joins repeated parameters with commas.
            let joined = match map.get(&k).and_then(|old| old.as_str()) {
                Some(old) => format!("{old},{v}"),
                None => v,
            };
            map.insert(k, json!(joined));
            map
        });
    let provider = path.split('/').nth(2).unwrap_or_default();
    let route = if path.ends_with("/start") {
        "GET /oauth/{provider}/start"
    } else {
        "GET /oauth/{provider}/callback"
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {
            "accept": "text/html,application/xhtml+xml",
            "accept-language": "en-GB,en;q=0.9",
            "host": host,
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
            "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "pathParameters": {"provider": provider},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": route,
            "stage": "$default",
            "time": "01/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_793_534_400_000_u64
        },
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        event["queryStringParameters"] = serde_json::Value::Object(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    event
}

fn url_query_pairs(raw: &str) -> Vec<(String, String)> {
    Url::parse(&format!("https://x/?{raw}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
