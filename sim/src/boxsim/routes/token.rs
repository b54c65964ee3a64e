//! `POST /oauth2/token`: checks the client, then hands the grant to its handler. The Client
//! Credentials Grant for the app's service account is here; the authorization-code and
//! refresh grants are in [`super::oauth`].

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, oauth};
use crate::boxsim::errors::BoxError;
use crate::boxsim::state::{AppSettings, Shared, TOKEN_LIFETIME, lock, read};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    box_subject_type: Option<String>,
    box_subject_id: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
}

/// The token and revoke endpoints both authenticate the app by its id and secret.
pub(super) fn check_client(
    app: &AppSettings,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<(), BoxError> {
    if client_id == Some(app.client_id.as_str())
        && client_secret == Some(app.client_secret.as_str())
    {
        Ok(())
    } else {
        Err(BoxError::oauth(
            "invalid_client",
            "The client credentials are invalid.",
        ))
    }
}

pub(crate) async fn issue(
    State(shared): AppState,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, BoxError> {
    let missing_grant_type = || {
        BoxError::oauth(
            "invalid_request",
            "Invalid grant_type parameter or parameter missing",
        )
    };
    let Ok(Form(form)) = form else {
        return Err(missing_grant_type());
    };
    let Some(grant_type) = form.grant_type.as_deref() else {
        return Err(missing_grant_type());
    };
    check_client(
        &shared.app,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    )?;
    match grant_type {
        "client_credentials" => client_credentials(&shared, &form),
        "authorization_code" => {
            oauth::exchange_code(&shared, form.code.as_deref(), form.redirect_uri.as_deref())
        }
        "refresh_token" => {
            let delay = lock(&shared.faults).faults().refresh_delay_ms;
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            oauth::refresh(&shared, form.refresh_token.as_deref())
        }
        _ => Err(BoxError::oauth(
            "invalid_request",
            "The grant type is unauthorized for this client_id.",
        )),
    }
}

fn client_credentials(shared: &Shared, form: &TokenForm) -> Result<Response, BoxError> {
    let app = &shared.app;
    if !app.authorized {
        return Err(BoxError::oauth(
            "unauthorized_client",
            "This app is not authorized by the enterprise admin",
        ));
    }
    // Only the enterprise subject is simulated: the app has "Generate User Access Tokens"
    // off, so a `user` subject is refused the way Box refuses it.
    let enterprise_subject = form.box_subject_type.as_deref() == Some("enterprise")
        && form.box_subject_id.as_deref() == Some(app.enterprise_id.as_str());
    if !enterprise_subject {
        return Err(BoxError::oauth(
            "invalid_grant",
            "Grant credentials are invalid",
        ));
    }

    let service_account = read(&shared.tenant).service_account;
    let access_token = lock(&shared.tokens).issue(service_account);
    lock(&shared.oauth).stats.client_credentials_grants += 1;
    Ok(Json(json!({
        "access_token": access_token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "restricted_to": [],
        "token_type": "bearer",
    }))
    .into_response())
}
