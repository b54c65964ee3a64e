//! Connecting a Box tenant: every refusal is clear and leaves nothing behind.

mod support;

use seatkeeper_shared::domain::Provider;
use seatkeeper_shared::services::connect::ConnectError;
use seatkeeper_sim::BoxSimConfig;
use secrecy::SecretString;
use support::{Local, start_sim, tenant};

/// Nothing stored: no integration, no tenant claim, no secret file entries.
async fn assert_nothing_stored(local: &Local, enterprise_id: &str) {
    assert!(
        local
            .store
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        local
            .store
            .tenant_owner(Provider::Box, enterprise_id)
            .await
            .expect("claim"),
        None
    );
    let secrets =
        std::fs::read_to_string(local.dir.path().join("secrets.json")).unwrap_or_default();
    assert!(
        !secrets.contains("seatkeeper/integrations/"),
        "no secret stored: {secrets}"
    );
}

#[tokio::test]
async fn a_healthy_app_connects_and_its_secret_is_stored_apart() {
    let sim = start_sim(BoxSimConfig::new(tenant(1, 20))).await;
    let local = Local::new(&sim);
    let integration = local
        .connect(Local::connect_request(&sim))
        .await
        .expect("connects");
    assert_eq!(integration.tenant_id, sim.enterprise_id());
    assert_eq!(integration.service_user_id, Some(sim.service_account_id()));
    let stored = local
        .store
        .get_integration(&integration.id)
        .await
        .expect("get")
        .expect("stored");
    let as_json = serde_json::to_string(&stored).expect("json");
    assert!(
        !as_json.contains(&sim.client_secret()),
        "the integration item holds no secret"
    );
    let secret = local
        .secrets
        .get(&integration.secret_name)
        .await
        .expect("get")
        .expect("secret stored");
    assert!(secrecy::ExposeSecret::expose_secret(&secret).contains(&sim.client_secret()));
    assert!(
        !format!("{secret:?}").contains(&sim.client_secret()),
        "secrets print redacted"
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_nothing_is_stored() {
    let sim = start_sim(BoxSimConfig::new(tenant(1, 20))).await;
    let local = Local::new(&sim);
    let mut request = Local::connect_request(&sim);
    request.client_secret = SecretString::from("not-the-secret".to_owned());
    let err = local.connect(request).await.expect_err("refused");
    assert!(
        matches!(&err, ConnectError::Credentials { code, .. } if code == "invalid_client"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret"));
    assert_nothing_stored(&local, &sim.enterprise_id()).await;
}

#[tokio::test]
async fn an_app_the_admin_has_not_authorized_is_refused() {
    let mut config = BoxSimConfig::new(tenant(1, 20));
    config.app_authorized = false;
    let sim = start_sim(config).await;
    let local = Local::new(&sim);
    let err = local
        .connect(Local::connect_request(&sim))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ConnectError::Credentials { code, .. } if code == "unauthorized_client"),
        "{err}"
    );
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert_nothing_stored(&local, &sim.enterprise_id()).await;
}

#[tokio::test]
async fn an_app_without_enterprise_access_is_refused_naming_what_is_missing() {
    let mut config = BoxSimConfig::new(tenant(1, 20));
    config.app_has_enterprise_access = false;
    let sim = start_sim(config).await;
    let local = Local::new(&sim);
    let err = local
        .connect(Local::connect_request(&sim))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ConnectError::MissingCapability { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("App + Enterprise Access"), "{err}");
    assert_nothing_stored(&local, &sim.enterprise_id()).await;
}

#[tokio::test]
async fn an_app_that_cannot_read_enterprise_events_is_refused() {
    let mut config = BoxSimConfig::new(tenant(1, 20));
    config.app_can_read_events = false;
    let sim = start_sim(config).await;
    let local = Local::new(&sim);
    let err = local
        .connect(Local::connect_request(&sim))
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("Manage enterprise properties"),
        "{err}"
    );
    assert_nothing_stored(&local, &sim.enterprise_id()).await;
}

#[tokio::test]
async fn credentials_of_another_enterprise_are_refused() {
    let sim = start_sim(BoxSimConfig::new(tenant(1, 20))).await;
    let local = Local::new(&sim);
    let mut request = Local::connect_request(&sim);
    request.enterprise_id = "999".to_owned();
    let err = local.connect(request).await.expect_err("refused");
    assert!(
        matches!(
            err,
            ConnectError::Credentials { .. } | ConnectError::WrongEnterprise { .. }
        ),
        "{err}"
    );
    assert_nothing_stored(&local, "999").await;
}

#[tokio::test]
async fn a_second_integration_for_the_same_enterprise_is_refused() {
    let sim = start_sim(BoxSimConfig::new(tenant(1, 20))).await;
    let local = Local::new(&sim);
    let first = local
        .connect(Local::connect_request(&sim))
        .await
        .expect("first connects");
    let err = local
        .connect(Local::connect_request(&sim))
        .await
        .expect_err("second refused");
    assert!(
        matches!(&err, ConnectError::TenantClaimed { integration_id, .. } if *integration_id == first.id.to_string()),
        "{err}"
    );
    assert_eq!(
        local.store.list_integrations().await.expect("list").len(),
        1
    );
}

#[tokio::test]
async fn malformed_input_is_refused_before_box_is_asked() {
    let sim = start_sim(BoxSimConfig::new(tenant(1, 20))).await;
    let local = Local::new(&sim);
    let mut request = Local::connect_request(&sim);
    request.enterprise_id = "12ab".to_owned();
    let err = local.connect(request).await.expect_err("refused");
    assert!(err.to_string().starts_with("enterprise_id:"), "{err}");
    assert_eq!(sim.stats().total, 0);
}
