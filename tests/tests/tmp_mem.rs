use seatkeeper_shared::domain::*;
use seatkeeper_shared::store::{Store, embedded::EmbeddedStore};
fn rss() -> i64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss / 1024
}
fn acc(n: usize) -> Account {
    Account {
        external_id: format!("{n:09}"),
        login: format!("user{n}@example.com"),
        name: format!("User Number {n}"),
        kind: AccountKind::Human,
        status: "active".into(),
        role: Some("user".into()),
        license_type: Some("Business".into()),
        last_login_at: Some(chrono::Utc::now()),
        created_at: Some(chrono::Utc::now()),
        modified_at: Some(chrono::Utc::now()),
        space_amount_bytes: Some(1),
        space_used_bytes: Some(2),
        max_upload_size_bytes: Some(3),
        is_sync_enabled: Some(true),
        is_exempt_from_device_limits: Some(false),
        attributes: [("job_title".to_string(), "Engineer".to_string())].into(),
        vanished_at: None,
    }
}
#[tokio::test]
async fn mem() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path().join("x/db.redb")).unwrap();
    let id = IntegrationId::parse("acme").unwrap();
    let t = std::time::Instant::now();
    for b in 0..100 {
        let v: Vec<_> = (b * 1000..(b + 1) * 1000).map(acc).collect();
        s.put_accounts(&id, &v).await.unwrap();
    }
    eprintln!("batched 1000: {:?} rss {} MiB", t.elapsed(), rss());
    let t = std::time::Instant::now();
    let mut cur = None;
    let mut n = 0;
    loop {
        let p = s.list_accounts(&id, cur.as_deref(), 1000).await.unwrap();
        n += p.items.len();
        match p.next {
            Some(c) => cur = Some(c),
            None => break,
        }
    }
    eprintln!("listed {n}: {:?} rss {} MiB", t.elapsed(), rss());
    let t = std::time::Instant::now();
    let v: Vec<_> = (0..100_000)
        .map(|n| {
            let mut a = acc(n);
            a.status = "inactive".into();
            a
        })
        .collect();
    s.put_accounts(&id, &v).await.unwrap();
    drop(v);
    eprintln!("one txn 100k: {:?} rss {} MiB", t.elapsed(), rss());
    eprintln!(
        "file size {} MiB",
        std::fs::metadata(dir.path().join("x/db.redb"))
            .unwrap()
            .len()
            / 1048576
    );
}
