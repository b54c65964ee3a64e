//! OAuth token handling of Box integrations connected by the authorization-code flow
//! (design §5), with the real parts: DynamoDB and Secrets Manager on moto, the Box simulator
//! over HTTP, and for the concurrency case two separate processes.
//!
//! - the access token in the secret is reused by every client instance while valid;
//! - the rotated refresh token is stored before the new access token is used, and a failed
//!   write means the new access token is never used;
//! - two processes refreshing at once refresh once and leave a working integration;
//! - `invalid_grant` sets `needs_reauth`, the sync fails cleanly, and a reconnect repairs it.

use async_trait::async_trait;
use chrono::Utc;
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{
    AuthKind, BoxPlan, Integration, IntegrationId, IntegrationStatus, Provider, ReclaimGuardRails,
    SyncSettings,
};
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::provider::box_client::oauth::{
    BOX_OAUTH_SCOPES, BoxOAuthApp, BoxTokenSet, authorize_url, exchange_code, refresh,
};
use seatkeeper_shared::provider::box_client::{BoxClient, BoxConfig};
use seatkeeper_shared::provider::http::{Call, HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::secrets::{
    IntegrationCredentials, OAuthAppCredentials, Secrets, SecretsError,
};
use seatkeeper_shared::services::license_sync::SyncRunStatus;
use seatkeeper_shared::services::sources::SourceError;
use seatkeeper_shared::services::tokens::{BoxTokenProvider, OAuthTokens, TokenStats};
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, SyncError, SyncOptions, SyncRunSummary,
};
use seatkeeper_shared::store::dynamo::DynamoStore;
use seatkeeper_shared::store::{LeaseKind, Store};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle};
use seatkeeper_tests::{Moto, aws_config, error_chain};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

const REDIRECT_URI: &str = "https://seatkeeper.example/oauth/box/callback";

// Shared setup --------------------------------------------------------------------------

async fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let shared = aws_config(endpoint).await;
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// A new container's Secrets Manager adapter: its own client and its own in-memory cache.
async fn container_secrets(endpoint: &str) -> Arc<dyn Secrets> {
    let shared = aws_config(endpoint).await;
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .build(),
    );
    Arc::new(SecretsManagerSecrets::new(client))
}

fn box_config(sim_url: &str) -> BoxConfig {
    BoxConfig {
        api_base: sim_url.to_owned(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    }
}

/// The admin approves on the simulator's authorize page; the code is exchanged.
async fn grant(sim: &SimHandle, http: &HttpClient, config: &BoxConfig) -> BoxTokenSet {
    let url = authorize_url(
        &sim.authorize_url(),
        &sim.client_id(),
        REDIRECT_URI,
        "state-1",
        BOX_OAUTH_SCOPES,
    );
    let policy = RetryPolicy::fast_for_tests();
    let response = http
        .send(Call::new("box", "authorize", &policy), |c| c.get(&url))
        .await
        .expect("authorize");
    assert_eq!(response.status.as_u16(), 302);
    let location = response.headers["location"]
        .to_str()
        .expect("ascii location")
        .to_owned();
    // Codes are alphanumeric: no percent-decoding needed.
    let code = location
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find_map(|kv| kv.strip_prefix("code=")))
        .expect("a code in the redirect")
        .to_owned();
    exchange_code(
        http,
        config,
        &BoxOAuthApp {
            client_id: sim.client_id(),
            client_secret: sim.client_secret().into(),
        },
        &SecretString::from(code),
        REDIRECT_URI,
        Utc::now(),
    )
    .await
    .expect("code exchange")
}

/// An OAuth integration of the simulated tenant, its secret holding a fresh grant, in a
/// table of its own; the OAuth app's credentials in `seatkeeper/apps/box`.
struct Fixture {
    sim: Arc<SimHandle>,
    endpoint: String,
    table: String,
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    http: HttpClient,
    box_config: BoxConfig,
    integration: Integration,
    first_grant: BoxTokenSet,
}

impl Fixture {
    async fn start() -> Self {
        let sim = Arc::new(
            BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(31, 20)))
                .await
                .expect("simulator starts"),
        );
        let endpoint = MOTO.endpoint();
        let table = format!("seatkeeper-oauth-{}", uuid::Uuid::new_v4());
        let client = dynamo_client(&endpoint).await;
        if let Err(e) = DynamoStore::create_table(&client, &table).await {
            panic!("cannot create table {table}: {}", error_chain(&e));
        }
        let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, table.clone()));
        let secrets = container_secrets(&endpoint).await;
        // Every simulator has the same app credentials, so tests can share this secret.
        secrets
            .put(
                &OAuthAppCredentials::secret_name(Provider::Box),
                SecretString::from(
                    json!({"client_id": sim.client_id(), "client_secret": sim.client_secret()})
                        .to_string(),
                ),
            )
            .await
            .expect("app secret");
        let http = HttpClient::for_tests().expect("http client");
        let box_config = box_config(&sim.base_url());
        let first_grant = grant(&sim, &http, &box_config).await;
        let now = Utc::now();
        let id = IntegrationId::generate();
        let integration = Integration {
            secret_name: Integration::secret_name_for(&id),
            id,
            provider: Provider::Box,
            name: "OAuth tenant".into(),
            auth_kind: AuthKind::OAuth,
            tenant_id: sim.enterprise_id(),
            status: IntegrationStatus::Connected,
            enabled: true,
            plan: Some(BoxPlan::Business),
            purchased_seats: Some(100),
            service_user_id: Some(sim.admin_user_id()),
            sync: SyncSettings::default(),
            created_at: now,
            updated_at: now,
            last_sync: None,
            reclaim: ReclaimGuardRails::default(),
            seat_price: None,
        };
        store
            .create_integration(&integration)
            .await
            .expect("integration");
        OAuthTokens::new(store.clone(), secrets.clone(), Arc::new(SystemClock))
            .store_new_tokens(&integration, &sim.client_id(), &first_grant)
            .await
            .expect("tokens stored");
        Self {
            sim,
            endpoint,
            table,
            store,
            secrets,
            http,
            box_config,
            integration,
            first_grant,
        }
    }

    fn tokens(&self, secrets: Arc<dyn Secrets>) -> OAuthTokens {
        OAuthTokens::new(self.store.clone(), secrets, Arc::new(SystemClock))
    }

    /// A token provider and a client over it, as one container builds them.
    async fn client_with(&self, secrets: Arc<dyn Secrets>) -> (BoxClient, Arc<BoxTokenProvider>) {
        let app = OAuthAppCredentials::load(secrets.as_ref(), Provider::Box)
            .await
            .expect("app credentials");
        let provider = Arc::new(self.tokens(secrets).box_provider(
            &self.integration,
            BoxOAuthApp {
                client_id: app.client_id,
                client_secret: app.client_secret,
            },
            self.http.clone(),
            self.box_config.clone(),
        ));
        let client = BoxClient::with_token_provider(
            self.box_config.clone(),
            self.http.clone(),
            provider.clone(),
        );
        (client, provider)
    }

    /// A client in a new "container" (its own secrets cache).
    async fn new_container_client(&self) -> (BoxClient, Arc<BoxTokenProvider>) {
        self.client_with(container_secrets(&self.endpoint).await)
            .await
    }

    /// The integration's secret as Secrets Manager holds it now.
    async fn stored(&self) -> IntegrationCredentials {
        IntegrationCredentials::load_fresh(self.secrets.as_ref(), &self.integration.secret_name)
            .await
            .expect("integration secret")
    }

    fn stored_access_token(creds: &IntegrationCredentials) -> String {
        creds
            .access_token
            .as_ref()
            .expect("an access token")
            .expose_secret()
            .to_owned()
    }

    fn stored_refresh_token(creds: &IntegrationCredentials) -> String {
        creds
            .refresh_token
            .as_ref()
            .expect("a refresh token")
            .expose_secret()
            .to_owned()
    }

    /// As if the stored access token's hour had passed: the next caller must refresh.
    async fn expire_stored_access_token(&self) {
        let mut creds = self.stored().await;
        creds.access_token_expires_at = Some(Utc::now() - chrono::Duration::minutes(1));
        creds
            .save(self.secrets.as_ref(), &self.integration.secret_name)
            .await
            .expect("secret rewritten");
    }

    async fn status(&self) -> IntegrationStatus {
        self.store
            .get_integration(&self.integration.id)
            .await
            .expect("read")
            .expect("integration exists")
            .status
    }

    async fn sync(&self) -> Result<SyncRunSummary, SyncError> {
        let sources = ProviderSources::new(
            self.store.clone(),
            container_secrets(&self.endpoint).await,
            Arc::new(SystemClock),
            self.http.clone(),
            self.box_config.clone(),
        );
        LicenseSync {
            store: self.store.as_ref(),
            sources: &sources,
            clock: &SystemClock,
            options: SyncOptions::default(),
        }
        .run(&self.integration.id, None, Deadline::none())
        .await
    }
}

fn assert_no_secret(text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !secret.is_empty() && !text.contains(secret.as_str()),
            "a secret leaked into: {text}"
        );
    }
}

// Reuse ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_access_token_is_reused_by_every_client_while_valid() {
    let f = Fixture::start().await;
    let first_access = f.first_grant.access_token.expose_secret().to_owned();

    let (a, a_tokens) = f.new_container_client().await;
    let (b, b_tokens) = f.new_container_client().await;
    assert_eq!(
        a.current_user().await.expect("a"),
        b.current_user().await.expect("b")
    );
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 0);
    assert_eq!(f.sim.access_token_uses(&first_access), Some(2));
    assert_eq!(a_tokens.stats().from_secret, 1);
    assert_eq!(b_tokens.stats().from_secret, 1);

    // Once expired, one client refreshes and the next one reuses what it stored.
    f.expire_stored_access_token().await;
    let (c, c_tokens) = f.new_container_client().await;
    c.current_user().await.expect("c");
    let refreshed = Fixture::stored_access_token(&f.stored().await);
    assert_ne!(refreshed, first_access);
    let (d, d_tokens) = f.new_container_client().await;
    d.current_user().await.expect("d");
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 1);
    assert_eq!(f.sim.access_token_uses(&refreshed), Some(2));
    assert_eq!(c_tokens.stats().refreshed, 1);
    assert_eq!(
        d_tokens.stats(),
        TokenStats {
            from_secret: 1,
            ..TokenStats::default()
        }
    );
    // The lock was released.
    assert!(
        f.store
            .get_lease(&f.integration.id, LeaseKind::Token)
            .await
            .expect("lease read")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_for_the_stored_token_refreshes_it_once() {
    let f = Fixture::start().await;
    let (client, tokens) = f.new_container_client().await;
    client.current_user().await.expect("first call");
    // From now on a token is refused once it was used for one request.
    f.sim.set_faults(Faults {
        token_lifetime_requests: Some(1),
        ..Faults::default()
    });
    client
        .current_user()
        .await
        .expect("the rejected token is replaced");
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 1);
    assert_eq!(tokens.stats().refreshed, 1);
    let stored = f.stored().await;
    assert_ne!(
        Fixture::stored_access_token(&stored),
        f.first_grant.access_token.expose_secret()
    );

    // Another container takes the refreshed token from the secret, no second refresh.
    f.sim.set_faults(Faults::default());
    let (other, other_tokens) = f.new_container_client().await;
    other.current_user().await.expect("other container");
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 1);
    assert_eq!(other_tokens.stats().from_secret, 1);
}

// Store before use -----------------------------------------------------------------------

/// One write of the integration's secret, as [`Watched`] saw it.
struct Write {
    access_token: String,
    refresh_token: String,
    /// API requests that had presented the new access token when the write completed.
    uses_when_written: Option<u64>,
    stored: bool,
}

/// Secrets Manager, watched: on each write of the integration's secret it asks the
/// simulator whether the access token being stored was already used; it can also fail
/// those writes.
struct Watched {
    inner: Arc<dyn Secrets>,
    name: String,
    sim: Arc<SimHandle>,
    fail_writes: AtomicBool,
    writes: Mutex<Vec<Write>>,
}

impl Watched {
    fn new(inner: Arc<dyn Secrets>, name: &str, sim: Arc<SimHandle>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            name: name.to_owned(),
            sim,
            fail_writes: AtomicBool::new(false),
            writes: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Secrets for Watched {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        self.inner.get(name).await
    }

    async fn get_fresh(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        self.inner.get_fresh(name).await
    }

    async fn put(&self, name: &str, value: SecretString) -> Result<(), SecretsError> {
        if name != self.name {
            return self.inner.put(name, value).await;
        }
        let parsed: Value = serde_json::from_str(value.expose_secret()).expect("json secret");
        let field = |key: &str| parsed[key].as_str().unwrap_or_default().to_owned();
        let (access_token, refresh_token) = (field("access_token"), field("refresh_token"));
        let failing = self.fail_writes.load(Ordering::SeqCst);
        let result = if failing {
            Err(SecretsError::Backend {
                message: "injected write failure".into(),
                source: None,
            })
        } else {
            self.inner.put(name, value).await
        };
        let uses_when_written = self.sim.access_token_uses(&access_token);
        self.writes.lock().expect("lock").push(Write {
            access_token,
            refresh_token,
            uses_when_written,
            stored: result.is_ok(),
        });
        result
    }

    async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        self.inner.delete(name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotated_refresh_token_is_stored_before_the_new_access_token_is_used() {
    let f = Fixture::start().await;
    f.expire_stored_access_token().await;
    let watched = Watched::new(
        container_secrets(&f.endpoint).await,
        &f.integration.secret_name,
        f.sim.clone(),
    );
    let (client, _) = f.client_with(watched.clone()).await;
    let me = client.current_user().await.expect("call after a refresh");
    assert_eq!(me.id, f.sim.admin_user_id());

    let writes = std::mem::take(&mut *watched.writes.lock().expect("lock"));
    assert_eq!(writes.len(), 1, "one refresh, one write");
    let write = &writes[0];
    assert!(write.stored);
    assert_eq!(
        write.uses_when_written,
        Some(0),
        "the new access token was used before its refresh token was stored"
    );
    assert_eq!(f.sim.access_token_uses(&write.access_token), Some(1));
    // What was stored is the rotated pair, and the refresh token in it is the live one.
    let stored = f.stored().await;
    assert_eq!(Fixture::stored_access_token(&stored), write.access_token);
    assert_eq!(Fixture::stored_refresh_token(&stored), write.refresh_token);
    assert_ne!(
        write.refresh_token,
        f.first_grant.refresh_token.expose_secret()
    );
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 1);
    refresh(
        &f.http,
        &f.box_config,
        &BoxOAuthApp {
            client_id: f.sim.client_id(),
            client_secret: f.sim.client_secret().into(),
        },
        &SecretString::from(write.refresh_token.clone()),
        Utc::now(),
    )
    .await
    .expect("the stored refresh token is the live one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_of_the_rotated_tokens_means_the_new_access_token_is_never_used() {
    let f = Fixture::start().await;
    f.expire_stored_access_token().await;
    let watched = Watched::new(
        container_secrets(&f.endpoint).await,
        &f.integration.secret_name,
        f.sim.clone(),
    );
    watched.fail_writes.store(true, Ordering::SeqCst);
    let (client, _) = f.client_with(watched.clone()).await;
    let api_calls_before = f.sim.stats().total - f.sim.stats().token;

    let err = client.current_user().await.expect_err("the write failed");
    let shown = format!("{err} | {err:?}");
    assert!(
        matches!(&err, ProviderError::TokenHandling { detail, .. }
            if detail.contains("could not be stored") && detail.contains("not used")),
        "{shown}"
    );
    let (attempted_access, attempted_refresh) = {
        let writes = watched.writes.lock().expect("lock");
        assert_eq!(writes.len(), 1);
        assert!(!writes[0].stored);
        (
            writes[0].access_token.clone(),
            writes[0].refresh_token.clone(),
        )
    };
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 1);
    assert_eq!(
        f.sim.access_token_uses(&attempted_access),
        Some(0),
        "the unstored access token reached Box"
    );
    assert_eq!(
        f.sim.stats().total - f.sim.stats().token,
        api_calls_before,
        "no API call was made"
    );
    assert_no_secret(
        &shown,
        &[
            attempted_access,
            attempted_refresh,
            f.sim.client_secret(),
            f.first_grant.refresh_token.expose_secret().to_owned(),
            f.first_grant.access_token.expose_secret().to_owned(),
        ],
    );
    // The secret still holds the old pair; Box spent its refresh token, so the next refresh
    // finds the grant gone and the integration asks to be reconnected.
    assert_eq!(
        Fixture::stored_refresh_token(&f.stored().await),
        f.first_grant.refresh_token.expose_secret()
    );
    let (next, _) = f.new_container_client().await;
    let err = next.current_user().await.expect_err("grant spent");
    assert!(
        matches!(&err, ProviderError::Auth { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert_eq!(f.status().await, IntegrationStatus::NeedsReauth);
}

// Two processes ------------------------------------------------------------------------

const CHILD_ENDPOINT: &str = "SEATKEEPER_OAUTH_CHILD_MOTO";
const CHILD_TABLE: &str = "SEATKEEPER_OAUTH_CHILD_TABLE";
const CHILD_SIM: &str = "SEATKEEPER_OAUTH_CHILD_SIM";
const CHILD_INTEGRATION: &str = "SEATKEEPER_OAUTH_CHILD_INTEGRATION";
const CHILD_TEST: &str = "oauth_refresh_child";

/// The child side of `two_processes_refreshing_at_once_leave_a_working_integration`: builds
/// its own store, secrets and client, says `CHILD-READY`, waits for a line on stdin, makes one
/// API call and prints `CHILD-RESULT {json}`. Its logs (JSON, the Lambda format) go to stdout
/// too, so the parent can scan them for secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by two_processes_refreshing_at_once_leave_a_working_integration"]
async fn oauth_refresh_child() {
    seatkeeper_shared::logging::init_json();
    let env = |name: &str| std::env::var(name).expect("started by the parent test");
    let endpoint = env(CHILD_ENDPOINT);
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(
        dynamo_client(&endpoint).await,
        env(CHILD_TABLE),
    ));
    let secrets = container_secrets(&endpoint).await;
    let id = IntegrationId::parse(&env(CHILD_INTEGRATION)).expect("integration id");
    let integration = store
        .get_integration(&id)
        .await
        .expect("read")
        .expect("integration exists");
    let app = OAuthAppCredentials::load(secrets.as_ref(), Provider::Box)
        .await
        .expect("app credentials");
    let http = HttpClient::for_tests().expect("http client");
    let config = box_config(&env(CHILD_SIM));
    let provider = Arc::new(
        OAuthTokens::new(store, secrets, Arc::new(SystemClock)).box_provider(
            &integration,
            BoxOAuthApp {
                client_id: app.client_id,
                client_secret: app.client_secret,
            },
            http.clone(),
            config.clone(),
        ),
    );
    let client = BoxClient::with_token_provider(config, http, provider.clone());

    println!("CHILD-READY");
    tokio::task::spawn_blocking(|| {
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).map(|_| go)
    })
    .await
    .expect("stdin reader")
    .expect("go signal");
    let outcome = client.current_user().await;
    let stats = provider.stats();
    let result = json!({
        "user": outcome.as_ref().ok().map(|me| me.id.clone()),
        "error": outcome.as_ref().err().map(|e| e.to_string()),
        "refreshed": stats.refreshed,
        "waited_for_lock": stats.waited_for_lock,
        "refreshed_elsewhere": stats.refreshed_elsewhere,
        "from_secret": stats.from_secret,
    });
    println!("CHILD-RESULT {result}");
}

/// This test binary, run as `oauth_refresh_child` against the fixture's table and simulator.
fn spawn_child(f: &Fixture) -> tokio::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    tokio::process::Command::new(exe)
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENDPOINT, &f.endpoint)
        .env(CHILD_TABLE, &f.table)
        .env(CHILD_SIM, f.sim.base_url())
        .env(CHILD_INTEGRATION, f.integration.id.as_str())
        // Everything Seatkeeper logs, down to debug; not the SDKs' own debug output.
        .env("RUST_LOG", "info,seatkeeper_shared=debug")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("child process starts")
}

/// Reads the child's stdout, keeping every line in `seen`, until a line with `prefix`; the
/// rest of that line.
async fn line_starting<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    prefix: &str,
    seen: &mut Vec<String>,
) -> String {
    let wait = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("child stdout") {
            seen.push(line.clone());
            // Not necessarily at the start: the harness prints `test <name> ... ` first.
            if let Some((_, rest)) = line.split_once(prefix) {
                return rest.trim().to_owned();
            }
        }
        panic!("the child ended without printing {prefix}");
    });
    wait.await
        .unwrap_or_else(|_| panic!("no {prefix} from the child"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refreshing_at_once_leave_a_working_integration() {
    let f = Fixture::start().await;
    f.expire_stored_access_token().await;
    // Each refresh takes a while, so the second process certainly finds the first one's
    // lock held rather than arriving after it finished.
    f.sim.set_faults(Faults {
        refresh_delay_ms: 1_500,
        ..Faults::default()
    });

    let mut children = [spawn_child(&f), spawn_child(&f)];
    let mut outputs = Vec::new();
    let mut logs = Vec::new();
    for child in &mut children {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        line_starting(&mut lines, "CHILD-READY", &mut logs).await;
        outputs.push(lines);
    }
    // Both are ready: let them go at once.
    for child in &mut children {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").await.expect("go signal");
        stdin.flush().await.expect("go signal");
    }
    let mut results = Vec::new();
    for lines in &mut outputs {
        let line = line_starting(lines, "CHILD-RESULT", &mut logs).await;
        results.push(serde_json::from_str::<Value>(&line).expect("child result json"));
        while let Some(line) = lines.next_line().await.expect("child stdout") {
            logs.push(line);
        }
    }
    for child in &mut children {
        let status = child.wait().await.expect("child exits");
        assert!(status.success(), "child failed: {status}");
    }

    let admin = f.sim.admin_user_id();
    for result in &results {
        assert_eq!(result["user"], json!(admin), "{result}");
    }
    let refreshed: Vec<u64> = results
        .iter()
        .map(|r| r["refreshed"].as_u64().expect("count"))
        .collect();
    assert_eq!(refreshed.iter().sum::<u64>(), 1, "{results:?}");
    let waiter = results
        .iter()
        .find(|r| r["refreshed"] == json!(0))
        .expect("one process did not refresh");
    assert_eq!(waiter["waited_for_lock"], json!(1), "{waiter}");
    assert_eq!(waiter["refreshed_elsewhere"], json!(1), "{waiter}");

    let oauth = f.sim.oauth_stats();
    assert_eq!(oauth.refresh_token_grants, 1, "{oauth:?}");
    assert_eq!(oauth.invalid_grants, 0, "{oauth:?}");
    assert_eq!(f.status().await, IntegrationStatus::Connected);

    // The processes logged the refresh and the wait, and no secret.
    let logs = logs.join("\n");
    assert!(
        logs.contains("Box OAuth tokens refreshed and stored"),
        "{logs}"
    );
    assert!(
        logs.contains("token lock held by another refresh"),
        "{logs}"
    );
    let stored = f.stored().await;
    assert_no_secret(
        &logs,
        &[
            Fixture::stored_access_token(&stored),
            Fixture::stored_refresh_token(&stored),
            f.first_grant.access_token.expose_secret().to_owned(),
            f.first_grant.refresh_token.expose_secret().to_owned(),
            f.sim.client_secret(),
        ],
    );

    // The stored refresh token still works: a third refresh succeeds.
    f.sim.set_faults(Faults::default());
    f.expire_stored_access_token().await;
    let (client, tokens) = f.new_container_client().await;
    assert_eq!(client.current_user().await.expect("third").id, admin);
    assert_eq!(tokens.stats().refreshed, 1);
    assert_eq!(f.sim.oauth_stats().refresh_token_grants, 2);
    assert_eq!(f.sim.oauth_stats().invalid_grants, 0);
}

// invalid_grant and repair ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_sets_needs_reauth_and_a_reconnect_repairs_the_sync() {
    let f = Fixture::start().await;
    let first = f.sync().await.expect("first sync");
    assert_eq!(first.status, SyncRunStatus::Completed);

    // The admin revokes the app's access in Box; the stored access token then expires.
    f.sim.revoke_refresh_tokens();
    f.expire_stored_access_token().await;
    let refused_token = Fixture::stored_refresh_token(&f.stored().await);
    let err = f.sync().await.expect_err("the grant is gone");
    assert!(
        matches!(&err, SyncError::Provider(ProviderError::Auth { code, .. }) if code == "invalid_grant"),
        "{err:?}"
    );
    assert_eq!(f.status().await, IntegrationStatus::NeedsReauth);
    let recorded = f
        .store
        .get_integration(&f.integration.id)
        .await
        .expect("read")
        .expect("exists")
        .last_sync
        .expect("the failed sync is recorded");
    assert!(!recorded.succeeded);
    let recorded_error = recorded.error.unwrap_or_default();
    assert!(recorded_error.contains("needs_reauth"), "{recorded_error}");
    let secrets = [
        refused_token,
        f.sim.client_secret(),
        f.first_grant.access_token.expose_secret().to_owned(),
        f.first_grant.refresh_token.expose_secret().to_owned(),
    ];
    assert_no_secret(
        &format!("{err} | {err:?} | {} | {recorded_error}", error_chain(&err)),
        &secrets,
    );

    // Until it is reconnected, a sync stops before asking Box anything.
    let token_requests = f.sim.stats().token;
    let err = f.sync().await.expect_err("needs reauth");
    assert!(
        matches!(&err, SyncError::Source(SourceError::NeedsReauth(_))),
        "{err:?}"
    );
    assert_eq!(f.sim.stats().token, token_requests);

    // The admin connects again: a new grant for the same tenant repairs the integration.
    let new_grant = grant(&f.sim, &f.http, &f.box_config).await;
    let repaired = f
        .tokens(f.secrets.clone())
        .reconnect(&f.integration, &f.sim.client_id(), &new_grant)
        .await
        .expect("reconnect");
    assert_eq!(repaired.status, IntegrationStatus::Connected);
    let again = f.sync().await.expect("sync after the repair");
    assert_eq!(again.status, SyncRunStatus::Completed);
    // And the new grant's refresh token keeps it working past the next expiry.
    f.expire_stored_access_token().await;
    f.sync().await.expect("sync after a refresh");
    assert_eq!(f.status().await, IntegrationStatus::Connected);
    let stored = f.stored().await;
    assert_ne!(
        Fixture::stored_refresh_token(&stored),
        new_grant.refresh_token.expose_secret(),
        "rotated by the refresh"
    );
    assert!(!format!("{stored:?}").contains(&Fixture::stored_refresh_token(&stored)));
}
