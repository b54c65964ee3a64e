//! User writes: `PUT /2.0/users/{id}`, `DELETE /2.0/users/{id}` and the content transfer
//! `PUT /2.0/users/{id}/folders/0`, with the owned-content ledger that proves nothing is lost.

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode, Url};
use seatkeeper_sim::{AppScopes, BoxSimConfig, Faults, SimHandle, UserWrite, WriteKind};
use serde_json::{Value, json};

use crate::support::{client, get, ids, list_all_users, spec, start, start_tenant, token};

/// The status and the body as JSON, or `Null` when empty.
pub async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, body)
}

/// Any Box API call, with a JSON body when given.
pub async fn call(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .query(query);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request).await
}

/// GET with an `As-User` header.
pub async fn get_as(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    as_user: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let request = client
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .header("As-User", as_user)
        .query(query);
    answer(request).await
}

pub async fn put_user(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    user_id: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!("/2.0/users/{user_id}");
    call(client, sim, token, Method::PUT, &path, &[], Some(body)).await
}

pub async fn delete_user(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    user_id: &str,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let path = format!("/2.0/users/{user_id}");
    call(client, sim, token, Method::DELETE, &path, query, None).await
}

pub async fn transfer(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    from: &str,
    to: &str,
) -> (StatusCode, Value) {
    let path = format!("/2.0/users/{from}/folders/0");
    let body = json!({ "owned_by": { "id": to } });
    let query = [("notify", "false")];
    call(client, sim, token, Method::PUT, &path, &query, Some(body)).await
}

fn id_of(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

/// Active managed users with the `user` role (not the admin, co-admins or platform users).
pub fn regular_users(sim: &SimHandle) -> Vec<Value> {
    sim.users()
        .into_iter()
        .filter(|user| {
            user["role"] == "user"
                && user["status"] == "active"
                && user["is_platform_access_only"] == false
                && user["login"].as_str().unwrap().ends_with("@example.com")
        })
        .collect()
}

/// Two distinct regular users who both own content.
fn two_owners(sim: &SimHandle) -> (String, String) {
    let owners: Vec<String> = regular_users(sim)
        .iter()
        .map(id_of)
        .filter(|id| sim.owned_items(id).unwrap() > 0)
        .take(2)
        .collect();
    (owners[0].clone(), owners[1].clone())
}

fn owner_without_content(sim: &SimHandle) -> String {
    regular_users(sim)
        .iter()
        .map(id_of)
        .find(|id| sim.owned_items(id) == Some(0))
        .expect("some users own nothing")
}

/// A token of the OAuth 2.0 flow acting as `user_id` (who must be an active managed user).
pub async fn user_token(sim: &SimHandle, user_id: &str) -> String {
    const CALLBACK: &str = "http://127.0.0.1:9/callback";
    let browser = Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let client_id = sim.client_id();
    let response = browser
        .get(sim.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", CALLBACK),
            ("sim_user", user_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned();
    let secret = sim.client_secret();
    let body: Value = client()
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn deactivating_a_user_answers_the_updated_user() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = id_of(&regular_users(&sim)[0]);

    let (status, body) =
        put_user(&client, &sim, &token, &user, json!({"status": "inactive"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "user");
    assert_eq!(body["id"], user.as_str());
    assert_eq!(body["status"], "inactive");

    let (_, fetched) = get(
        &client,
        &sim,
        &token,
        &format!("/2.0/users/{user}"),
        &[("fields", "status,role")],
    )
    .await;
    assert_eq!(fetched["status"], "inactive");
    assert_eq!(fetched["role"], "user", "a status change keeps the role");

    // And back, as a restore does.
    let (status, body) = put_user(&client, &sim, &token, &user, json!({"status": "active"})).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("active"))
    );
    assert_eq!(sim.stats().user_updates, 2);
    assert_eq!(
        sim.user_writes(),
        vec![
            UserWrite {
                kind: WriteKind::UpdateUser,
                user_id: user.clone(),
                status: Some(200),
                force: false,
            };
            2
        ]
    );
}

#[tokio::test]
async fn role_changes_apply_and_invalid_updates_are_refused() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = id_of(&regular_users(&sim)[0]);
    let path = format!("/2.0/users/{user}");

    let (status, body) = call(
        &client,
        &sim,
        &token,
        Method::PUT,
        &path,
        &[("fields", "role")],
        Some(json!({"role": "coadmin", "notify": false, "unknown_field": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "coadmin");
    let (status, body) = put_user(&client, &sim, &token, &user, json!({"role": "user"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for bad in [
        json!({"role": "admin"}),
        json!({"status": "deleted"}),
        json!({"status": 1}),
        json!({"name": "x".repeat(51)}),
    ] {
        let (status, body) = put_user(&client, &sim, &token, &user, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["code"], "invalid_parameter", "{bad}");
    }
    let (status, body) = put_user(&client, &sim, &token, &user, json!(["status"])).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    let (status, body) = put_user(&client, &sim, &token, "1", json!({"status": "inactive"})).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );

    let (_, fetched) = get(&client, &sim, &token, &path, &[("fields", "status,role")]).await;
    assert_eq!(
        (&fetched["status"], &fetched["role"]),
        (&json!("active"), &json!("user")),
        "refused updates change nothing"
    );
}

#[tokio::test]
async fn the_primary_admin_cannot_be_changed_deleted_or_emptied_by_others() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let admin = sim.admin_user_id();
    let items = sim.owned_items(&admin).unwrap();
    let target = id_of(&regular_users(&sim)[0]);

    let (status, body) =
        put_user(&client, &sim, &token, &admin, json!({"status": "inactive"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
    for query in [&[][..], &[("force", "true")][..]] {
        let (status, body) = delete_user(&client, &sim, &token, &admin, query).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], "access_denied_insufficient_permissions");
    }
    let (status, _) = transfer(&client, &sim, &token, &admin, &target).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, fetched) = get(&client, &sim, &token, &format!("/2.0/users/{admin}"), &[]).await;
    assert_eq!(fetched["status"], "active");
    assert_eq!(sim.owned_items(&admin), Some(items));
    // The service account is not deletable either, not even by itself.
    let (status, _) = delete_user(&client, &sim, &token, &sim.service_account_id(), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn delete_is_refused_while_the_user_owns_content() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (owner, _) = two_owners(&sim);
    let total = sim.owned_items_total();

    let (status, body) = delete_user(&client, &sim, &token, &owner, &[("notify", "false")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], "user_delete_failed_owns_content");
    assert!(body["message"].as_str().unwrap().contains("own content"));

    let (status, _) = get(&client, &sim, &token, &format!("/2.0/users/{owner}"), &[]).await;
    assert_eq!(status, StatusCode::OK, "still there");
    assert_eq!(sim.owned_items_total(), total);
    assert_eq!(sim.force_deletes(), 0);
    assert_eq!(sim.stats().user_deletes, 1);
}

#[tokio::test]
async fn deleting_a_user_without_content_removes_them_everywhere() {
    let sim = start_tenant(40).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = owner_without_content(&sim);
    let total = sim.owned_items_total();

    let (status, body) = delete_user(&client, &sim, &token, &user, &[("notify", "false")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_null(), "204 has no body");
    let (status, _) = get(&client, &sim, &token, &format!("/2.0/users/{user}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = ids(&list_all_users(&client, &sim, &token, "1000").await);
    assert!(!listed.contains(&user));
    assert!(!ids(&sim.users()).contains(&user));

    let (status, _) = delete_user(&client, &sim, &token, &user, &[]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a second delete finds nobody"
    );
    assert_eq!(sim.owned_items_total(), total);
    assert_eq!(sim.items_destroyed(), 0);
}

#[tokio::test]
async fn force_destroys_content_and_every_use_is_counted() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (owner, other) = two_owners(&sim);
    let items = sim.owned_items(&owner).unwrap();
    let total = sim.owned_items_total();

    // `force=false` is not forcing.
    let (status, _) = delete_user(&client, &sim, &token, &owner, &[("force", "false")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.force_deletes(), 0);

    let (status, _) = delete_user(&client, &sim, &token, &owner, &[("force", "true")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.items_destroyed(), items);
    assert_eq!(sim.owned_items_total(), total - items);
    assert_eq!(sim.owned_items(&owner), None);

    // Counted even when refused or faulted: sending it at all is what a test looks for.
    let (status, _) = delete_user(&client, &sim, &token, "1", &[("force", "1")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let (status, _) = delete_user(&client, &sim, &token, &other, &[("force", "TRUE")]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        sim.owned_items(&other).unwrap() > 0,
        "a faulted request does nothing"
    );

    assert_eq!(sim.force_deletes(), 3);
    assert_eq!(sim.stats().force_deletes, 3);
    let forced: Vec<_> = sim.user_writes().into_iter().filter(|w| w.force).collect();
    assert_eq!(forced.len(), 3);
    assert_eq!(
        forced.iter().map(|w| w.status).collect::<Vec<_>>(),
        [Some(204), Some(404), Some(500)]
    );
}

#[tokio::test]
async fn transfer_then_delete_keeps_every_item() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, to) = two_owners(&sim);
    let (from_items, to_items) = (
        sim.owned_items(&from).unwrap(),
        sim.owned_items(&to).unwrap(),
    );
    let total = sim.owned_items_total();

    let (status, folder) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(status, StatusCode::OK, "{folder}");
    assert_eq!(folder["type"], "folder");
    assert!(!folder["id"].as_str().unwrap().is_empty());
    assert!(
        folder["name"]
            .as_str()
            .unwrap()
            .ends_with("'s Files and Folders"),
        "{folder}"
    );
    assert_eq!(folder["owned_by"]["id"], to.as_str());
    assert_eq!(folder["parent"]["id"], "0");

    assert_eq!(sim.owned_items(&from), Some(0));
    assert_eq!(sim.owned_items(&to), Some(from_items + to_items));
    assert_eq!(sim.owned_items_total(), total);

    let (status, _) = delete_user(&client, &sim, &token, &from, &[("notify", "false")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.owned_items_total(),
        total,
        "nothing lost across transfer and delete"
    );
    assert_eq!(sim.items_destroyed(), 0);
    assert_eq!(sim.force_deletes(), 0);
    let stats = sim.stats();
    assert_eq!((stats.transfers, stats.user_deletes), (1, 1));
    let kinds: Vec<_> = sim.user_writes().iter().map(|w| w.kind).collect();
    assert_eq!(kinds, [WriteKind::TransferContent, WriteKind::DeleteUser]);
}

#[tokio::test]
async fn transfers_to_the_service_account_are_allowed_and_bad_ones_refused() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, other) = two_owners(&sim);
    let items = sim.owned_items(&from).unwrap();
    let inactive = sim
        .users()
        .into_iter()
        .find(|user| user["status"] == "inactive")
        .map(|user| id_of(&user))
        .unwrap();

    let (status, body) = transfer(&client, &sim, &token, &from, "1").await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, _) = transfer(&client, &sim, &token, "1", &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = transfer(&client, &sim, &token, &from, &from).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = transfer(&client, &sim, &token, &from, &inactive).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("active"));
    let (status, _) = call(
        &client,
        &sim,
        &token,
        Method::PUT,
        &format!("/2.0/users/{from}/folders/0"),
        &[],
        Some(json!({"owned_by": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &client,
        &sim,
        &token,
        Method::PUT,
        &format!("/2.0/users/{from}/folders/123"),
        &[],
        Some(json!({"owned_by": {"id": other}})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only the root folder transfers"
    );
    assert_eq!(sim.owned_items(&from), Some(items), "refusals move nothing");

    // Box's deprovisioning recipe: transfer to the service account, then delete.
    let service = sim.service_account_id();
    let (status, folder) = transfer(&client, &sim, &token, &from, &service).await;
    assert_eq!(status, StatusCode::OK, "{folder}");
    assert_eq!(sim.owned_items(&service), Some(items));
}

#[tokio::test]
async fn an_early_returning_transfer_makes_the_delete_wait_for_it() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, to) = two_owners(&sim);
    let items = sim.owned_items(&from).unwrap();
    let total = sim.owned_items_total();
    sim.set_faults(Faults {
        transfer_early_return_ratio: 1.0,
        transfer_completion_requests: 2,
        ..Faults::default()
    });

    let (status, folder) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(status, StatusCode::OK, "{folder}");
    assert_eq!(sim.stats().transfers_returned_early, 1);
    assert_eq!(sim.pending_transfers(), 1);
    assert_eq!(
        sim.owned_items(&from),
        Some(items),
        "200, yet nothing moved"
    );

    // The two requests the transfer waits for: a second transfer and a delete, both refused.
    let (status, body) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "operation_blocked_temporary");
    let (status, body) = delete_user(&client, &sim, &token, &from, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "user_delete_failed_owns_content");

    // The next request finds the transfer done.
    let (status, _) = delete_user(&client, &sim, &token, &from, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.pending_transfers(), 0);
    assert!(sim.owned_items(&to).unwrap() >= items);
    assert_eq!(sim.owned_items_total(), total);
    assert_eq!((sim.items_destroyed(), sim.force_deletes()), (0, 0));
}

#[tokio::test]
async fn an_early_returning_transfer_can_finish_after_a_delay() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, to) = two_owners(&sim);
    let total = sim.owned_items_total();
    sim.set_faults(Faults {
        transfer_early_return_ratio: 1.0,
        transfer_completion_ms: 300,
        ..Faults::default()
    });

    let (status, _) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = delete_user(&client, &sim, &token, &from, &[]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "refused while the transfer runs"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(sim.owned_items(&from), Some(0), "done once its time passed");
    let (status, _) = delete_user(&client, &sim, &token, &from, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.owned_items_total(), total);
}

#[tokio::test]
async fn faults_apply_to_the_write_endpoints() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, to) = two_owners(&sim);
    let items = sim.owned_items(&from).unwrap();

    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    });
    let response = client
        .put(format!("{}/2.0/users/{from}", sim.base_url()))
        .bearer_auth(&token)
        .json(&json!({"status": "inactive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");

    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let (status, body) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(
        (status, &body["code"]),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!("internal_server_error")
        )
    );

    sim.set_faults(Faults {
        drop_connection_ratio: 1.0,
        ..Faults::default()
    });
    let dropped = client
        .delete(format!("{}/2.0/users/{from}", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(dropped.is_err(), "closed without a response");

    sim.set_faults(Faults::default());
    let (_, user) = get(&client, &sim, &token, &format!("/2.0/users/{from}"), &[]).await;
    assert_eq!(user["status"], "active", "faulted writes change nothing");
    assert_eq!(sim.owned_items(&from), Some(items));
    let stats = sim.stats();
    assert_eq!(
        (stats.rate_limited, stats.server_errors, stats.dropped),
        (1, 1, 1)
    );
    assert_eq!(
        (stats.user_updates, stats.transfers, stats.user_deletes),
        (1, 1, 1)
    );
    let statuses: Vec<_> = sim.user_writes().iter().map(|w| w.status).collect();
    assert_eq!(statuses, [Some(429), Some(500), None]);
}

#[tokio::test]
async fn a_lost_write_response_still_applies_the_write() {
    let sim = start_tenant(40).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = owner_without_content(&sim);
    sim.set_faults(Faults {
        write_lost_response_ratio: 1.0,
        ..Faults::default()
    });

    let lost = client
        .delete(format!("{}/2.0/users/{user}", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(lost.is_err(), "no response");
    assert!(!ids(&sim.users()).contains(&user), "but the user is gone");
    let (status, _) = delete_user(&client, &sim, &token, &user, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a retry meets the new state");
    let stats = sim.stats();
    assert_eq!((stats.write_responses_lost, stats.dropped), (1, 1));
}

#[tokio::test]
async fn missing_scopes_are_insufficient_scope() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (from, to) = two_owners(&sim);
    assert_eq!(sim.app_scopes(), AppScopes::default());

    sim.set_app_scopes(AppScopes {
        manage_users: false,
        ..AppScopes::default()
    });
    let (status, body) =
        put_user(&client, &sim, &token, &from, json!({"status": "inactive"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "insufficient_scope");
    let (status, body) = delete_user(&client, &sim, &token, &from, &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );
    let (status, _) = get(&client, &sim, &token, "/2.0/users", &[]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "listing users needs the scope too"
    );
    let (status, _) = get(&client, &sim, &token, "/2.0/users/me", &[]).await;
    assert_eq!(status, StatusCode::OK, "but not reading yourself");

    sim.set_app_scopes(AppScopes {
        root_readwrite: false,
        ..AppScopes::default()
    });
    let (status, body) = transfer(&client, &sim, &token, &from, &to).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );
    let (status, _) = put_user(&client, &sim, &token, &from, json!({"status": "inactive"})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "user writes do not need the files scope"
    );
}

#[tokio::test]
async fn writes_need_an_admin_and_co_admins_cannot_manage_their_peers() {
    let sim = start_tenant(40).await;
    let users = regular_users(&sim);
    let (plain, coadmin, peer) = (id_of(&users[0]), id_of(&users[1]), id_of(&users[2]));
    sim.set_user_role(&coadmin, "coadmin");
    sim.set_user_role(&peer, "coadmin");
    let client = client();

    let plain_token = user_token(&sim, &plain).await;
    let (status, body) = put_user(
        &client,
        &sim,
        &plain_token,
        &peer,
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");

    let coadmin_token = user_token(&sim, &coadmin).await;
    let (status, _) = put_user(
        &client,
        &sim,
        &coadmin_token,
        &peer,
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "co-admins cannot manage co-admins"
    );
    let (status, _) = put_user(
        &client,
        &sim,
        &coadmin_token,
        &plain,
        json!({"role": "coadmin"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins grant co-admin rights"
    );
    let (status, body) = put_user(
        &client,
        &sim,
        &coadmin_token,
        &plain,
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "but they manage regular users: {body}"
    );
}

#[tokio::test]
async fn owned_content_is_deterministic_and_most_users_own_some() {
    let first = start(BoxSimConfig::new(spec(300))).await;
    let second = start(BoxSimConfig::new(spec(300))).await;
    let managed: Vec<String> = first
        .users()
        .iter()
        .filter(|user| user["login"].as_str().unwrap().ends_with("@example.com"))
        .map(id_of)
        .collect();
    let owned: Vec<u64> = managed
        .iter()
        .map(|id| first.owned_items(id).unwrap())
        .collect();
    let again: Vec<u64> = managed
        .iter()
        .map(|id| second.owned_items(id).unwrap())
        .collect();
    assert_eq!(owned, again);
    let owners = owned.iter().filter(|items| **items > 0).count();
    assert!(
        (200..290).contains(&owners),
        "most own content, some none: {owners}"
    );
    assert_eq!(first.owned_items_total(), owned.iter().sum::<u64>());

    // Users who never logged in own nothing and use no space.
    let logged_in: std::collections::HashSet<String> =
        first.login_events().into_iter().map(|(id, _)| id).collect();
    for user in first.users() {
        let id = id_of(&user);
        if managed.contains(&id) && !logged_in.contains(&id) {
            assert_eq!(first.owned_items(&id), Some(0));
            assert_eq!(user["space_used"], 0);
        }
    }
}

#[tokio::test]
async fn the_control_plane_edits_users_and_reports_content() {
    let sim = start_tenant(20).await;
    let client = client();
    let user = id_of(&regular_users(&sim)[0]);
    let base = sim.base_url();

    let response = client
        .put(format!("{base}/_sim/users/{user}"))
        .json(&json!({"status": "inactive", "role": "coadmin", "owned_items": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let edited = sim.users().into_iter().find(|u| id_of(u) == user).unwrap();
    assert_eq!(
        (&edited["status"], &edited["role"]),
        (&json!("inactive"), &json!("coadmin"))
    );
    assert_eq!(sim.owned_items(&user), Some(5));
    let response = client
        .put(format!("{base}/_sim/users/1"))
        .json(&json!({"status": "inactive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let content: Value = client
        .get(format!("{base}/_sim/content"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(content["owned_items_total"], sim.owned_items_total());
    assert_eq!(content["items_destroyed"], 0);
    assert_eq!(content["pending_transfers"], 0);

    let scopes: AppScopes = client
        .put(format!("{base}/_sim/scopes"))
        .json(&json!({"as_user": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        scopes,
        AppScopes {
            as_user: false,
            ..AppScopes::default()
        }
    );
    assert_eq!(sim.app_scopes(), scopes);

    let token = token(&client, &sim).await;
    put_user(&client, &sim, &token, &user, json!({"status": "active"})).await;
    let writes: Vec<UserWrite> = client
        .get(format!("{base}/_sim/writes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(writes, sim.user_writes());
    assert_eq!(writes.len(), 1);
    assert_eq!(sim.stats().total, 2, "the control plane is not counted");
}
