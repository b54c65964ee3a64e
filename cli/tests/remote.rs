//! `seatkeeper --api URL ...`: the read commands against a stack's JSON API, every request
//! signed with SigV4. A local axum server stands in for API Gateway: it recomputes each
//! request's signature from static test credentials and answers only correctly signed ones.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const ACCESS_KEY: &str = "AKIDSEATKEEPERTEST";
const SECRET_KEY: &str = "test-secret-key-never-printed-0123456789";
const SESSION_TOKEN: &str = "test-session-token-never-printed";
const REGION: &str = "eu-west-1";
const ID: &str = "2f9c8f5e-4b0a-4c59-9d6e-1f2a3b4c5d6e";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<SeenRequest>>>);

#[derive(Clone, Debug)]
struct SeenRequest {
    path_and_query: String,
    authorization: String,
    amz_date: String,
    security_token: Option<String>,
    signature_valid: bool,
}

/// What the API Gateway stand-in answers, after checking the signature.
async fn api(State((seen, session)): State<(Seen, bool)>, request: Request) -> Response {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization").unwrap_or_default();
    let amz_date = header("x-amz-date").unwrap_or_default();
    let host = header("host").unwrap_or_default();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let expected = expected_authorization(
        request.method().as_str(),
        &format!("http://{host}{path_and_query}"),
        &amz_date,
        session,
    );
    let signature_valid = expected.as_deref() == Some(authorization.as_str());
    seen.0.lock().unwrap().push(SeenRequest {
        path_and_query: path_and_query.clone(),
        authorization,
        amz_date,
        security_token: header("x-amz-security-token"),
        signature_valid,
    });
    if !signature_valid {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "message": "The request signature we calculated does not match the signature you provided." })),
        )
            .into_response();
    }
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or("");
    let body = match path {
        "/prod/integrations" => json!({ "items": [integration()] }),
        p if p == format!("/prod/integrations/{ID}/licenses") => {
            assert_eq!(query, "inactive_days=30");
            summary()
        }
        p if p == format!("/prod/integrations/{ID}/accounts") => {
            if query.contains("cursor=") {
                assert_eq!(query, "limit=1000&cursor=page+2%2Fof+2");
                json!({ "items": [account("u2", "bob@example.com", None)], "next_cursor": null })
            } else {
                assert_eq!(query, "limit=1000");
                json!({
                    "items": [account("u1", "=alice@example.com", Some("2026-10-01T08:00:00Z"))],
                    "next_cursor": "page 2/of 2",
                })
            }
        }
        p if p == format!("/prod/integrations/{ID}/tasks") => tasks(),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": { "code": "not_found", "message": "integration 0aa not found" } })),
            )
                .into_response();
        }
    };
    axum::Json(body).into_response()
}

/// The Authorization header a correct signer produces for this request.
fn expected_authorization(
    method: &str,
    url: &str,
    amz_date: &str,
    session: bool,
) -> Option<String> {
    let at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").ok()?;
    let at =
        SystemTime::UNIX_EPOCH + Duration::from_secs(at.and_utc().timestamp().try_into().ok()?);
    let credentials = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        session.then(|| SESSION_TOKEN.to_owned()),
        None,
        "test",
    );
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let request =
        SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(b"")).ok()?;
    let (instructions, _) = sign(request, &params).ok()?.into_parts();
    instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
}

fn integration() -> Value {
    json!({
        "id": ID, "provider": "box", "name": "Acme Box", "auth_kind": "oauth",
        "tenant_id": "555", "status": "connected", "enabled": true, "plan": "business",
        "seats": 10, "service_user_id": "1", "inactive_days": 90, "price_per_seat": null,
        "reclaim": {}, "created_at": "2026-10-01T00:00:00Z", "updated_at": "2026-10-01T00:00:00Z",
        "last_sync": { "sync_id": "s1", "started_at": "2026-11-01T11:59:00Z",
                       "finished_at": "2026-11-01T12:00:00Z", "succeeded": true, "error": null }
    })
}

fn summary() -> Value {
    json!({
        "integration": { "id": ID, "provider": "box", "name": "Acme Box" },
        "synced_at": "2026-11-01T12:00:00Z",
        "inactive_days": 30,
        "event_coverage": { "from": "2025-11-01T12:00:00Z", "to": "2026-11-01T12:00:00Z" },
        "seats": { "purchased": 10, "assigned": 2, "available": 8 },
        "license_types": [
            { "name": "Business", "assigned": 2, "active": 1, "inactive": 1, "never_logged_in": 1 }
        ]
    })
}

fn account(id: &str, login: &str, last_login: Option<&str>) -> Value {
    json!({
        "id": id, "login": login, "name": "A User", "kind": "human", "status": "active",
        "role": "user", "license_type": "Business", "last_login_at": last_login,
        "created_at": "2025-01-01T00:00:00Z", "space_amount_bytes": 100, "space_used_bytes": 5,
        "max_upload_size_bytes": 10, "is_sync_enabled": true, "is_exempt_from_device_limits": false
    })
}

fn tasks() -> Value {
    let run = |started: &str, status: &str, error: Value| {
        json!({
            "sync_id": "s1", "status": status, "started_at": started,
            "finished_at": started, "duration_ms": 1500, "counts": { "accounts_read": 2 },
            "error": error
        })
    };
    json!({ "tasks": [
        { "kind": "application_roster", "runs": [run("2026-11-01T12:00:00Z", "succeeded", Value::Null)] },
        { "kind": "application_access", "runs": [run("2026-11-01T12:00:05Z", "failed", json!("Box answered 403"))] },
        { "kind": "reclamation", "runs": [] }
    ]})
}

struct Stack {
    url: String,
    seen: Seen,
    home: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

async fn stack(session: bool) -> Stack {
    let seen = Seen::default();
    let app = Router::new()
        .fallback(api)
        .with_state((seen.clone(), session));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}/prod", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    });
    Stack {
        url,
        seen,
        home: tempfile::tempdir().expect("home"),
        _server: server,
    }
}

impl Stack {
    /// The CLI with static credentials from the environment and nothing else from this
    /// machine's AWS setup.
    async fn run(&self, args: &[&str], session: bool) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seatkeeper"));
        cmd.args(args)
            .env("SEATKEEPER_API_URL", &self.url)
            .env("SEATKEEPER_DATA_DIR", self.home.path().join("data"))
            .env("HOME", self.home.path())
            .env("AWS_CONFIG_FILE", self.home.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("no-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY");
        if session {
            cmd.env("AWS_SESSION_TOKEN", SESSION_TOKEN);
        } else {
            cmd.env_remove("AWS_SESSION_TOKEN");
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("seatkeeper runs"))
            .await
            .expect("joins")
    }

    fn seen(&self) -> Vec<SeenRequest> {
        self.seen.0.lock().unwrap().clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_never_printed(out: &Output) {
    for secret in [SECRET_KEY, SESSION_TOKEN] {
        assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_sign_every_request_and_print_the_api_data() {
    let stack = stack(false).await;

    let out = stack.run(&["integrations"], false).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains(ID) && listed.contains("Acme Box") && listed.contains("connected"),
        "{listed}"
    );
    assert!(
        listed.contains("last sync 2026-11-01 12:00 UTC (ok)"),
        "{listed}"
    );

    // No --integration: the only integration the stack has.
    let out = stack
        .run(
            &["report", "--inactive-days", "30", "--format", "json"],
            false,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    let mut expected = summary();
    expected["accounts"] = json!([
        account("u1", "=alice@example.com", Some("2026-10-01T08:00:00Z")),
        account("u2", "bob@example.com", None),
    ]);
    assert_eq!(report, expected);

    let out = stack
        .run(
            &["report", "--integration", ID, "--inactive-days", "30"],
            false,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("box · Acme Box (integration 2f9c8f5e"),
        "{table}"
    );
    assert!(
        table.contains("Seats: 10 purchased, 2 assigned, 8 available"),
        "{table}"
    );
    assert!(table.contains("Business"), "{table}");

    let out = stack
        .run(
            &[
                "report",
                "--integration",
                ID,
                "--inactive-days",
                "30",
                "--format",
                "csv",
            ],
            false,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,login,name,kind,status,role,license_type,last_login_at"));
    // The same CSV writer as the local report: formulas are defused.
    assert!(lines[1].starts_with("u1,'=alice@example.com,"), "{csv}");

    let out = stack.run(&["tasks", "--integration", ID], false).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tasks = text(&out.stdout);
    let roster = tasks.find("application_roster").expect("roster run listed");
    let access = tasks.find("application_access").expect("access run listed");
    assert!(access < roster, "newest first: {tasks}");
    assert!(
        tasks.contains("Box answered 403") && tasks.contains("accounts_read=2"),
        "{tasks}"
    );

    let seen = stack.seen();
    assert!(seen.len() >= 8, "{seen:?}");
    for request in &seen {
        assert!(request.signature_valid, "{request:?}");
        assert!(
            request.authorization.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{}/{REGION}/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=",
                &request.amz_date[..8]
            )),
            "{request:?}"
        );
        let signature = request.authorization.rsplit("Signature=").next().unwrap();
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(request.amz_date.len(), 16, "{request:?}");
        assert!(request.security_token.is_none());
    }
    assert!(seen.iter().any(|r| r.path_and_query.contains("cursor=")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_credentials_send_and_sign_their_session_token() {
    let stack = stack(true).await;
    let out = stack.run(&["integrations"], true).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_never_printed(&out);
    let seen = stack.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].signature_valid, "{:?}", seen[0]);
    assert_eq!(seen[0].security_token.as_deref(), Some(SESSION_TOKEN));
    assert!(
        seen[0]
            .authorization
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
        "{:?}",
        seen[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_clear_messages() {
    let good = stack(false).await;
    let out = good.run(&["report", "--integration", "0aa"], false).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("the API answered 404: integration 0aa not found (not_found)"),
        "{err}"
    );

    // Credentials the stack does not accept: API Gateway's own error shape.
    let wrong = stack(true).await;
    let out = wrong.run(&["integrations"], false).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("the API answered 403: The request signature"),
        "{err}"
    );
    assert_never_printed(&out);

    // Commands that change local state refuse --api rather than act locally.
    let out = good.run(&["sync"], false).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with --api"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plain_http_to_another_machine_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(["--api", "http://api.example.com/prod", "integrations"])
        .env("SEATKEEPER_DATA_DIR", home.path())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("must use https"),
        "{}",
        text(&out.stderr)
    );
}
