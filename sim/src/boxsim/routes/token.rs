//! `POST /oauth2/token`: the Client Credentials Grant for the app's service account.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::boxsim::errors::BoxError;
use crate::boxsim::state::{TOKEN_LIFETIME, lock, read};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    box_subject_type: Option<String>,
    box_subject_id: Option<String>,
}

pub(crate) async fn issue(
    State(shared): AppState,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Json<Value>, BoxError> {
    let Ok(Form(form)) = form else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Invalid grant_type parameter or parameter missing",
        ));
    };
    let Some(grant_type) = form.grant_type.as_deref() else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Invalid grant_type parameter or parameter missing",
        ));
    };
    let app = &shared.app;
    if form.client_id.as_deref() != Some(app.client_id.as_str())
        || form.client_secret.as_deref() != Some(app.client_secret.as_str())
    {
        return Err(BoxError::oauth(
            "invalid_client",
            "The client credentials are invalid.",
        ));
    }
    if grant_type != "client_credentials" {
        return Err(BoxError::oauth(
            "invalid_request",
            "The grant type is unauthorized for this client_id.",
        ));
    }
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
    Ok(Json(json!({
        "access_token": access_token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "restricted_to": [],
        "token_type": "bearer",
    })))
}
