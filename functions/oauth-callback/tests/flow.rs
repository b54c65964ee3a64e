//! The OAuth connect routes end to end: API Gateway HTTP API v2 events through the router,
//! the Box simulator's authorize page and token endpoint over real HTTP, the embedded store
//! and file secrets. Every refusal ends in a 4xx page with nothing stored.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use seatkeeper_shared::domain::{
    Actor, AuthKind, Integration, IntegrationId, IntegrationStatus, Provider, ReclaimGuardRails,
    SyncSettings,
};
use seatkeeper_shared::services::connect::{BoxCcgConnect, Connector};
use seatkeeper_shared::services::oauth_connect::{
    OAuthConnectError, OAuthTicketRequest, issue_ticket,
};
use secrecy::{ExposeSecret, SecretString};
use support::{BASE, CALLBACK, COOKIE, Harness, new_box_request, requester, sim_config, started};

async fn only_integration(h: &Harness) -> Integration {
    let all = h.store.list_integrations().await.expect("list");
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().expect("one")
}

/// The bytes of the embedded store file, to prove a value was never stored.
fn store_bytes(h: &Harness) -> Vec<u8> {
    std::fs::read(h.store_path()).expect("store file")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_full_box_oauth_connect_creates_a_connected_integration() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;

    // Start: a Host header naming another site changes nothing in the redirect.
    let reply = h
        .send_event(support::event(
            "GET",
            "/oauth/box/start",
            &format!("ticket={}", ticket.expose_secret()),
            &[],
            "attacker.example",
        ))
        .await;
    let start = started(&reply);
    let url = &start.authorize_url;
    assert_eq!(
        format!("{}{}", url.origin().ascii_serialization(), url.path()),
        h.sim.authorize_url()
    );
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("client_id"), Some(h.sim.client_id()));
    assert_eq!(param("redirect_uri").as_deref(), Some(CALLBACK));
    assert_eq!(
        param("scope").as_deref(),
        Some("manage_managed_users manage_groups manage_enterprise_properties root_readwrite")
    );
    assert_eq!(param("code_challenge"), None, "Box documents no PKCE");
    assert!(
        start.state.len() >= 22,
        "at least 128 bits: {}",
        start.state
    );
    assert_ne!(start.state, ticket.expose_secret());
    // The binding cookie: HttpOnly, Secure, SameSite=Lax, only for the OAuth routes, as
    // long as the state lives.
    let attributes: Vec<&str> = start.set_cookie.split("; ").collect();
    assert!(attributes[0].starts_with(&format!("{COOKIE}=")));
    let nonce = attributes[0].trim_start_matches(&format!("{COOKIE}="));
    assert!(nonce.len() >= 22);
    for wanted in [
        "Path=/oauth/",
        "Max-Age=600",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ] {
        assert!(
            attributes.contains(&wanted),
            "{wanted} in {}",
            start.set_cookie
        );
    }

    let back = h.authorize(&start, "approve").await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let reply = h.callback(&back, std::slice::from_ref(&start.cookie)).await;
    reply.assert_callback_page(200);
    assert!(reply.body.contains("Connected"), "{}", reply.body);
    // The integration's name is escaped, not interpreted.
    assert!(
        reply.body.contains("Acme &lt;Box&gt; &amp; Co"),
        "{}",
        reply.body
    );

    let integration = only_integration(&h).await;
    assert_eq!(integration.provider, Provider::Box);
    assert_eq!(integration.auth_kind, AuthKind::OAuth);
    assert_eq!(integration.status, IntegrationStatus::Connected);
    assert_eq!(integration.tenant_id, h.sim.enterprise_id());
    assert_eq!(integration.name, "Acme <Box> & Co");
    assert_eq!(integration.purchased_seats, Some(50));
    assert_eq!(
        integration.plan,
        Some(seatkeeper_shared::domain::BoxPlan::BusinessPlus)
    );
    assert_eq!(
        integration.service_user_id.as_deref(),
        Some(h.sim.admin_user_id().as_str()),
        "the admin who authorised is the integration's own user"
    );
    assert_eq!(
        h.store
            .tenant_owner(Provider::Box, &h.sim.enterprise_id())
            .await
            .unwrap(),
        Some(integration.id.clone())
    );
    let creds = h.credentials(&integration).await;
    let refresh = creds.refresh_token.clone().expect("refresh token");
    let access = creds.access_token.clone().expect("access token");
    assert!(!refresh.expose_secret().is_empty() && !access.expose_secret().is_empty());
    assert!(creds.access_token_expires_at.is_some());
    assert!(creds.client_secret.is_none());
    assert_eq!(creds.client_id, h.sim.client_id());
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 1);

    let syncs = h.trigger.requests();
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0].integration_id, integration.id);
    assert!(syncs[0].checkpoint.is_none());

    let audit = h
        .store
        .list_audit(&integration.id, None, 10)
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].action, "integration_connected");
    assert_eq!(audit.items[0].actor, requester());

    // No bearer value or token reached the store, and none is echoed.
    let bytes = store_bytes(&h);
    for value in [
        ticket.expose_secret(),
        start.state.as_str(),
        nonce,
        code.as_str(),
        refresh.expose_secret(),
        access.expose_secret(),
    ] {
        assert!(!contains(&bytes, value), "a secret value is in the store");
        assert!(!reply.body.contains(value), "a secret value is in the page");
    }
}

#[tokio::test]
async fn start_without_a_ticket_is_refused() {
    let h = Harness::new().await;
    for query in ["", "ticket=", "other=1", "ticket=not%20a%20ticket"] {
        let reply = h.get("/oauth/box/start", query, &[]).await;
        reply.assert_page(400);
        assert!(reply.header("location").is_none());
        assert!(reply.set_cookies().is_empty(), "{query}");
    }
    let unknown = h
        .get(
            "/oauth/box/start",
            "ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &[],
        )
        .await;
    unknown.assert_page(400);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_ticket_is_single_use() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    let _first = h.start(&ticket).await;
    let again = h
        .get(
            "/oauth/box/start",
            &format!("ticket={}", ticket.expose_secret()),
            &[],
        )
        .await;
    again.assert_page(400);
    assert!(again.body.contains("already used"), "{}", again.body);
    assert!(again.header("location").is_none());
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn an_expired_ticket_is_refused() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    h.clock
        .advance(TimeDelta::minutes(10) + TimeDelta::seconds(1));
    let reply = h
        .get(
            "/oauth/box/start",
            &format!("ticket={}", ticket.expose_secret()),
            &[],
        )
        .await;
    reply.assert_page(400);
    assert!(reply.body.contains("expired"), "{}", reply.body);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_box_ticket_cannot_start_another_provider_and_is_spent_trying() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    let query = format!("ticket={}", ticket.expose_secret());
    let reply = h.get("/oauth/salesforce/start", &query, &[]).await;
    reply.assert_page(400);
    let retry = h.get("/oauth/box/start", &query, &[]).await;
    retry.assert_page(400);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_head_request_does_not_spend_the_ticket() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    let query = format!("ticket={}", ticket.expose_secret());
    let head = h
        .send_event(support::event(
            "HEAD",
            "/oauth/box/start",
            &query,
            &[],
            "seatkeeper.example.test",
        ))
        .await;
    assert_eq!(head.status, 405);
    head.assert_security_headers();
    let _still_good = h.start(&ticket).await;
}

#[tokio::test]
async fn replayed_oauth_state_is_rejected() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    let start = h.start(&ticket).await;
    let back = h.authorize(&start, "approve").await;
    let cookies = [start.cookie.clone()];
    h.callback(&back, &cookies).await.assert_callback_page(200);
    let integration = only_integration(&h).await;
    let secret_names = h.secret_names();

    let replay = h.callback(&back, &cookies).await;
    replay.assert_callback_page(400);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert_eq!(only_integration(&h).await, integration);
    assert_eq!(h.secret_names(), secret_names);
    assert_eq!(h.trigger.requests().len(), 1, "one sync, not two");
    assert_eq!(
        h.sim.oauth_stats().authorization_code_grants,
        1,
        "the replayed code was never sent to Box"
    );
}

#[tokio::test]
async fn an_expired_state_is_rejected_before_any_exchange() {
    let h = Harness::new().await;
    let ticket = h.ticket(new_box_request()).await;
    let start = h.start(&ticket).await;
    let back = h.authorize(&start, "approve").await;
    h.clock
        .advance(TimeDelta::minutes(10) + TimeDelta::seconds(1));
    let reply = h.callback(&back, std::slice::from_ref(&start.cookie)).await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("took too long"), "{}", reply.body);
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 0);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_state_from_another_browser_is_rejected() {
    let h = Harness::new().await;
    // The victim's flow, completed in the attacker's browser (no cookie, or its own).
    let attacker = h.start(&h.ticket(new_box_request()).await).await;
    for cookies in [
        vec![],
        vec![attacker.cookie.clone()],
        vec![format!(
            "{COOKIE}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )],
        vec![format!(
            "seatkeeper-oauth={}",
            attacker.cookie.split('=').nth(1).unwrap()
        )],
    ] {
        let victim = h.start(&h.ticket(new_box_request()).await).await;
        let back = h.authorize(&victim, "approve").await;
        let reply = h.callback(&back, &cookies).await;
        reply.assert_callback_page(400);
        assert!(
            reply.body.contains("another browser"),
            "{cookies:?}: {}",
            reply.body
        );
        // And the state is spent: the right browser cannot use it afterwards either.
        let late = h
            .callback(&back, std::slice::from_ref(&victim.cookie))
            .await;
        late.assert_callback_page(400);
    }
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 0);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_state_issued_for_another_provider_is_rejected() {
    let h = Harness::new().await;
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let back = h.authorize(&start, "approve").await;
    // Box's answer delivered to another provider's redirect URI (a mix-up attack).
    let reply = h
        .get(
            "/oauth/salesforce/callback",
            back.query().unwrap(),
            std::slice::from_ref(&start.cookie),
        )
        .await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("another provider"), "{}", reply.body);
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 0);
    // Spent: not usable at the right callback afterwards.
    h.callback(&back, std::slice::from_ref(&start.cookie))
        .await
        .assert_callback_page(400);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_denied_authorization_stores_nothing() {
    let h = Harness::new().await;
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let back = h.authorize(&start, "deny").await;
    assert!(back.query().unwrap().contains("error=access_denied"));
    let reply = h.callback(&back, std::slice::from_ref(&start.cookie)).await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("not granted"), "{}", reply.body);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_provider_error_description_is_never_echoed() {
    let h = Harness::new().await;
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let query = format!(
        "error=access_denied&error_description=%3Cscript%3Ealert(%27owned%27)%3C%2Fscript%3E&error_uri=javascript%3Aalert(1)&state={}",
        start.state
    );
    let reply = h
        .get(
            "/oauth/box/callback",
            &query,
            std::slice::from_ref(&start.cookie),
        )
        .await;
    reply.assert_callback_page(400);
    let lower = reply.body.to_ascii_lowercase();
    for echoed in ["<script", "alert(", "owned", "javascript:", "%3cscript"] {
        assert!(!lower.contains(echoed), "{echoed} in {}", reply.body);
    }
    // An unknown error code is not echoed either.
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let reply = h
        .get(
            "/oauth/box/callback",
            &format!("error=%3Cimg%20src%3Dx%3E&state={}", start.state),
            std::slice::from_ref(&start.cookie),
        )
        .await;
    reply.assert_callback_page(400);
    assert!(!reply.body.contains("<img"), "{}", reply.body);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn a_refused_code_exchange_stores_nothing() {
    let h = Harness::new().await;
    // A code Box never issued.
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let reply = h
        .get(
            "/oauth/box/callback",
            &format!("code=forged-code&state={}", start.state),
            std::slice::from_ref(&start.cookie),
        )
        .await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("not accepted"), "{}", reply.body);
    // No code at all.
    let start = h.start(&h.ticket(new_box_request()).await).await;
    h.get(
        "/oauth/box/callback",
        &format!("state={}", start.state),
        std::slice::from_ref(&start.cookie),
    )
    .await
    .assert_callback_page(400);
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 0);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn an_expired_code_stores_nothing() {
    let mut config = sim_config(8);
    config.oauth_code_ttl = Duration::ZERO;
    let h = Harness::with_sim(config).await;
    let reply = h.connect(new_box_request()).await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("not accepted"), "{}", reply.body);
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 0);
    h.assert_nothing_stored(&[], None, &[]).await;
}

/// An OAuth integration of another enterprise, stored directly.
async fn foreign_oauth_integration(h: &Harness) -> Integration {
    let id = IntegrationId::generate();
    let now = h.ctx.clock.now();
    let integration = Integration {
        secret_name: Integration::secret_name_for(&id),
        id,
        provider: Provider::Box,
        name: "Other enterprise".into(),
        auth_kind: AuthKind::OAuth,
        tenant_id: "9999999".into(),
        status: IntegrationStatus::NeedsReauth,
        enabled: true,
        plan: Some(seatkeeper_shared::domain::BoxPlan::Business),
        purchased_seats: Some(10),
        service_user_id: Some("1".into()),
        sync: SyncSettings::default(),
        created_at: now,
        updated_at: now,
        last_sync: None,
        reclaim: ReclaimGuardRails::default(),
        seat_price: None,
    };
    h.secrets
        .put(
            &integration.secret_name,
            SecretString::from(r#"{"client_id":"x","refresh_token":"old-refresh"}"#),
        )
        .await
        .unwrap();
    h.store.create_integration(&integration).await.unwrap();
    integration
}

#[tokio::test]
async fn a_reconnect_by_another_enterprise_is_refused() {
    let h = Harness::new().await;
    let other = foreign_oauth_integration(&h).await;
    let reply = h
        .connect(OAuthTicketRequest {
            integration_id: Some(other.id.clone()),
            plan: None,
            name: None,
            purchased_seats: None,
            ..new_box_request()
        })
        .await;
    reply.assert_callback_page(409);
    assert!(
        reply.body.contains("belongs to another enterprise"),
        "{}",
        reply.body
    );
    h.assert_nothing_stored(
        std::slice::from_ref(&other),
        None,
        &[other.secret_name.as_str()],
    )
    .await;
    let untouched = h.credentials(&other).await;
    assert_eq!(
        untouched.refresh_token.unwrap().expose_secret(),
        "old-refresh"
    );
    assert_eq!(
        h.sim.oauth_stats().revocations,
        1,
        "the unused new grant is revoked"
    );
}

#[tokio::test]
async fn a_tenant_held_by_a_client_credentials_integration_is_refused() {
    let h = Harness::new().await;
    let ccg = Connector {
        store: h.store.as_ref(),
        secrets: h.secrets.as_ref(),
        clock: h.clock.as_ref(),
        http: h.ctx.http.clone(),
        box_config: h.ctx.box_config.clone(),
    }
    .connect_box_ccg(BoxCcgConnect {
        client_id: h.sim.client_id(),
        client_secret: SecretString::from(h.sim.client_secret()),
        enterprise_id: h.sim.enterprise_id(),
        plan: seatkeeper_shared::domain::BoxPlan::Business,
        purchased_seats: None,
        name: None,
    })
    .await
    .expect("CCG connect");
    let reply = h.connect(new_box_request()).await;
    reply.assert_callback_page(409);
    assert!(reply.body.contains("client credentials"), "{}", reply.body);
    assert!(reply.body.contains(ccg.id.as_str()), "{}", reply.body);
    h.assert_nothing_stored(
        std::slice::from_ref(&ccg),
        Some(&ccg),
        &[ccg.secret_name.as_str()],
    )
    .await;
    assert_eq!(h.sim.oauth_stats().revocations, 1);
}

#[tokio::test]
async fn a_new_connect_repairs_the_integration_that_needs_reauth() {
    let h = Harness::new().await;
    h.connect(new_box_request()).await.assert_callback_page(200);
    let first = only_integration(&h).await;
    let old = h.credentials(&first).await;
    // The grant dies (an admin revoked the app): the sync marks the integration.
    h.sim.revoke_refresh_tokens();
    h.store
        .modify_integration(&first.id, &|i: &mut Integration| {
            i.status = IntegrationStatus::NeedsReauth;
        })
        .await
        .unwrap();

    let reply = h
        .connect(OAuthTicketRequest {
            name: None,
            ..new_box_request()
        })
        .await;
    reply.assert_callback_page(200);
    assert!(reply.body.contains("Reconnected"), "{}", reply.body);
    let repaired = only_integration(&h).await;
    assert_eq!(repaired.id, first.id, "the same integration, repaired");
    assert_eq!(repaired.status, IntegrationStatus::Connected);
    assert_eq!(repaired.auth_kind, AuthKind::OAuth);
    assert_eq!(
        repaired.name, first.name,
        "an unnamed reconnect keeps the name"
    );
    assert_eq!(repaired.created_at, first.created_at);
    let new = h.credentials(&repaired).await;
    assert_ne!(
        new.refresh_token.unwrap().expose_secret(),
        old.refresh_token.unwrap().expose_secret()
    );
    assert_ne!(
        new.access_token.unwrap().expose_secret(),
        old.access_token.unwrap().expose_secret()
    );
    assert_eq!(
        h.store
            .tenant_owner(Provider::Box, &h.sim.enterprise_id())
            .await
            .unwrap(),
        Some(first.id.clone())
    );
    assert_eq!(h.trigger.requests().len(), 2);
    let audit = h.store.list_audit(&first.id, None, 10).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"integration_connected"), "{actions:?}");
    assert!(actions.contains(&"integration_reconnected"), "{actions:?}");
    let mut names = h.secret_names();
    names.sort();
    assert_eq!(
        names,
        vec![support::APP_SECRET.to_owned(), first.secret_name.clone()]
    );
}

#[tokio::test]
async fn a_reconnect_of_the_same_enterprise_by_id_repairs_it() {
    let h = Harness::new().await;
    h.connect(new_box_request()).await.assert_callback_page(200);
    let first = only_integration(&h).await;
    let old_refresh = h.credentials(&first).await.refresh_token.unwrap();
    let reply = h
        .connect(OAuthTicketRequest {
            integration_id: Some(first.id.clone()),
            plan: None,
            name: Some("Renamed".into()),
            purchased_seats: None,
            ..new_box_request()
        })
        .await;
    reply.assert_callback_page(200);
    let repaired = only_integration(&h).await;
    assert_eq!(repaired.id, first.id);
    assert_eq!(repaired.name, "Renamed");
    assert_eq!(repaired.plan, first.plan);
    // The replaced grant was revoked at Box: its refresh token no longer works.
    assert_eq!(h.sim.oauth_stats().revocations, 1);
    let app = seatkeeper_shared::provider::box_client::oauth::BoxOAuthApp {
        client_id: h.sim.client_id(),
        client_secret: SecretString::from(h.sim.client_secret()),
    };
    let refused = seatkeeper_shared::provider::box_client::oauth::refresh(
        &h.ctx.http,
        &h.ctx.box_config,
        &app,
        &old_refresh,
        h.ctx.clock.now(),
    )
    .await;
    assert!(refused.is_err(), "the old grant still works");
}

#[tokio::test]
async fn a_failed_sync_trigger_does_not_fail_the_connect() {
    let h = Harness::new().await;
    h.trigger.fail.store(true, Ordering::SeqCst);
    let reply = h.connect(new_box_request()).await;
    reply.assert_callback_page(200);
    assert!(
        reply.body.contains("could not be started"),
        "{}",
        reply.body
    );
    assert_eq!(
        only_integration(&h).await.status,
        IntegrationStatus::Connected
    );
}

#[tokio::test]
async fn a_grant_without_the_needed_capabilities_stores_nothing() {
    let mut config = sim_config(9);
    config.app_can_read_events = false;
    let h = Harness::with_sim(config).await;
    let reply = h.connect(new_box_request()).await;
    reply.assert_callback_page(400);
    assert!(reply.body.contains("event stream"), "{}", reply.body);
    assert_eq!(h.sim.oauth_stats().revocations, 1);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn unknown_providers_routes_and_methods_get_pages() {
    let h = Harness::new().await;
    for path in [
        "/oauth/github/start",
        "/oauth/github/callback",
        "/oauth/box/other",
        "/oauth/box",
        "/oauth",
        "/oauth/",
        "/oauth/box/start/extra",
        "/oauth/box/start/",
        "/oauth/box/",
        "/oauth/box/callback/a/b",
    ] {
        let reply = h.get(path, "ticket=abc", &[]).await;
        reply.assert_page(404);
    }
    let post = h
        .send_event(support::event(
            "POST",
            "/oauth/box/callback",
            "",
            &[],
            "seatkeeper.example.test",
        ))
        .await;
    post.assert_page(405);
    // Duplicate parameters are refused, not guessed at.
    let start = h.start(&h.ticket(new_box_request()).await).await;
    let reply = h
        .get(
            "/oauth/box/callback",
            &format!("code=a&code=b&state={}", start.state),
            std::slice::from_ref(&start.cookie),
        )
        .await;
    reply.assert_callback_page(400);
    h.assert_nothing_stored(&[], None, &[]).await;
}

#[tokio::test]
async fn tickets_are_validated_before_they_are_issued() {
    let h = Harness::new().await;
    let salesforce = issue_ticket(
        &h.ctx,
        OAuthTicketRequest {
            provider: Provider::Salesforce,
            ..new_box_request()
        },
        &requester(),
    )
    .await;
    assert!(
        matches!(&salesforce, Err(OAuthConnectError::Invalid(e)) if e.reason.contains("not supported yet")),
        "{salesforce:?}"
    );
    let missing = IntegrationId::generate();
    let unknown = issue_ticket(
        &h.ctx,
        OAuthTicketRequest {
            integration_id: Some(missing.clone()),
            ..new_box_request()
        },
        &requester(),
    )
    .await;
    assert!(
        matches!(&unknown, Err(OAuthConnectError::NotFound(id)) if *id == missing),
        "{unknown:?}"
    );
    let no_plan = issue_ticket(
        &h.ctx,
        OAuthTicketRequest {
            plan: None,
            ..new_box_request()
        },
        &requester(),
    )
    .await;
    assert!(
        matches!(&no_plan, Err(OAuthConnectError::Invalid(e)) if e.field == "plan"),
        "{no_plan:?}"
    );
    // A client-credentials integration cannot be "reconnected" with OAuth.
    let ccg = Connector {
        store: h.store.as_ref(),
        secrets: h.secrets.as_ref(),
        clock: h.clock.as_ref(),
        http: h.ctx.http.clone(),
        box_config: h.ctx.box_config.clone(),
    }
    .connect_box_ccg(BoxCcgConnect {
        client_id: h.sim.client_id(),
        client_secret: SecretString::from(h.sim.client_secret()),
        enterprise_id: h.sim.enterprise_id(),
        plan: seatkeeper_shared::domain::BoxPlan::Business,
        purchased_seats: None,
        name: None,
    })
    .await
    .expect("CCG connect");
    let wrong_kind = issue_ticket(
        &h.ctx,
        OAuthTicketRequest {
            integration_id: Some(ccg.id.clone()),
            ..new_box_request()
        },
        &Actor::System,
    )
    .await;
    assert!(
        matches!(&wrong_kind, Err(OAuthConnectError::Invalid(e)) if e.field == "integration_id"),
        "{wrong_kind:?}"
    );
    // Debug output of an issued ticket does not show it.
    let issued = issue_ticket(&h.ctx, new_box_request(), &requester())
        .await
        .unwrap();
    let shown = format!("{issued:?}");
    assert!(!shown.contains(issued.start_url.expose_secret()), "{shown}");
    assert!(issued.start_url.expose_secret().starts_with(BASE));
}
