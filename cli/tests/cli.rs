//! The `seatkeeper` binary as a user runs it.

use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use serde_json::Value;
use std::process::{Command, Output};

struct Cli {
    dir: tempfile::TempDir,
    box_url: Option<String>,
}

impl Cli {
    fn new(sim: Option<&SimHandle>) -> Self {
        Self {
            dir: tempfile::tempdir().expect("dir"),
            box_url: sim.map(SimHandle::base_url),
        }
    }

    fn run(&self, args: &[&str], secret: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seatkeeper"));
        cmd.args(args)
            .env("SEATKEEPER_DATA_DIR", self.dir.path())
            .env("RUST_LOG", "debug")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY");
        if let Some(url) = &self.box_url {
            cmd.env("SEATKEEPER_BOX_API_URL", url);
        }
        if let Some(secret) = secret {
            cmd.env("TEST_BOX_SECRET", secret);
        }
        cmd.output().expect("seatkeeper runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn sim(users: usize) -> SimHandle {
    sim_with_seed(17, users).await
}

async fn sim_with_seed(seed: u64, users: usize) -> SimHandle {
    BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(seed, users)))
        .await
        .expect("sim")
}

fn connect_args(sim: &SimHandle) -> Vec<String> {
    [
        "connect",
        "box",
        "--client-id",
        &sim.client_id(),
        "--client-secret-env",
        "TEST_BOX_SECRET",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        "--enterprise-id".to_owned(),
        sim.enterprise_id(),
        "--plan".to_owned(),
        "business".to_owned(),
    ])
    .chain(["--seats".to_owned(), "400".to_owned()])
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sync_and_report_in_every_format_without_leaking_the_secret() {
    let sim = sim(300).await;
    let cli = Cli::new(Some(&sim));
    let args = connect_args(&sim);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let connect = cli.run(&args, Some(&sim.client_secret()));
    assert!(connect.status.success(), "{}", text(&connect.stderr));
    let id = text(&connect.stdout).trim().to_owned();

    let sync = cli.run(&["-v", "sync"], None);
    assert!(sync.status.success(), "{}", text(&sync.stderr));
    let summary: Value = serde_json::from_slice(&sync.stdout).expect("sync prints JSON");
    assert_eq!(summary["status"], "completed");

    let json = cli.run(
        &[
            "report",
            "--integration",
            &id,
            "--format",
            "json",
            "--inactive-days",
            "30",
        ],
        None,
    );
    assert!(json.status.success(), "{}", text(&json.stderr));
    let report: Value = serde_json::from_slice(&json.stdout).expect("report is JSON");
    assert_eq!(report["integration"]["id"], id.as_str());
    assert_eq!(report["inactive_days"], 30);
    assert_eq!(report["seats"]["purchased"], 400);
    for lt in report["license_types"].as_array().expect("license types") {
        assert_eq!(
            lt["active"].as_u64().unwrap() + lt["inactive"].as_u64().unwrap(),
            lt["assigned"].as_u64().unwrap()
        );
    }
    let accounts = report["accounts"].as_array().expect("accounts");
    assert_eq!(
        accounts.len(),
        300 + 1 + 1,
        "managed users, an app user and the service account"
    );
    for key in [
        "id",
        "login",
        "name",
        "kind",
        "status",
        "role",
        "license_type",
        "last_login_at",
        "created_at",
        "space_amount_bytes",
        "space_used_bytes",
        "max_upload_size_bytes",
        "is_sync_enabled",
        "is_exempt_from_device_limits",
    ] {
        assert!(accounts[0].get(key).is_some(), "accounts carry {key}");
    }

    let csv = cli.run(&["report", "--format", "csv"], None);
    let csv = text(&csv.stdout);
    assert!(csv.starts_with("id,login,name,kind,status,role,license_type,last_login_at"));
    assert_eq!(csv.lines().count(), 1 + 302);

    let tasks = cli.run(&["tasks"], None);
    let tasks = text(&tasks.stdout);
    for kind in [
        "application_roster",
        "application_access",
        "license_differentiation",
        "license_information",
    ] {
        assert!(tasks.contains(kind), "{tasks}");
    }
    assert!(
        tasks.contains("succeeded") && tasks.contains("accounts_read=302"),
        "{tasks}"
    );

    let table = cli.run(&["report"], None);
    assert!(
        text(&table.stdout).contains("Business"),
        "{}",
        text(&table.stdout)
    );

    // The secret is nowhere but in the 0600 secrets file.
    let secret = sim.client_secret();
    for out in [&connect, &sync, &json, &table] {
        assert!(!text(&out.stdout).contains(&secret) && !text(&out.stderr).contains(&secret));
    }
    let store = std::fs::read(cli.dir.path().join("store.redb")).expect("store file");
    assert!(
        !String::from_utf8_lossy(&store).contains(&secret),
        "no secret in the store"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(cli.dir.path().join("secrets.json"))
            .expect("secrets file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_runs_the_first_sync_unless_told_not_to() {
    let sim = sim(40).await;
    let cli = Cli::new(Some(&sim));
    let mut args = connect_args(&sim);
    args.push("--no-sync".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let connect = cli.run(&args, Some(&sim.client_secret()));
    assert!(connect.status.success(), "{}", text(&connect.stderr));
    let report = cli.run(&["report"], None);
    assert!(!report.status.success(), "no sync yet, so no report");
    assert!(
        text(&report.stderr).contains("no completed sync yet"),
        "{}",
        text(&report.stderr)
    );

    let other = sim_with_seed(18, 25).await;
    let cli = Cli::new(Some(&other));
    let args = connect_args(&other);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let connect = cli.run(&args, Some(&other.client_secret()));
    assert!(connect.status.success(), "{}", text(&connect.stderr));
    assert!(
        text(&connect.stderr).contains("First sync done: 27 accounts"),
        "{}",
        text(&connect.stderr)
    );
    let report = cli.run(&["report", "--format", "json"], None);
    assert!(report.status.success(), "{}", text(&report.stderr));
    let report: Value = serde_json::from_slice(&report.stdout).expect("JSON report");
    assert_eq!(report["seats"]["assigned"], 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_exit_non_zero_with_a_clear_message() {
    let sim = sim(10).await;
    let cli = Cli::new(Some(&sim));
    let args = connect_args(&sim);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli.run(&args, Some("wrong-secret"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!err.contains("wrong-secret"));
    let list = cli.run(&["integrations"], None);
    assert!(text(&list.stdout).contains("No integrations yet"));
}

#[test]
fn a_missing_secret_variable_is_named() {
    let cli = Cli::new(None);
    let out = cli.run(
        &[
            "connect",
            "box",
            "--client-id",
            "abc",
            "--client-secret-env",
            "NOT_SET_ANYWHERE",
            "--enterprise-id",
            "1",
            "--plan",
            "business",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("NOT_SET_ANYWHERE is not set"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_plan_or_integration_is_a_clear_error() {
    let cli = Cli::new(None);
    let out = cli.run(&["report", "--integration", "nope"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("integration nope not found"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run(&["report"], None);
    assert!(
        text(&out.stderr).contains("no integration yet"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run(&["report", "--inactive-days", "0"], None);
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args([
            "connect",
            "box",
            "--client-id",
            "a",
            "--client-secret-env",
            "PATH",
            "--enterprise-id",
            "1",
            "--plan",
            "gold",
        ])
        .env("SEATKEEPER_DATA_DIR", cli.dir.path())
        .output()
        .expect("runs");
    assert!(
        text(&out.stderr).contains("plan: must be one of"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_demo_prints_a_license_report() {
    let cli = Cli::new(None);
    let out = cli.run(&["demo", "--users", "150", "--format", "json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["license_types"][0]["name"], "Business Plus");
    assert_eq!(report["license_types"][0]["assigned"], 150);
    assert!(report["event_coverage"]["from"].is_string());
}
