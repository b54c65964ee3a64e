//! Benchmark: sync a 100 000-user Box tenant with about 1 000 000 login events.
//!
//! Three processes: this orchestrator; the Box simulator (this same executable re-run with
//! `--serve-sim`); and the real `seatkeeper` binary doing `connect` then `sync` with its
//! embedded store. Peak RSS is the largest waited-for child's (`getrusage(RUSAGE_CHILDREN)`),
//! i.e. the sync process, since the simulator is still running when it is read.
//!
//! Environment: `BENCH_USERS` (100000), `BENCH_EVENTS` (1000000).

use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-sim") {
        serve_sim();
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else: only run
    // the full benchmark when asked to bench.
    if !args.iter().any(|a| a == "--bench") {
        println!("sync_100k: run with `cargo bench -p seatkeeper-cli --bench sync_100k`");
        return;
    }
    let users = env_usize("BENCH_USERS", 100_000);
    let events = env_usize("BENCH_EVENTS", 1_000_000);
    if let Err(e) = run(users, events) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn serve_sim() {
    let users = env_usize("BENCH_USERS", 100_000);
    let events = env_usize("BENCH_EVENTS", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut spec = BoxTenantSpec::new(42, users);
        spec.login_events = events;
        let sim = BoxSim::start(BoxSimConfig::new(spec))
            .await
            .expect("simulator starts");
        println!(
            "{}",
            serde_json::json!({
                "base_url": sim.base_url(),
                "enterprise_id": sim.enterprise_id(),
                "client_id": sim.client_id(),
                "client_secret": sim.client_secret(),
            })
        );
        std::io::stdout().flush().ok();
        // Serve until the orchestrator closes our stdin.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    });
}

fn run(users: usize, events: usize) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut sim = Command::new(std::env::current_exe()?)
        .arg("--serve-sim")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(sim.stdout.take().ok_or("no simulator stdout")?).read_line(&mut line)?;
    let info: serde_json::Value = serde_json::from_str(&line)?;
    let field = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
    let base_url = field("base_url");
    println!(
        "simulator ready in {:.1} s at {base_url}",
        started.elapsed().as_secs_f64()
    );

    let data_dir = tempfile_dir()?;
    let seatkeeper = env!("CARGO_BIN_EXE_seatkeeper");
    let base = |cmd: &mut Command| {
        cmd.env("SEATKEEPER_BOX_API_URL", &base_url)
            .env("SEATKEEPER_DATA_DIR", &data_dir)
            .env("BENCH_CLIENT_SECRET", field("client_secret"))
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY");
    };
    let mut connect = Command::new(seatkeeper);
    base(&mut connect);
    let out = connect
        .args([
            "connect",
            "box",
            "--client-id",
            &field("client_id"),
            "--client-secret-env",
            "BENCH_CLIENT_SECRET",
        ])
        .args([
            "--enterprise-id",
            &field("enterprise_id"),
            "--plan",
            "enterprise",
            "--seats",
            &users.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("connect failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let served_before = sim_stats(&base_url)?;

    let mut sync = Command::new(seatkeeper);
    base(&mut sync);
    let sync_started = Instant::now();
    let out = sync.arg("sync").output()?;
    let wall = sync_started.elapsed();
    if !out.status.success() {
        return Err(format!("sync failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let peak_rss_kib = children_peak_rss_kib();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let served = sim_stats(&base_url)?["total"].as_u64().unwrap_or(0)
        - served_before["total"].as_u64().unwrap_or(0);
    drop(sim.stdin.take());
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&data_dir);

    let stats = &summary["stats"];
    let requests = stats["provider_requests"].as_u64().unwrap_or(0);
    let writes = stats["accounts_written"].as_u64().unwrap_or(0)
        + stats["other_items_written"].as_u64().unwrap_or(0);
    // Users listed: managed + app users + the service account; events paged 500 at a time
    // and read until an empty page; one token.
    let listed = stats["accounts_read"].as_u64().unwrap_or(0);
    let minimum = listed.div_ceil(1000) + (events as u64).div_ceil(500) + 1 + 1;
    println!("tenant: {users} users, {events} login events");
    println!("wall time:          {:.2} s", wall.as_secs_f64());
    println!(
        "peak RSS (sync):    {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
    println!(
        "provider requests:  {requests} (simulator served {served}; minimum {minimum}; +{:.2} %)",
        (requests as f64 / minimum as f64 - 1.0) * 100.0
    );
    println!(
        "store writes:       {writes} (accounts {}, other items {})",
        stats["accounts_written"], stats["other_items_written"]
    );
    println!("login events read:  {}", stats["login_events_read"]);
    println!(
        "phases:             roster {} ms, logins {} ms",
        stats["roster_ms"], stats["logins_ms"]
    );
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("seatkeeper-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss
}

fn sim_stats(base_url: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET /_sim/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response.split("\r\n\r\n").nth(1).ok_or("no body")?;
    Ok(serde_json::from_str(body)?)
}
