//! `seatkeeper serve` and `seatkeeper connect box --oauth`, as the real binary runs them:
//! loopback only, the Host / token / JSON guard in front of every route, 4xx JSON for bad
//! requests, and connects against the Box simulator over real HTTP.

use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-test-token-0123456789abcdef";

fn seatkeeper(dir: &std::path::Path, sim: Option<&SimHandle>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seatkeeper"));
    cmd.env("SEATKEEPER_DATA_DIR", dir)
        .env("SEATKEEPER_LOCAL_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("SEATKEEPER_API_URL")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY");
    if let Some(sim) = sim {
        cmd.env("SEATKEEPER_BOX_API_URL", sim.base_url())
            .env("SEATKEEPER_BOX_AUTHORIZE_URL", sim.authorize_url());
    }
    cmd
}

/// A `seatkeeper serve --port 0` child process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// Deleted when the server is dropped.
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(sim: Option<&SimHandle>) -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), sim)
    }

    fn start_in(dir: tempfile::TempDir, sim: Option<&SimHandle>) -> Server {
        let mut child = seatkeeper(dir.path(), sim)
            .args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("seatkeeper serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("serve prints a line")
            .expect("readable line");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"));
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .parse()
            .unwrap_or_else(|_| panic!("serve listens on 127.0.0.1: {first:?}"));
        // The token came from the environment: it is never printed.
        let rest: Vec<String> = lines.by_ref().take(3).map_while(Result::ok).collect();
        assert!(
            !rest.iter().any(|l| l.contains(TOKEN)) && !first.contains(TOKEN),
            "{rest:?}"
        );
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = Self::client()
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = Self::client()
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// One raw HTTP/1.1 exchange, for what a well-behaved client would not send.
    fn raw(&self, request: &str, body: &[u8]) -> RawResponse {
        raw_exchange(self.port, request, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, value)
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The answer is `{"error": {"code", "message"}}` with a JSON content type.
    fn assert_json_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{:?}",
            self.headers
        );
        let value: Value = serde_json::from_str(&self.body).expect("JSON body");
        assert!(value["error"]["message"].is_string(), "{value}");
        value["error"]["code"]
            .as_str()
            .expect("an error code")
            .to_owned()
    }
}

fn raw_exchange(port: u16, head: &str, body: &[u8]) -> RawResponse {
    let mut stream =
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connects to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("writes the head");
    // The server may answer (and close) before the whole body is sent: that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

async fn sim(users: usize) -> SimHandle {
    BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(23, users)))
        .await
        .expect("simulator")
}

/// Polls until `check` passes (or panics after `limit`).
async fn eventually<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn serve_listens_on_the_loopback_address_only() {
    let server = Server::start(None);
    // Bound to 127.0.0.1, not a wildcard: another loopback address finds nothing there.
    let other = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), server.port));
    assert!(
        TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "127.0.0.2:{} must not answer",
        server.port
    );
    // The kernel's own view: every listening socket on the port is 127.0.0.1 (IPv4 only).
    if let Ok(table) = std::fs::read_to_string("/proc/net/tcp") {
        let port_hex = format!(":{:04X}", server.port);
        let listening: Vec<&str> = table
            .lines()
            .skip(1)
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() > 3 && fields[1].ends_with(&port_hex) && fields[3] == "0A")
                    .then_some(fields[1])
            })
            .collect();
        assert_eq!(listening, vec![format!("0100007F{port_hex}").as_str()]);
    }
    if let Ok(table) = std::fs::read_to_string("/proc/net/tcp6") {
        let port_hex = format!(":{:04X} ", server.port);
        assert!(
            !table
                .lines()
                .any(|l| l.contains(&port_hex) && l.split_whitespace().nth(3) == Some("0A")),
            "nothing listens on IPv6"
        );
    }
}

#[test]
fn a_foreign_host_header_is_refused_even_with_the_token() {
    let server = Server::start(None);
    let port = server.port;
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("[::1]:{port}"),
    ] {
        let response = server.raw(
            &format!(
                "GET /integrations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            ),
            b"",
        );
        assert_eq!(
            response.assert_json_error(421),
            "misdirected_request",
            "{host}"
        );
        assert!(response.header("access-control-allow-origin").is_none());
    }
    // The OAuth routes need no token but still only answer to this machine's names.
    let response = server.raw(
        "GET /oauth/box/start?ticket=x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        b"",
    );
    response.assert_json_error(421);
    // Both names this machine has are fine.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let response = server.raw(
            &format!(
                "GET /integrations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            ),
            b"",
        );
        assert_eq!(response.status, 200, "{host}: {}", response.body);
    }
}

#[test]
fn a_missing_or_wrong_token_is_a_401_json_error() {
    let server = Server::start(None);
    let port = server.port;
    for authorization in [
        String::new(),
        "Authorization: Bearer wrong-token-wrong-token\r\n".to_owned(),
        format!("Authorization: Bearer {}\r\n", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Bearer {TOKEN}x\r\n"),
        format!("Authorization: Basic {TOKEN}\r\n"),
        format!("Authorization: Bearer {}\r\n", TOKEN.to_uppercase()),
        format!("Authorization: Bearer {TOKEN}\r\nAuthorization: Bearer {TOKEN}\r\n"),
    ] {
        for path in ["/integrations", "/openapi.json", "/no-such-route"] {
            let response = server.raw(
                &format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}Connection: close\r\n\r\n"
                ),
                b"",
            );
            assert_eq!(
                response.assert_json_error(401),
                "unauthorized",
                "{authorization:?} {path}"
            );
        }
    }
    // The scheme is case-insensitive.
    let response = server.raw(
        &format!(
            "GET /integrations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.body);
}

#[test]
fn request_bodies_must_be_json() {
    let server = Server::start(None);
    let port = server.port;
    let body = br#"{"client_id":"a"}"#;
    for content_type in [
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "Content-Type: application/jsonp\r\n",
    ] {
        let response = server.raw(
            &format!(
                "POST /integrations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body,
        );
        assert_eq!(
            response.assert_json_error(415),
            "unsupported_media_type",
            "{content_type:?}"
        );
    }
}

#[test]
fn bad_requests_are_4xx_json_never_5xx() {
    let server = Server::start(None);
    let port = server.port;
    let post = |path: &str, body: &[u8]| {
        server.raw(
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    // Malformed JSON, wrong types, missing fields.
    for body in [
        &b"{"[..],
        b"not json",
        b"[]",
        b"null",
        br#"{"client_id": 5, "client_secret": "x", "enterprise_id": "1", "plan": "business"}"#,
        br#"{"client_id": "a"}"#,
        br#"{"client_id": "a", "client_secret": "b", "enterprise_id": "1", "plan": "gold"}"#,
    ] {
        let response = post("/integrations", body);
        assert!(
            (400..500).contains(&response.status),
            "{}: {} {}",
            String::from_utf8_lossy(body),
            response.status,
            response.body
        );
        response.assert_json_error(response.status);
    }
    // Over 1 MiB, declared up front.
    let big = vec![b' '; 1024 * 1024 + 1];
    post("/integrations", &big).assert_json_error(413);
    // Over 1 MiB, chunked (no length given).
    let mut chunked = Vec::new();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    server
        .raw(
            &format!(
                "POST /integrations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            ),
            &chunked,
        )
        .assert_json_error(413);
    // Unknown routes and methods.
    for (method, path) in [
        ("GET", "/no-such-route"),
        ("GET", "/integrations/not-an-id"),
        ("DELETE", "/integrations"),
        ("PUT", "/integrations"),
        (
            "GET",
            "/integrations/00000000000000000000000000000000/licenses",
        ),
    ] {
        let response = server.raw(
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            ),
            b"",
        );
        assert!(
            (400..500).contains(&response.status),
            "{method} {path}: {} {}",
            response.status,
            response.body
        );
        response.assert_json_error(response.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_start_route_works_without_the_token() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().expect("dir");
    let set = seatkeeper(dir.path(), Some(&sim))
        .args([
            "apps",
            "set",
            "box",
            "--client-id",
            &sim.client_id(),
            "--client-secret-env",
            "TEST_APP_SECRET",
        ])
        .env("TEST_APP_SECRET", sim.client_secret())
        .output()
        .expect("apps set runs");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let set_out = String::from_utf8_lossy(&set.stdout);
    assert!(!set_out.contains(&sim.client_secret()), "{set_out}");
    let server = Server::start_in(dir, Some(&sim));

    // Without a ticket: refused by the OAuth handler (a page), not by the token guard.
    let response = Server::client()
        .get(server.url("/oauth/box/start"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);

    let (status, issued) = server
        .post(
            "/integrations/oauth",
            &json!({ "provider": "box", "plan": "business", "name": "Browser tenant" }),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {issued}");
    let start_url = issued["start_url"].as_str().expect("start_url").to_owned();
    assert!(
        start_url.starts_with(&server.url("/oauth/box/start?ticket=")),
        "{start_url}"
    );

    let response = Server::client()
        .get(&start_url)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().expect("location");
    assert!(location.starts_with(&sim.authorize_url()), "{location}");
    assert!(
        location.contains(&format!(
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A{}%2Foauth%2Fbox%2Fcallback",
            server.port
        )),
        "{location}"
    );
    assert!(response.headers().get("set-cookie").is_some());
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ccg_connect_is_synced_in_process_and_its_licenses_served() {
    let sim = sim(120).await;
    let server = Server::start(Some(&sim));
    let (status, integration) = server
        .post(
            "/integrations",
            &json!({
                "provider": "box",
                "client_id": sim.client_id(),
                "client_secret": sim.client_secret(),
                "enterprise_id": sim.enterprise_id(),
                "plan": "business",
                "seats": 150,
                "name": "Served tenant",
            }),
        )
        .await;
    assert_eq!(status, 201, "{integration}");
    let id = integration["id"].as_str().expect("id").to_owned();
    assert!(!integration.to_string().contains(&sim.client_secret()));

    let licenses = eventually(Duration::from_secs(120), async || {
        let (status, body) = server.get(&format!("/integrations/{id}/licenses")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(licenses["integration"]["id"], id.as_str());
    assert_eq!(licenses["seats"]["purchased"], 150);
    assert_eq!(licenses["seats"]["assigned"], 120);
    assert_eq!(licenses["license_types"][0]["assigned"], 120);

    let (status, list) = server.get("/integrations").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains(&id), "{list}");
    // The server's log never shows the secret (stderr is inherited: checked by eye in CI;
    // the store file is checked here).
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_box_oauth_walks_the_browser_flow_and_syncs() {
    let sim = sim(40).await;
    let dir = tempfile::tempdir().expect("dir");
    let set = seatkeeper(dir.path(), Some(&sim))
        .args([
            "apps",
            "set",
            "box",
            "--client-id",
            &sim.client_id(),
            "--client-secret-env",
            "TEST_APP_SECRET",
        ])
        .env("TEST_APP_SECRET", sim.client_secret())
        .output()
        .expect("apps set runs");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let mut child = seatkeeper(dir.path(), Some(&sim))
        .args([
            "connect",
            "box",
            "--oauth",
            "--plan",
            "business-plus",
            "--seats",
            "50",
            "--name",
            "Browser tenant",
            "--port",
            "0",
            "--no-browser",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connect runs");
    let stderr = child.stderr.take().expect("stderr");
    let (link_tx, link_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("http://127.0.0.1:") {
                let _ = link_tx.send(line.clone());
            }
            all.push(line);
        }
        all
    });
    let link = link_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the command prints the start link");

    // The browser: start (sets the binding cookie) → Box's authorize page → callback.
    let client = Server::client();
    let start = client.get(&link).send().await.expect("start");
    assert_eq!(start.status(), 302);
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let authorize = start.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let consent = client.get(&authorize).send().await.expect("authorize");
    assert_eq!(consent.status(), 302);
    let callback = consent.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let page = client
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .expect("callback");
    assert_eq!(page.status(), 200);

    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joins")
        .expect("connect ends");
    let messages = reader.join().expect("stderr reader");
    assert!(output.status.success(), "{messages:?}");
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    assert!(
        messages.iter().any(|m| m.contains("First sync done")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains(&sim.client_secret())),
        "{messages:?}"
    );

    let report = seatkeeper(dir.path(), Some(&sim))
        .args(["report", "--integration", &id, "--format", "json"])
        .output()
        .expect("report runs");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).expect("JSON report");
    assert_eq!(report["license_types"][0]["name"], "Business Plus");
    assert_eq!(report["seats"]["purchased"], 50);
    // Every user the simulated tenant has was synced: its 40 managed users (the admin who
    // authorized among them), an app user and the service account.
    assert_eq!(report["accounts"].as_array().expect("accounts").len(), 42);
}
