//! The authorization-code grant, the refresh grant (both through `POST /oauth2/token`) and
//! `POST /oauth2/revoke`.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::token::check_client;
use crate::boxsim::errors::BoxError;
use crate::boxsim::oauth::{CodeRefusal, Granted};
use crate::boxsim::server;
use crate::boxsim::state::{Shared, TOKEN_LIFETIME, lock};

/// `grant_type=authorization_code`: spends the code and starts a grant for the user who
/// authorized. `redirect_uri`, when given, must be the one the code was delivered to.
pub(super) fn exchange_code(
    shared: &Shared,
    code: Option<&str>,
    redirect_uri: Option<&str>,
) -> Result<Response, BoxError> {
    let Some(code) = code.filter(|code| !code.is_empty()) else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Missing required parameter: code",
        ));
    };
    let mut oauth = lock(&shared.oauth);
    let granted = oauth.redeem_code(code, redirect_uri).map_err(|refusal| {
        let description = match refusal {
            CodeRefusal::Invalid => "Auth code doesn't exist or is invalid for the client",
            CodeRefusal::Expired => "The authorization code has expired",
            CodeRefusal::RedirectMismatch => {
                "The redirect_uri does not match the one used for authorization"
            }
        };
        BoxError::oauth("invalid_grant", description)
    })?;
    // Issued under the `oauth` lock: see the lock order in `state`.
    let access_token = lock(&shared.tokens).issue_for_grant(granted.user, granted.grant);
    drop(oauth);
    Ok(token_response(access_token, granted))
}

/// `grant_type=refresh_token`: the refresh token is spent and replaced whether or not the
/// client ever sees the answer.
pub(super) fn refresh(shared: &Shared, refresh_token: Option<&str>) -> Result<Response, BoxError> {
    let Some(refresh_token) = refresh_token.filter(|token| !token.is_empty()) else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Missing required parameter: refresh_token",
        ));
    };
    let mut oauth = lock(&shared.oauth);
    let granted = oauth
        .rotate(refresh_token)
        .ok_or_else(|| BoxError::oauth("invalid_grant", "Invalid refresh token"))?;
    let access_token = lock(&shared.tokens).issue_for_grant(granted.user, granted.grant);
    drop(oauth);

    let lost = lock(&shared.faults).refresh_response_lost();
    if lost {
        lock(&shared.oauth).stats.refresh_responses_lost += 1;
        return Ok(server::dropped_connection());
    }
    Ok(token_response(access_token, granted))
}

fn token_response(access_token: String, granted: Granted) -> Response {
    Json(json!({
        "access_token": access_token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "restricted_to": [],
        "refresh_token": granted.refresh_token,
        "token_type": "bearer",
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

/// Ends the grant of an access or refresh token: every access token it issued and its live
/// refresh token. A client-credentials token is simply forgotten. Unknown tokens are
/// answered 200 as well (RFC 7009 §2.2): the client's goal, a dead token, is met.
pub(crate) async fn revoke(
    State(shared): AppState,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<StatusCode, BoxError> {
    let Ok(Form(form)) = form else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Missing required parameter: token",
        ));
    };
    check_client(
        &shared.app,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    )?;
    let Some(token) = form.token.as_deref().filter(|token| !token.is_empty()) else {
        return Err(BoxError::oauth(
            "invalid_request",
            "Missing required parameter: token",
        ));
    };

    let mut oauth = lock(&shared.oauth);
    let mut tokens = lock(&shared.tokens);
    let grant = match tokens.revoke(token) {
        Some(grant) => grant,
        None => match oauth.revoke_refresh_token(token) {
            Some(grant) => Some(grant),
            None => return Ok(StatusCode::OK),
        },
    };
    if let Some(grant) = grant {
        oauth.revoke_grant(grant);
        tokens.revoke_grant(grant);
    }
    oauth.stats.revocations += 1;
    Ok(StatusCode::OK)
}
