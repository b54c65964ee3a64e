//! `HttpClient::send` edge cases against a scripted HTTP/1.1 server on 127.0.0.1: each
//! request received takes the next step of the script (answer, drop, hang, cut the body).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::provider::http::{Call, HttpClient, HttpResponse, RetryPolicy};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug)]
enum Step {
    /// Status, extra header lines, body.
    Answer(u16, Vec<&'static str>, &'static str),
    /// Close the connection without answering.
    Drop,
    /// Never answer.
    Hang,
    /// Promise 100 bytes, send a few, close.
    CutBody,
}

fn ok(body: &'static str) -> Step {
    Step::Answer(200, vec![], body)
}

fn status(code: u16) -> Step {
    Step::Answer(code, vec![], "{}")
}

fn with_header(code: u16, header: &'static str) -> Step {
    Step::Answer(code, vec![header], "{}")
}

struct Script {
    steps: Mutex<VecDeque<Step>>,
    /// Request lines received (method and target).
    seen: Mutex<Vec<String>>,
}

struct Server {
    url: String,
    script: Arc<Script>,
}

impl Server {
    async fn start(steps: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Script {
            steps: Mutex::new(steps.into()),
            seen: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Self { url, script }
    }

    fn requests(&self) -> usize {
        self.script.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<String> {
        self.script.seen.lock().unwrap().clone()
    }
}

async fn serve(stream: TcpStream, script: Arc<Script>) {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request_line) = read_request(&mut reader).await else {
            return;
        };
        script.seen.lock().unwrap().push(request_line);
        let step = script
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Answer(599, vec![], "script exhausted"));
        let stream = reader.get_mut();
        match step {
            Step::Answer(code, headers, body) => {
                let mut response = format!(
                    "HTTP/1.1 {code} Scripted\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for header in headers {
                    response.push_str(header);
                    response.push_str("\r\n");
                }
                response.push_str("\r\n");
                response.push_str(body);
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
            Step::Drop => return,
            Step::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Step::CutBody => {
                let partial = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial\":";
                let _ = stream.write_all(partial.as_bytes()).await;
                let _ = stream.flush().await;
                return;
            }
        }
    }
}

/// Reads one request (head and any body); `None` when the client closed the connection.
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await.ok()?;
    Some(request_line.trim_end().to_owned())
}

fn fast() -> RetryPolicy {
    RetryPolicy::fast_for_tests()
}

async fn get(
    http: &HttpClient,
    policy: &RetryPolicy,
    url: &str,
) -> Result<HttpResponse, ProviderError> {
    http.send(Call::new("test", "get", policy), |client| client.get(url))
        .await
}

fn client() -> HttpClient {
    HttpClient::for_tests().unwrap()
}

#[tokio::test]
async fn success_is_returned_with_its_body() {
    let server = Server::start(vec![ok(r#"{"a":1}"#)]).await;
    let http = client();
    let response = get(&http, &fast(), &format!("{}/x", server.url))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"a":1}"#);
    let value: serde_json::Value = response.json("test").unwrap();
    assert_eq!(value["a"], 1);
    assert_eq!(http.requests_sent(), 1);
    assert_eq!(server.seen(), vec!["GET /x HTTP/1.1"]);
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = Server::start(vec![with_header(429, "retry-after: 1"), ok("{}")]).await;
    let policy = RetryPolicy {
        max_retry_after: Duration::from_secs(5),
        ..fast()
    };
    let started = Instant::now();
    let response = get(&client(), &policy, &server.url).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn retry_after_zero_retries_at_once() {
    let server = Server::start(vec![
        with_header(429, "retry-after: 0"),
        with_header(429, "retry-after: 0"),
        ok("{}"),
    ])
    .await;
    let policy = RetryPolicy {
        // A backoff would be visible; Retry-After: 0 must not use it.
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(2),
        ..fast()
    };
    let started = Instant::now();
    get(&client(), &policy, &server.url).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn retry_after_is_capped() {
    let server = Server::start(vec![with_header(429, "retry-after: 3600"), ok("{}")]).await;
    let policy = RetryPolicy {
        max_retry_after: Duration::from_millis(100),
        ..fast()
    };
    let started = Instant::now();
    get(&client(), &policy, &server.url).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn garbage_or_missing_retry_after_falls_back_to_backoff() {
    let server = Server::start(vec![
        with_header(429, "retry-after: soon"),
        with_header(429, "retry-after: -3"),
        status(429),
        ok("{}"),
    ])
    .await;
    let started = Instant::now();
    get(&client(), &fast(), &server.url).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn retry_after_http_date_in_the_past_retries_now() {
    let server = Server::start(vec![
        with_header(503, "retry-after: Wed, 21 Oct 2015 07:28:00 GMT"),
        ok("{}"),
    ])
    .await;
    get(&client(), &fast(), &server.url).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn accepted_with_retry_after_is_polled_again() {
    let server = Server::start(vec![
        with_header(202, "retry-after: 0"),
        with_header(202, "retry-after: 0"),
        ok(r#"{"done":true}"#),
    ])
    .await;
    let response = get(&client(), &fast(), &server.url).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"done":true}"#);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn accepted_without_retry_after_is_an_answer() {
    let server = Server::start(vec![Step::Answer(202, vec![], r#"{"message":"queued"}"#)]).await;
    let response = get(&client(), &fast(), &server.url).await.unwrap();
    assert_eq!(response.status, 202);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = Server::start(vec![status(500), status(502), status(503), ok("{}")]).await;
    let http = client();
    let response = get(&http, &fast(), &server.url).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(http.requests_sent(), 4);
}

#[tokio::test]
async fn client_errors_are_returned_without_retry() {
    for code in [400, 401, 403, 404, 409] {
        let server = Server::start(vec![status(code), ok("{}")]).await;
        let response = get(&client(), &fast(), &server.url).await.unwrap();
        assert_eq!(response.status, code);
        assert_eq!(server.requests(), 1, "{code}");
    }
}

#[tokio::test]
async fn exhausted_rate_limit_is_rate_limited() {
    let server = Server::start(vec![with_header(429, "retry-after: 0"); 10]).await;
    let policy = RetryPolicy {
        max_attempts: 4,
        ..fast()
    };
    let http = client();
    let err = get(&http, &policy, &server.url).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                provider: "test",
                attempts: 4
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests(), 4);
    assert_eq!(http.requests_sent(), 4);
}

#[tokio::test]
async fn the_last_failure_decides_the_error() {
    let server = Server::start(vec![status(429), status(429), status(500)]).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast()
    };
    let err = get(&client(), &policy, &server.url).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { attempts: 3, detail, .. } if detail == "HTTP 500"),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropped_connections_and_cut_bodies_are_retried() {
    let server = Server::start(vec![
        Step::Drop,
        Step::CutBody,
        Step::Drop,
        ok(r#"{"ok":1}"#),
    ])
    .await;
    let http = client();
    let response = get(&http, &fast(), &server.url).await.unwrap();
    assert_eq!(response.body, br#"{"ok":1}"#);
    assert_eq!(server.requests(), 4);
    assert_eq!(http.requests_sent(), 4);
}

#[tokio::test]
async fn timeouts_are_retried_and_bounded() {
    let server = Server::start(vec![Step::Hang, Step::Hang, Step::Hang]).await;
    let policy = RetryPolicy {
        max_attempts: 2,
        ..fast()
    };
    let http = client();
    let url = server.url.clone();
    let started = Instant::now();
    let err = http
        .send(
            Call::new("test", "slow", &policy).with_timeout(Duration::from_millis(200)),
            |client| client.get(&url),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { attempts: 2, detail, .. } if detail.starts_with("timeout")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn per_call_timeout_extends_the_default() {
    // The client's default is 10 s (for_tests); a call may ask for less or more.
    let server = Server::start(vec![ok("{}")]).await;
    let policy = fast();
    let response = client()
        .send(
            Call::new("test", "transfer", &policy).with_timeout(Duration::from_secs(15 * 60)),
            |client| client.put(&server.url),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn connect_errors_are_retried_and_not_counted() {
    // A port that was just free: nothing listens there.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v?token=s3cr3t", listener.local_addr().unwrap());
    drop(listener);
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast()
    };
    let http = client();
    let err = get(&http, &policy, &url).await.unwrap_err();
    match &err {
        ProviderError::Unavailable {
            attempts, detail, ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(detail.starts_with("connect error"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let shown = err.to_string();
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("127.0.0.1"),
        "{shown}"
    );
    assert_eq!(http.requests_sent(), 0);
}

#[tokio::test]
async fn not_idempotent_calls_are_not_repeated_when_their_fate_is_unknown() {
    let server = Server::start(vec![status(500), Step::Drop, ok("{}")]).await;
    let policy = fast();
    let http = client();
    let url = server.url.clone();
    let post = || {
        http.send(
            Call::new("test", "create", &policy).not_idempotent(),
            |client| client.post(&url).body("x"),
        )
    };
    // A 500 may have been processed: handed back as is.
    assert_eq!(post().await.unwrap().status, 500);
    // So may a request whose connection dropped before the answer.
    let err = post().await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { attempts: 1, detail, .. } if detail.starts_with("connection closed")),
        "{err:?}"
    );
    assert_eq!(post().await.unwrap().status, 200);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn not_idempotent_calls_are_repeated_after_429() {
    let server = Server::start(vec![with_header(429, "retry-after: 0"), ok("{}")]).await;
    let policy = fast();
    let url = server.url.clone();
    let response = client()
        .send(
            Call::new("test", "create", &policy).not_idempotent(),
            |client| client.post(&url).body("x"),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn errors_never_show_the_url_or_query() {
    let server = Server::start(vec![Step::Drop; 3]).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast()
    };
    let url = format!("{}/2.0/things?secret=hunter2", server.url);
    let err = get(&client(), &policy, &url).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("/2.0/things"),
        "{shown}"
    );
}

#[tokio::test]
async fn bad_urls_fail_without_sending() {
    let http = client();
    let err = get(&http, &fast(), "not a url").await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable { attempts: 1, detail, .. } if detail.starts_with("invalid request")),
        "{err:?}"
    );
    assert_eq!(http.requests_sent(), 0);
}

#[tokio::test]
async fn clones_share_the_counter_and_new_counters_start_at_zero() {
    let server = Server::start(vec![ok("{}"), ok("{}"), ok("{}")]).await;
    let http = client();
    let clone = http.clone();
    let separate = http.with_new_counter();
    get(&http, &fast(), &server.url).await.unwrap();
    get(&clone, &fast(), &server.url).await.unwrap();
    get(&separate, &fast(), &server.url).await.unwrap();
    assert_eq!(http.requests_sent(), 2);
    assert_eq!(clone.requests_sent(), 2);
    assert_eq!(separate.requests_sent(), 1);
}
