//! Test support shared by Seatkeeper's end-to-end tests: a local AWS emulator (moto) on
//! loopback, SDK configuration pointing at it, and ready-made adapters.
//!
//! ```ignore
//! static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);
//! let store = dynamo_store(&MOTO).await; // a fresh table per call
//! ```
//!
//! The emulator is a child process. It is killed when its `Moto` is dropped and, because a
//! `static` is never dropped, also by the kernel when the test process ends in any way
//! (`PR_SET_PDEATHSIG`), so no server outlives the run. These helpers panic with a clear
//! message instead of returning errors: they only ever run inside tests.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::store::dynamo::DynamoStore;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Overrides the emulator's command (default: `moto_server` from `PATH`).
pub const MOTO_SERVER_ENV: &str = "SEATKEEPER_MOTO_SERVER";
pub const REGION: &str = "us-east-1";
/// moto imports every AWS service model at start-up: a few seconds on a slow machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server on `127.0.0.1:<free port>`, stopped when dropped or when the process ends.
pub struct Moto {
    child: Mutex<Child>,
    port: u16,
}

impl Moto {
    /// Starts the server and waits until it answers. Panics (never skips) when it cannot:
    /// a test that silently did not run would look like a test that passed.
    pub fn start() -> Moto {
        let program = std::env::var(MOTO_SERVER_ENV).unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let mut log = tempfile::tempfile().expect("cannot create a log file for moto_server");
        let child = spawn_tied_to_process(&program, port, &log);
        let moto = Moto {
            child: Mutex::new(child),
            port,
        };
        if let Err(problem) = moto.wait_until_ready() {
            moto.kill();
            panic!(
                "moto_server on port {port} did not start: {problem}\n--- its output ---\n{}",
                tail(&mut log)
            );
        }
        moto
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL` or an SDK `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.lock_child().try_wait().ok().flatten() {
                return Err(format!("it exited with {status}"));
            }
            if api_answers(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "GET /moto-api/ did not answer within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kill(&self) {
        let mut child = self.lock_child();
        // Already gone is fine; waiting reaps it so no zombie is left.
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SDK configuration for the emulator: fixed region, static test credentials, its endpoint.
pub async fn aws_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "seatkeeper-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A DynamoDB client for the emulator. The endpoint is also set on the client, so an
/// `AWS_ENDPOINT_URL_DYNAMODB` in the environment cannot send tests elsewhere.
pub async fn dynamo_client(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let shared = aws_config(&moto.endpoint()).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A Secrets Manager client for the emulator (endpoint pinned as for DynamoDB).
pub async fn secrets_client(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    let shared = aws_config(&moto.endpoint()).await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&shared)
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// A `DynamoStore` on a table of its own, created for this call, so tests never share data.
pub async fn dynamo_store(moto: &Moto) -> DynamoStore {
    let client = dynamo_client(moto).await;
    let table = format!("seatkeeper-test-{}", uuid::Uuid::new_v4());
    if let Err(e) = DynamoStore::create_table(&client, &table).await {
        panic!("cannot create table {table} in moto: {}", error_chain(&e));
    }
    DynamoStore::new(client, table)
}

/// A `SecretsManagerSecrets` on the emulator.
pub async fn secrets_manager(moto: &Moto) -> SecretsManagerSecrets {
    SecretsManagerSecrets::new(secrets_client(moto).await)
}

/// An error and all its sources on one line, for test failure messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// A port that was free a moment ago (the OS picks it; the listener is closed right away).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port on 127.0.0.1")
}

/// Spawns moto from a thread that lives as long as the process: the kernel sends the
/// parent-death signal when the spawning *thread* ends, and test threads end early.
fn spawn_tied_to_process(program: &str, port: u16, log: &File) -> Child {
    let owned = program.to_owned();
    let stdout = log.try_clone().expect("cannot share the moto log file");
    let stderr = log.try_clone().expect("cannot share the moto log file");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("moto-{port}"))
        .spawn(move || {
            let spawned = moto_command(&owned, port)
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr))
                .spawn();
            let _ = sender.send(spawned);
            loop {
                std::thread::park();
            }
        })
        .expect("cannot start the thread that owns moto_server");
    match receiver.recv() {
        Ok(Ok(child)) => child,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` was not found on PATH. The DynamoDB and Secrets Manager tests need \
             the moto server: `pip install 'moto[server]'` (see shared/reference/aws-local.md), \
             or set {MOTO_SERVER_ENV} to its path."
        ),
        Ok(Err(e)) => panic!("cannot start `{program}`: {e}"),
        Err(_) => panic!("the thread starting `{program}` died"),
    }
}

fn moto_command(program: &str, port: u16) -> Command {
    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // moto calls itself through this port (Step Functions tasks).
        .env("MOTO_PORT", port.to_string())
        .stdin(Stdio::null());
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid) and `_exit`.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the line above took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
}

/// Whether `GET /moto-api/` answers 200 (plain HTTP/1.1 over a socket: no client needed).
fn api_answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line).is_ok()
        && status_line.starts_with(b"HTTP/1.")
        && &status_line[9..12] == b"200"
}

/// The end of the server's output, for a failure message.
fn tail(log: &mut File) -> String {
    let mut text = String::new();
    let _ = log.seek(SeekFrom::Start(0));
    let _ = log.read_to_string(&mut text);
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
