//! `seatkeeper reclaim` as a user runs it: the real binary against a simulated Box tenant
//! with faults injected, checked against the simulator's ground truth (its users, its
//! write log, its owned-item count), never against what the command says it did.
//!
//! The tenant has 10 000 users (the acceptance size: 30 % inactive, 2 % of the quiet ones
//! still active in their own event stream); about 4 minutes on 2 cores in a debug build.
//! `SEATKEEPER_RECLAIM_USERS=N` picks another size.

use chrono::{DateTime, Duration, Utc};
use seatkeeper_shared::domain::IntegrationId;
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle, WriteKind};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Output};

const INACTIVE_DAYS: i64 = 90;
/// The policy's grace period (the integration's default is the same).
const GRACE_DAYS: i64 = 30;

struct Cli {
    dir: tempfile::TempDir,
    box_url: String,
    secret: String,
}

impl Cli {
    fn new(sim: &SimHandle) -> Self {
        Self {
            dir: tempfile::tempdir().expect("dir"),
            box_url: sim.base_url(),
            secret: sim.client_secret(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .args(args)
            .env("SEATKEEPER_DATA_DIR", self.dir.path())
            .env("SEATKEEPER_BOX_API_URL", &self.box_url)
            .env("TEST_BOX_SECRET", &self.secret)
            .env("RUST_LOG", "warn")
            .env("USER", "tester")
            .env_remove("SEATKEEPER_API_URL")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .output()
            .expect("seatkeeper runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "seatkeeper {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn users() -> usize {
    std::env::var("SEATKEEPER_RECLAIM_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Connects and syncs the tenant through the binary; returns the integration id.
fn connect(cli: &Cli, sim: &SimHandle, seats: usize) -> String {
    let seats = seats.to_string();
    let enterprise = sim.enterprise_id();
    let client_id = sim.client_id();
    let out = cli.ok(&[
        "connect",
        "box",
        "--client-id",
        &client_id,
        "--client-secret-env",
        "TEST_BOX_SECRET",
        "--enterprise-id",
        &enterprise,
        "--plan",
        "business",
        "--seats",
        &seats,
    ]);
    out.trim().to_owned()
}

fn assigned_seats(cli: &Cli, id: &str) -> u64 {
    let report: Value =
        serde_json::from_str(&cli.ok(&["report", "--integration", id, "--format", "json"]))
            .expect("report is JSON");
    report["seats"]["assigned"]
        .as_u64()
        .expect("assigned seats")
}

/// The accounts a delete job may act on, from the simulator's state alone (design §8): a
/// regular managed user (not admin, co-admin, app, service or external), not the transfer
/// target, created before the grace period, no LOGIN within `INACTIVE_DAYS` and no activity
/// in their own event stream within it.
fn eligible(sim: &SimHandle, transfer_to: &str, now: DateTime<Utc>) -> BTreeSet<String> {
    let inactive_since = now - Duration::days(INACTIVE_DAYS);
    let mut last_login: HashMap<String, DateTime<Utc>> = HashMap::new();
    for (user, at) in sim.login_events() {
        let seen = last_login.entry(user).or_insert(at);
        *seen = (*seen).max(at);
    }
    let service = sim.service_account_id();
    sim.users()
        .into_iter()
        .filter(|u| {
            let id = u["id"].as_str().unwrap_or_default();
            let login = u["login"].as_str().unwrap_or_default().to_lowercase();
            let created = u["created_at"]
                .as_str()
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|c| c.to_utc());
            u["is_platform_access_only"] == false
                && !login.starts_with("automationuser_")
                && u["role"] == "user"
                && id != service
                && id != transfer_to
                && created.is_some_and(|c| c + Duration::days(GRACE_DAYS) <= now)
                && last_login.get(id).is_none_or(|at| *at < inactive_since)
                && !sim
                    .user_events(id)
                    .iter()
                    .any(|(_, at)| *at >= inactive_since)
        })
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect()
}

/// The `reclaim_approved` audit entries: (approver, requester).
async fn approvals(cli: &Cli, id: &str) -> Vec<(String, String)> {
    let store = EmbeddedStore::open(cli.dir.path().join("store.redb")).expect("store opens");
    let id = IntegrationId::parse(id).expect("integration id");
    // Newest first, one entry per account acted on too: read the whole trail.
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_audit(&id, cursor.as_deref(), 1_000)
            .await
            .expect("audit");
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    entries
        .into_iter()
        .filter(|e| e.action == "reclaim_approved")
        .map(|e| {
            let requester = e.detail["requested_by"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (e.actor.principal(), requester)
        })
        .collect()
}

/// A regular user who logged in recently: fit to receive deleted users' content.
fn active_regular_user(sim: &SimHandle, now: DateTime<Utc>) -> String {
    let since = now - Duration::days(30);
    let recent: BTreeSet<String> = sim
        .login_events()
        .into_iter()
        .filter(|(_, at)| *at >= since)
        .map(|(user, _)| user)
        .collect();
    sim.users()
        .into_iter()
        .find(|u| {
            u["role"] == "user"
                && u["status"] == "active"
                && u["is_platform_access_only"] == false
                && u["id"].as_str().is_some_and(|id| recent.contains(id))
        })
        .and_then(|u| u["id"].as_str().map(str::to_owned))
        .expect("an active regular user")
}

/// The user id plan's capability check writes to: no such user exists, and Box's answer
/// (404 rather than 403) proves the app may manage users without changing anyone.
const PROBE_USER: &str = "0";

/// Every user write the simulator received was the capability probe: no user changed.
fn assert_no_user_changed(sim: &SimHandle, what: &str) {
    let writes = sim.user_writes();
    assert!(
        writes
            .iter()
            .all(|w| w.user_id == PROBE_USER && w.status == Some(404)),
        "{what} changed users: {writes:?}"
    );
}

/// Box misbehaving the ways it does: rate limits, 500s, dropped connections, transfers
/// that answer before they finish, writes whose response is lost.
fn faults() -> Faults {
    Faults {
        rate_limit_ratio: 0.02,
        retry_after_secs: 1,
        server_error_ratio: 0.02,
        drop_connection_ratio: 0.01,
        transfer_early_return_ratio: 0.1,
        transfer_completion_ms: 0,
        transfer_completion_requests: 3,
        write_lost_response_ratio: 0.02,
        seed: 7,
        ..Faults::default()
    }
}

/// `reclaim run --action delete --yes`, with `--max-actions` if given.
fn run_args<'a>(id: &'a str, target: &'a str, max: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "reclaim",
        "run",
        "--integration",
        id,
        "--action",
        "delete",
        "--transfer-to",
        target,
        "--retry-base-ms",
        "200",
        "--yes",
    ];
    if let Some(max) = max {
        args.extend(["--max-actions", max]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_run_acts_on_exactly_the_eligible_set_once_and_only_when_approved() {
    let users = users();
    let started = std::time::Instant::now();
    let sim = BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(23, users)))
        .await
        .expect("sim");
    let cli = Cli::new(&sim);
    let id = connect(&cli, &sim, users + 100);
    let now = Utc::now();
    let target = active_regular_user(&sim, now);
    let expected = eligible(&sim, &target, now);
    assert!(
        expected.len() > users / 5,
        "about 30 % of the tenant is inactive: {} of {users}",
        expected.len()
    );
    let seats_before = assigned_seats(&cli, &id);
    let all_users: BTreeSet<String> = sim
        .users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let items_before = sim.owned_items_total();
    eprintln!(
        "{users} users, {} eligible; connected and synced in {:?}",
        expected.len(),
        started.elapsed()
    );

    // The plan: exactly the eligible set, and it says the delete is permanent.
    let plan: Value = serde_json::from_str(&cli.ok(&[
        "reclaim",
        "plan",
        "--integration",
        &id,
        "--action",
        "delete",
        "--transfer-to",
        &target,
        "--format",
        "json",
    ]))
    .expect("plan is JSON");
    let planned: BTreeSet<String> = plan["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for skipped in plan["skipped"].as_array().expect("skipped") {
        *reasons
            .entry(skipped["reason"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    // Plan reads no one's own event stream (the run re-verifies each account right before
    // acting): its extra candidates are exactly the quiet users still active there.
    assert!(
        planned.is_superset(&expected),
        "missing from the plan: {:?} (skipped: {reasons:?})",
        expected.difference(&planned).collect::<Vec<_>>()
    );
    let own_stream_active: BTreeSet<String> = planned
        .difference(&expected)
        .filter(|id| {
            sim.user_events(id)
                .iter()
                .any(|(_, at)| *at >= now - Duration::days(INACTIVE_DAYS))
        })
        .cloned()
        .collect();
    assert_eq!(
        planned.len(),
        expected.len() + own_stream_active.len(),
        "every extra candidate is active in their own event stream"
    );
    assert_eq!(plan["summary"]["permanent"], true);
    assert_eq!(plan["summary"]["needs_approval"], true);
    let table = cli.ok(&[
        "reclaim",
        "plan",
        "--integration",
        &id,
        "--action",
        "delete",
        "--transfer-to",
        &target,
    ]);
    assert!(table.contains("Box delete is permanent"), "{table}");
    assert_no_user_changed(&sim, "a plan");

    sim.set_faults(faults());

    // Above the threshold, `--yes` alone approves nothing: the run stops and acts on nobody.
    let stopped = cli.run(&run_args(&id, &target, None));
    assert!(!stopped.status.success(), "{}", text(&stopped.stdout));
    let message = text(&stopped.stderr);
    assert!(
        message.contains("stopped before acting") && message.contains("--max-actions"),
        "{message}"
    );
    assert_no_user_changed(&sim, "a run stopped at the threshold");
    assert_eq!(sim.owned_items_total(), items_before);

    // With `--max-actions` at least the candidates: acted on, faults and all.
    let acting = std::time::Instant::now();
    let run = cli.run(&run_args(&id, &target, Some("5000")));
    let summary = text(&run.stdout);
    assert!(run.status.success(), "{summary}\n{}", text(&run.stderr));
    eprintln!("reclaim run took {:?}", acting.elapsed());
    sim.set_faults(Faults::default());

    let writes = sim.user_writes();
    assert!(writes.iter().all(|w| !w.force), "force is never sent");
    assert_eq!(sim.force_deletes(), 0);
    let touched: BTreeSet<String> = writes
        .iter()
        .filter(|w| w.user_id != PROBE_USER)
        .map(|w| w.user_id.clone())
        .collect();
    let outside: Vec<&String> = touched.difference(&expected).collect();
    assert!(
        outside.is_empty(),
        "written outside the eligible set: {outside:?}"
    );
    // Once each: a user can be deleted only once, so the users gone are the deletes that
    // took effect; a delete whose response was lost shows no status, and its retry a 404.
    // Per user, at most one delete answered 2xx, and none sent after it.
    let mut by_user: BTreeMap<&str, Vec<Option<u16>>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.kind == WriteKind::DeleteUser) {
        by_user
            .entry(w.user_id.as_str())
            .or_default()
            .push(w.status);
    }
    for (user, statuses) in &by_user {
        let ok = |s: &Option<u16>| s.is_some_and(|s| (200..300).contains(&s));
        let first_ok = statuses.iter().position(ok);
        assert!(
            first_ok.is_none_or(|i| i + 1 == statuses.len()),
            "user {user} deleted again after a successful delete: {statuses:?}"
        );
    }
    let remaining: BTreeSet<String> = sim
        .users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let gone: BTreeSet<String> = all_users.difference(&remaining).cloned().collect();
    assert_eq!(gone, expected, "exactly the eligible users are gone");
    assert_eq!(sim.owned_items_total(), items_before, "no content lost");
    assert_eq!(sim.items_destroyed(), 0);
    assert!(
        summary.contains(&format!("acted        {}", expected.len()))
            && summary.contains(&format!("seats freed  {}", expected.len())),
        "{summary}"
    );

    // The local approval is on record: `--max-actions` by the local user, tagged.
    let approvals = approvals(&cli, &id).await;
    assert_eq!(
        approvals,
        vec![(
            "local:tester/max-actions-5000".to_owned(),
            "local:tester".to_owned()
        )]
    );

    // The next report's assigned seats fall by the number deleted. The sync's guard refuses
    // a roster with more than 10 % of the known accounts missing; a 30 % delete job does not
    // trip it, because a delete marks its account gone at once.
    cli.ok(&["sync", "--integration", &id]);
    assert_eq!(
        assigned_seats(&cli, &id),
        seats_before - expected.len() as u64
    );
    eprintln!("whole test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_yes_is_a_dry_run_and_api_is_refused() {
    let sim = BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(5, 200)))
        .await
        .expect("sim");
    let cli = Cli::new(&sim);
    let id = connect(&cli, &sim, 300);
    let out = cli.run(&[
        "reclaim",
        "run",
        "--integration",
        &id,
        "--action",
        "deactivate",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Dry run"));
    assert!(text(&out.stdout).contains("Candidates ("));
    assert!(
        text(&out.stdout).contains("a deactivated Box user still holds a seat"),
        "{}",
        text(&out.stdout)
    );
    assert_no_user_changed(&sim, "a dry run");

    let csv = cli.ok(&["reclaim", "plan", "--integration", &id, "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("status,id,login,last_login_at,created_at,reason,detail")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|l| l.starts_with("candidate,")), "{csv}");
    assert!(
        rows.iter()
            .all(|l| l.starts_with("candidate,") || l.starts_with("skipped,")),
        "{csv}"
    );

    // Delete without a transfer target is refused before anything starts.
    let refused = cli.run(&[
        "reclaim",
        "run",
        "--integration",
        &id,
        "--action",
        "delete",
        "--yes",
        "--max-actions",
        "10",
    ]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("transfer_to"));

    let remote = cli.run(&[
        "--api",
        "http://127.0.0.1:9",
        "reclaim",
        "plan",
        "--integration",
        &id,
    ]);
    assert!(!remote.status.success());
    assert!(text(&remote.stderr).contains("cannot be used with --api"));
    assert_no_user_changed(&sim, "a refused run");
}
