//! Benchmark: cold start of each Lambda function, as Lambda sees it.
//!
//! For every crate under `functions/`, the release `bootstrap` (from `scripts/build-lambdas`:
//! `target/lambda/<function>/bootstrap`; else `target/release/<function>`) is started with a
//! Lambda-like environment whose `AWS_LAMBDA_RUNTIME_API` points at a small Runtime API
//! emulator on 127.0.0.1 (this process). Measured per run:
//! - **start**: from spawning the process to its first complete request, which must be
//!   `GET /2018-06-01/runtime/invocation/next` (the function's init is done by then: logging,
//!   AWS config, SDK and HTTP clients);
//! - **idle RSS**: `VmRSS` of the process 200 ms later, while the emulator holds that request
//!   open (the function waits for an event, as a warm container does).
//!
//! Nothing is built here. One warm-up run (page cache) is not counted. Targets: median start
//! under 50 ms and idle RSS under 30 MiB; the process exits with 1 when one is missed.
//!
//! Environment: `BENCH_RUNS` (10), `CARGO_TARGET_DIR`, `BENCH_BOOTSTRAP=<path>` (measure one
//! binary instead of the functions' artifacts), `BENCH_SSL_CERT_FILE=<bundle>` (the binary
//! loads its trust roots from that one file, as on Lambda's AL2023, instead of this machine's
//! certificate directory). The binary gets a clean environment: nothing else is passed on.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NEXT_INVOCATION: &str = "GET /2018-06-01/runtime/invocation/next ";
const IDLE: Duration = Duration::from_millis(200);
const START_TIMEOUT: Duration = Duration::from_secs(10);
const TARGET_START: Duration = Duration::from_millis(50);
const TARGET_RSS_KIB: u64 = 30 * 1024;
const MEMORY_SIZE_MB: &str = "512";

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else: only
    // measure when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cold_start: run with `cargo bench -p seatkeeper-tests --bench cold_start`");
        return;
    }
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("cold_start failed: {e}");
            std::process::exit(2);
        }
    }
}

/// Measures every function; `Ok(false)` when a target is missed.
fn run() -> BenchResult<bool> {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let functions = match std::env::var_os("BENCH_BOOTSTRAP") {
        Some(path) => vec![("bootstrap".to_owned(), PathBuf::from(path))],
        None => function_artifacts()?,
    };
    let roots = std::env::var("BENCH_SSL_CERT_FILE").map_or_else(
        |_| "this machine's default".to_owned(),
        |f| format!("bundle {f}"),
    );
    println!(
        "cold start: {runs} runs per function (after 1 warm-up), Runtime API on 127.0.0.1, \
         trust roots: {roots}\ntargets: median start < {} ms, median idle RSS < {} MiB\n",
        TARGET_START.as_millis(),
        TARGET_RSS_KIB / 1024
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>12} {:>12}  binary",
        "function", "start min", "median", "max", "RSS median", "RSS max"
    );
    let mut all_met = true;
    for (name, binary) in functions {
        measure(&name, &binary)?; // warm-up: the binary into the page cache
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            samples.push(measure(&name, &binary)?);
        }
        let mut starts: Vec<Duration> = samples.iter().map(|s| s.start).collect();
        let mut rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
        starts.sort();
        rss.sort();
        let start_median = median(&starts);
        let rss_median = median(&rss);
        println!(
            "{:<16} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>8.1} MiB {:>8.1} MiB  {}",
            name,
            ms(starts[0]),
            ms(start_median),
            ms(starts[starts.len() - 1]),
            rss_median as f64 / 1024.0,
            rss[rss.len() - 1] as f64 / 1024.0,
            binary.display()
        );
        if start_median >= TARGET_START {
            println!("  MISSED: median start {:.1} ms", ms(start_median));
            all_met = false;
        }
        if rss_median >= TARGET_RSS_KIB {
            println!(
                "  MISSED: median idle RSS {:.1} MiB",
                rss_median as f64 / 1024.0
            );
            all_met = false;
        }
    }
    Ok(all_met)
}

struct Sample {
    start: Duration,
    rss_kib: u64,
}

/// One cold start: spawn, wait for the first `/invocation/next`, hold it, read RSS, kill.
fn measure(name: &str, binary: &Path) -> BenchResult<Sample> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?.to_string();
    let log =
        std::env::temp_dir().join(format!("seatkeeper-cold-start-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log)?;

    // The emulator: accepts one connection and reads the request head; the instant the head
    // is complete is the end of the cold start.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let received = accept_request(&listener);
        // The receiver is gone only if the measurement already failed.
        let _ = sender.send(received);
    });

    let started = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        .envs(lambda_environment(name, &api, binary))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut child = KillOnDrop(child);

    let (request_line, _connection, at) = loop {
        match receiver.recv_timeout(Duration::from_millis(20)) {
            Ok(received) => break received?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the emulator stopped".into()),
        }
        if let Some(status) = child.0.try_wait()? {
            return Err(format!(
                "{} exited ({status}) before asking for an event; its output:\n{}",
                binary.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
            .into());
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "{} sent no request within {START_TIMEOUT:?}",
                binary.display()
            )
            .into());
        }
    };
    let start = at.duration_since(started);
    if !request_line.starts_with(NEXT_INVOCATION) {
        return Err(
            format!("the first request was {request_line:?}, not {NEXT_INVOCATION:?}").into(),
        );
    }

    // Idle: the request stays open (`_connection` is held) as if no event had come yet.
    std::thread::sleep(IDLE);
    if let Some(status) = child.0.try_wait()? {
        return Err(format!("{} exited ({status}) while idle", binary.display()).into());
    }
    let rss_kib = vm_rss_kib(child.0.id())?;
    drop(child);
    let _ = std::fs::remove_file(&log);
    Ok(Sample { start, rss_kib })
}

/// The request line of the first request, its connection, and when its head was complete.
fn accept_request(listener: &TcpListener) -> Result<(String, TcpStream, Instant), String> {
    let (connection, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut reader = BufReader::new(connection.try_clone().map_err(|e| e.to_string())?);
    let mut request_line = String::new();
    reader
        .read_line(&mut request_line)
        .map_err(|e| format!("reading the request: {e}"))?;
    loop {
        let mut header = String::new();
        let read = reader
            .read_line(&mut header)
            .map_err(|e| format!("reading the request: {e}"))?;
        if read == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    Ok((request_line, connection, Instant::now()))
}

/// What Lambda puts in a function's environment (with dummy credentials), plus the
/// Seatkeeper variables of design §9, so every function finds what its `main` requires.
fn lambda_environment(name: &str, api: &str, binary: &Path) -> Vec<(String, String)> {
    let function = format!("seatkeeper-bench-{name}");
    let task_root = binary
        .parent()
        .map_or_else(|| ".".to_owned(), |p| p.display().to_string());
    [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", &function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            &format!("/aws/lambda/{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]00000000000000000000000000000000",
        ),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK"),
        ("AWS_SECRET_ACCESS_KEY", "benchmark"),
        ("AWS_SESSION_TOKEN", "benchmark"),
        ("LAMBDA_TASK_ROOT", &task_root),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("RUST_LOG", "info"),
        ("SEATKEEPER_TABLE", "seatkeeper-bench"),
        ("SEATKEEPER_SYNC_FUNCTION", &function),
        (
            "SEATKEEPER_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:seatkeeper-bench",
        ),
        (
            "SEATKEEPER_PUBLIC_BASE_URL",
            "https://seatkeeper.example.com",
        ),
        (
            "SEATKEEPER_NOTIFY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:seatkeeper-bench",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    // Trust roots: by default the binary finds this machine's (on Debian, /etc/ssl/certs is
    // a directory of ~300 files, read one by one at start). BENCH_SSL_CERT_FILE points it at
    // one bundle instead, as Lambda's AL2023 has (/etc/pki/tls/certs/ca-bundle.crt).
    .chain(
        std::env::var("BENCH_SSL_CERT_FILE")
            .ok()
            .map(|file| ("SSL_CERT_FILE".to_owned(), file)),
    )
    .collect()
}

/// Each function crate's release bootstrap: cargo-lambda's artifact, or the plain release
/// binary of the host.
fn function_artifacts() -> BenchResult<Vec<(String, PathBuf)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut functions = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("functions"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let binary = binary_name(&dir.join("Cargo.toml"))?;
        let candidates = [
            target.join("lambda").join(&binary).join("bootstrap"),
            target.join("release").join(&binary),
        ];
        let artifact = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "no release build of {binary} ({} or {}): run scripts/build-lambdas",
                candidates[0].display(),
                candidates[1].display()
            )
        })?;
        functions.push((binary, artifact.clone()));
    }
    if functions.is_empty() {
        return Err("no function crates under functions/".into());
    }
    Ok(functions)
}

/// The crate's `[[bin]]` name, or its package name.
fn binary_name(manifest: &Path) -> BenchResult<String> {
    let text = std::fs::read_to_string(manifest)?;
    let mut section = "";
    let mut package = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some(value) = line.strip_prefix("name").map(str::trim_start) else {
            continue;
        };
        let Some(name) = value
            .strip_prefix('=')
            .and_then(|v| v.trim().split('"').nth(1))
        else {
            continue;
        };
        match section {
            "[[bin]]" => return Ok(name.to_owned()),
            "[package]" => package = Some(name.to_owned()),
            _ => {}
        }
    }
    package.ok_or_else(|| format!("{}: no package name", manifest.display()).into())
}

fn vm_rss_kib(pid: u32) -> BenchResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

fn median<T: Copy>(sorted: &[T]) -> T {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The function process never outlives a measurement, even one that failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
