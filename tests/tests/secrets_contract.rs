//! The `Secrets` contract, run against the local file (0600) and Secrets Manager (moto).

use aws_config::retry::RetryConfig;
use seatkeeper_shared::domain::Provider;
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::secrets::{
    IntegrationCredentials, OAuthAppCredentials, Secrets, SecretsError,
};
use seatkeeper_tests::{Moto, aws_config, error_chain, secrets_client, secrets_manager};
use secrecy::{ExposeSecret, SecretString};
use std::sync::LazyLock;
use std::time::Duration;

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

/// An adapter under test, plus whatever must live as long as it (the temporary directory).
struct Fixture {
    secrets: Box<dyn Secrets>,
    _dir: Option<tempfile::TempDir>,
}

async fn file_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = FileSecrets::new(dir.path().join("nested").join("secrets.json"));
    Fixture {
        secrets: Box::new(secrets),
        _dir: Some(dir),
    }
}

async fn secrets_manager_fixture() -> Fixture {
    Fixture {
        secrets: Box::new(secrets_manager(&MOTO).await),
        _dir: None,
    }
}

/// Names are unique per test: every Secrets Manager case shares one emulator.
fn name(label: &str) -> String {
    format!("seatkeeper/test/{label}-{}", uuid::Uuid::new_v4())
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

async fn value_of(secrets: &dyn Secrets, name: &str) -> Option<String> {
    secrets
        .get(name)
        .await
        .expect("get")
        .map(|v| v.expose_secret().to_owned())
}

macro_rules! secrets_contract_tests {
    ($adapter:ident, $make:expr) => {
        mod $adapter {
            use super::*;
            secrets_contract_tests!(@case $make,
                missing_secret_is_none,
                stored_secret_is_read_back,
                storing_again_overwrites,
                deleted_secret_is_gone,
                deleting_a_missing_secret_is_fine,
                deleted_secret_can_be_stored_again,
                secrets_are_independent,
                integration_credentials_round_trip,
                fresh_read_sees_the_latest_write,
                oauth_app_credentials_load,
            );
        }
    };
    (@case $make:expr, $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = ($make)().await;
                super::cases::$case(fixture.secrets.as_ref()).await;
            }
        )*
    };
}

secrets_contract_tests!(file, file_fixture);
secrets_contract_tests!(secrets_manager, secrets_manager_fixture);

mod cases {
    use super::*;

    pub async fn missing_secret_is_none(secrets: &dyn Secrets) {
        assert_eq!(value_of(secrets, &name("missing")).await, None);
    }

    pub async fn stored_secret_is_read_back(secrets: &dyn Secrets) {
        let n = name("stored");
        secrets
            .put(
                &n,
                secret(r#"{"client_id":"abc","client_secret":"s3cr3t"}"#),
            )
            .await
            .expect("put");
        assert_eq!(
            value_of(secrets, &n).await.as_deref(),
            Some(r#"{"client_id":"abc","client_secret":"s3cr3t"}"#)
        );
    }

    pub async fn storing_again_overwrites(secrets: &dyn Secrets) {
        let n = name("rotated");
        secrets.put(&n, secret("refresh-1")).await.expect("put");
        secrets
            .put(&n, secret("refresh-2"))
            .await
            .expect("put again");
        assert_eq!(value_of(secrets, &n).await.as_deref(), Some("refresh-2"));
    }

    pub async fn deleted_secret_is_gone(secrets: &dyn Secrets) {
        let n = name("deleted");
        secrets.put(&n, secret("value")).await.expect("put");
        secrets.delete(&n).await.expect("delete");
        assert_eq!(value_of(secrets, &n).await, None);
        secrets.delete(&n).await.expect("deleting twice is fine");
    }

    pub async fn deleting_a_missing_secret_is_fine(secrets: &dyn Secrets) {
        secrets.delete(&name("never-there")).await.expect("delete");
    }

    pub async fn deleted_secret_can_be_stored_again(secrets: &dyn Secrets) {
        // A disconnected integration reconnected: the same secret name comes back.
        let n = name("reconnected");
        secrets.put(&n, secret("old")).await.expect("put");
        secrets.delete(&n).await.expect("delete");
        secrets
            .put(&n, secret("new"))
            .await
            .expect("put after delete");
        assert_eq!(value_of(secrets, &n).await.as_deref(), Some("new"));
    }

    pub async fn secrets_are_independent(secrets: &dyn Secrets) {
        let a = name("a");
        let b = name("b");
        secrets.put(&a, secret("value-a")).await.expect("put a");
        secrets.put(&b, secret("value-b")).await.expect("put b");
        secrets.delete(&a).await.expect("delete a");
        assert_eq!(value_of(secrets, &a).await, None);
        assert_eq!(value_of(secrets, &b).await.as_deref(), Some("value-b"));
    }

    pub async fn integration_credentials_round_trip(secrets: &dyn Secrets) {
        let n = name("credentials");
        let mut credentials =
            IntegrationCredentials::client_credentials("client-1", secret("client-secret"));
        credentials.refresh_token = Some(secret("refresh"));
        credentials.save(secrets, &n).await.expect("save");
        let loaded = IntegrationCredentials::load(secrets, &n)
            .await
            .expect("load");
        assert_eq!(loaded.client_id, "client-1");
        assert_eq!(
            loaded.client_secret.as_ref().map(|s| s.expose_secret()),
            Some("client-secret")
        );
        assert_eq!(
            loaded.refresh_token.as_ref().map(|s| s.expose_secret()),
            Some("refresh")
        );
        assert!(loaded.access_token.is_none());
        assert!(!format!("{loaded:?}").contains("client-secret"));
    }

    pub async fn fresh_read_sees_the_latest_write(secrets: &dyn Secrets) {
        let n = name("fresh");
        assert!(secrets.get_fresh(&n).await.expect("get_fresh").is_none());
        secrets.put(&n, secret("v1")).await.expect("put");
        secrets.put(&n, secret("v2")).await.expect("put again");
        let fresh = secrets.get_fresh(&n).await.expect("get_fresh");
        assert_eq!(fresh.as_ref().map(|v| v.expose_secret()), Some("v2"));
        let loaded = IntegrationCredentials::load_fresh(secrets, &n).await;
        assert!(
            matches!(loaded, Err(SecretsError::Malformed(ref m)) if *m == n),
            "not JSON: {loaded:?}"
        );
        secrets.delete(&n).await.expect("delete");
        assert!(secrets.get_fresh(&n).await.expect("get_fresh").is_none());
    }

    pub async fn oauth_app_credentials_load(secrets: &dyn Secrets) {
        // One app secret per provider: a fixed name, so its tests all write the same value.
        let n = OAuthAppCredentials::secret_name(Provider::Box);
        assert_eq!(n, "seatkeeper/apps/box");
        assert_eq!(
            OAuthAppCredentials::secret_name(Provider::Salesforce),
            "seatkeeper/apps/salesforce"
        );
        secrets
            .put(
                &n,
                secret(r#"{"client_id":"app-id","client_secret":"app-secret-9c1"}"#),
            )
            .await
            .expect("put");
        let app = OAuthAppCredentials::load(secrets, Provider::Box)
            .await
            .expect("load");
        assert_eq!(app.client_id, "app-id");
        assert_eq!(app.client_secret.expose_secret(), "app-secret-9c1");
        assert!(!format!("{app:?}").contains("app-secret-9c1"));

        for bad in [
            r#"{"client_id":"","client_secret":"s"}"#,
            r#"{"client_id":"app-id"}"#,
            "not json",
        ] {
            secrets.put(&n, secret(bad)).await.expect("put");
            let loaded = OAuthAppCredentials::load(secrets, Provider::Box).await;
            assert!(
                matches!(loaded, Err(SecretsError::Malformed(ref m)) if *m == n),
                "{bad}: {loaded:?}"
            );
        }

        let missing = OAuthAppCredentials::load(secrets, Provider::Salesforce).await;
        assert!(
            matches!(missing, Err(SecretsError::NotFound(ref m)) if m == "seatkeeper/apps/salesforce"),
            "{missing:?}"
        );
    }
}

// The local file ------------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn secrets_file_is_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data").join("secrets.json");
    let secrets = FileSecrets::new(&path);
    secrets.put("a", secret("one")).await.expect("put");
    secrets.put("b", secret("two")).await.expect("put");
    secrets.delete("a").await.expect("delete");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode was {:o}", mode & 0o777);
    // Atomic replacement leaves no temporary files beside it.
    let entries: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("read dir")
        .collect();
    assert_eq!(entries.len(), 1);
}

#[tokio::test]
async fn secrets_file_is_shared_by_instances_on_the_same_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secrets.json");
    FileSecrets::new(&path)
        .put("k", secret("v"))
        .await
        .expect("put");
    assert_eq!(
        value_of(&FileSecrets::new(&path), "k").await.as_deref(),
        Some("v")
    );
}

// Secrets Manager ------------------------------------------------------------------------

#[tokio::test]
async fn secrets_manager_serves_a_read_value_from_memory_until_the_ttl_passes() {
    let n = name("cached");
    let reader = SecretsManagerSecrets::new(secrets_client(&MOTO).await)
        .with_cache_ttl(Duration::from_millis(500));
    let other_container = SecretsManagerSecrets::new(secrets_client(&MOTO).await);
    other_container.put(&n, secret("v1")).await.expect("put");
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v1"));

    other_container.put(&n, secret("v2")).await.expect("put");
    assert_eq!(
        value_of(&reader, &n).await.as_deref(),
        Some("v1"),
        "read again within the TTL: from memory"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn secrets_manager_cache_follows_its_own_writes_and_deletes() {
    let n = name("own-writes");
    let secrets = SecretsManagerSecrets::new(secrets_client(&MOTO).await)
        .with_cache_ttl(Duration::from_secs(60));
    secrets.put(&n, secret("v1")).await.expect("put");
    assert_eq!(value_of(&secrets, &n).await.as_deref(), Some("v1"));
    secrets.put(&n, secret("v2")).await.expect("put");
    assert_eq!(value_of(&secrets, &n).await.as_deref(), Some("v2"));
    secrets.delete(&n).await.expect("delete");
    assert_eq!(value_of(&secrets, &n).await, None);
}

#[tokio::test]
async fn secrets_manager_fresh_read_bypasses_the_cache_and_refreshes_it() {
    let n = name("fresh-read");
    let reader = SecretsManagerSecrets::new(secrets_client(&MOTO).await)
        .with_cache_ttl(Duration::from_secs(60));
    let other_container = secrets_manager(&MOTO).await;
    other_container.put(&n, secret("v1")).await.expect("put");
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v1"));
    other_container.put(&n, secret("v2")).await.expect("put");
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v1"), "cached");
    let fresh = reader.get_fresh(&n).await.expect("get_fresh");
    assert_eq!(fresh.as_ref().map(|v| v.expose_secret()), Some("v2"));
    assert_eq!(
        value_of(&reader, &n).await.as_deref(),
        Some("v2"),
        "the fresh read replaced the cached value"
    );
    other_container.delete(&n).await.expect("delete");
    assert!(reader.get_fresh(&n).await.expect("get_fresh").is_none());
    assert_eq!(value_of(&reader, &n).await, None, "the cache forgot it");
}

#[tokio::test]
async fn secrets_file_fresh_read_sees_another_instance_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secrets.json");
    let (reader, writer) = (FileSecrets::new(&path), FileSecrets::new(&path));
    writer.put("k", secret("v1")).await.expect("put");
    assert_eq!(value_of(&reader, "k").await.as_deref(), Some("v1"));
    writer.put("k", secret("v2")).await.expect("put");
    let fresh = reader.get_fresh("k").await.expect("get_fresh");
    assert_eq!(fresh.as_ref().map(|v| v.expose_secret()), Some("v2"));
}

#[tokio::test]
async fn secrets_manager_without_cache_reads_every_time() {
    let n = name("uncached");
    let reader =
        SecretsManagerSecrets::new(secrets_client(&MOTO).await).with_cache_ttl(Duration::ZERO);
    let writer = secrets_manager(&MOTO).await;
    writer.put(&n, secret("v1")).await.expect("put");
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v1"));
    writer.put(&n, secret("v2")).await.expect("put");
    assert_eq!(value_of(&reader, &n).await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn secrets_manager_errors_never_contain_the_value() {
    // Nothing listens on this port: the write fails after the request was built.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let shared = aws_config(&endpoint).await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&shared)
        .endpoint_url(&endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    let secrets = SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::from_conf(config));
    let value = "do-not-print-this-value-7f3a";
    let err = secrets
        .put("seatkeeper/integrations/acme", secret(value))
        .await
        .expect_err("nothing answers");
    let shown = format!("{err} | {err:?} | {}", error_chain(&err));
    assert!(shown.contains("seatkeeper/integrations/acme"), "{shown}");
    assert!(
        !shown.contains(value),
        "the error showed the value: {shown}"
    );
}
