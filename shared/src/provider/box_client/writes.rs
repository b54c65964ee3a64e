//! The user writes reclamation makes: status and role updates (deactivate, restore), the
//! transfer of a user's owned content, and the delete, which can never force. Also the one
//! request path for Box calls that `get_json` cannot make (a method other than GET, a JSON
//! body, a user id in the path, `As-User`), with the same 401 handling.
//!
//! Retries, per call (design §8: each step at most once):
//! - `PUT /2.0/users/{id}` sets a state, so repeating it is harmless: retried like a GET.
//! - `DELETE /2.0/users/{id}` is retried too: once applied, a repeat meets 404, which reads
//!   as [`DeleteOutcome::AlreadyGone`].
//! - The transfer is not idempotent: while one runs, another is refused (409), and a lost
//!   answer leaves its fate unknown. Only what Box certainly did not act on (429, connect
//!   errors, 401) is sent again; any other failure goes back to the caller, whose retry of
//!   the step later either repeats a finished transfer harmlessly (nothing left to move) or
//!   meets [`ProviderError::TransferPending`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::model::{BOX_USER_FIELDS, BoxUser, ClientError, TransferredFolder};
use super::token::AccessToken;
use super::{BoxClient, PROVIDER, response_error};
use crate::provider::ProviderError;
use crate::provider::http::{Call, HttpResponse, Idempotency};

/// Client timeout of a content transfer. Box answers a transfer that outlasts 10 minutes
/// with a 200 and finishes it in the background, so anything shorter would turn a slow but
/// successful transfer into an unknown outcome. A caller must not start a transfer with
/// less time than this left before its own deadline.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(12 * 60);

/// Box's user statuses, the only values `status` takes.
const USER_STATUSES: [&str; 4] = [
    "active",
    "inactive",
    "cannot_delete_edit",
    "cannot_delete_edit_upload",
];

/// The roles `PUT /2.0/users/{id}` can set (an enterprise has one primary admin).
const SETTABLE_ROLES: [&str; 2] = ["coadmin", "user"];

/// Box's 409 "retry later"; on a transfer it means one from the same user still runs.
const OPERATION_BLOCKED: &str = "operation_blocked_temporary";

/// The header that makes a call act as another user.
const AS_USER: &str = "As-User";

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Box answered 204: the user is deleted.
    Deleted,
    /// Box answered 404: nobody to delete, e.g. a resumed step whose first delete went
    /// through but whose answer was lost. (A user the app can no longer see reads the same.)
    AlreadyGone,
}

/// One Box API request, rebuilt for each attempt.
pub(super) struct ApiRequest<'a> {
    operation: &'static str,
    method: Method,
    /// Under the API base, without a query. Also names the resource in errors.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    as_user: Option<&'a str>,
    idempotency: Idempotency,
    timeout: Option<Duration>,
}

impl<'a> ApiRequest<'a> {
    /// An idempotent request without query or body.
    pub(super) fn new(operation: &'static str, method: Method, path: String) -> Self {
        Self {
            operation,
            method,
            path,
            query: Vec::new(),
            body: None,
            as_user: None,
            idempotency: Idempotency::Idempotent,
            timeout: None,
        }
    }

    pub(super) fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub(super) fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Acts as `user_id` (which must already be checked by [`box_user_id`]).
    pub(super) fn acting_as(mut self, user_id: &'a str) -> Self {
        self.as_user = Some(user_id);
        self
    }

    fn not_idempotent(mut self) -> Self {
        self.idempotency = Idempotency::NotIdempotent;
        self
    }

    fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }
}

/// `user_id` if it can be a Box user id (digits only), so that nothing else can reach a
/// URL path or a header.
pub(super) fn box_user_id(user_id: &str) -> Result<&str, ProviderError> {
    if !user_id.is_empty() && user_id.len() <= 32 && user_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(user_id)
    } else {
        Err(ProviderError::InvalidInput {
            provider: PROVIDER,
            detail: "a user id must be a Box id (digits only)".to_owned(),
        })
    }
}

/// `/2.0/users/{id}`.
pub(super) fn user_path(user_id: &str) -> Result<String, ProviderError> {
    Ok(format!("/2.0/users/{}", box_user_id(user_id)?))
}

/// Decodes a success body as `T`; the error names the path, never the content.
pub(super) fn decode<T: DeserializeOwned>(
    response: &HttpResponse,
    path: &str,
) -> Result<T, ProviderError> {
    response.json(PROVIDER).map_err(|err| match err {
        ProviderError::Malformed { provider, detail } => ProviderError::Malformed {
            provider,
            detail: format!("{detail} from {path}"),
        },
        other => other,
    })
}

/// Whether a refused delete names content the user still owns. The reference names no
/// code for it (the simulator uses `user_delete_failed_owns_content`), so the code and the
/// message are both read. Box's other refusals ("recently active", retention) do not match.
fn names_owned_content(error: &ClientError) -> bool {
    let code = error
        .code
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let message = error
        .message
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    code.contains("owns_content")
        || code.contains("own_content")
        || [
            "owns content",
            "own content",
            "owns any content",
            "own any content",
            "still owns",
            "still own",
        ]
        .iter()
        .any(|phrase| message.contains(phrase))
}

fn client_error(response: &HttpResponse) -> ClientError {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn transfer_pending(user_id: &str, error: ClientError, status: StatusCode) -> ProviderError {
    ProviderError::TransferPending {
        provider: PROVIDER,
        user_id: user_id.to_owned(),
        code: error
            .code
            .unwrap_or_else(|| format!("http_{}", status.as_u16())),
        message: error
            .message
            .unwrap_or_else(|| "a content transfer is still running".to_owned()),
    }
}

/// Box answered 200 but the user does not show the change asked for.
fn not_applied(field: &str, wanted: &str, got: &str) -> ProviderError {
    ProviderError::Malformed {
        provider: PROVIDER,
        detail: format!("Box answered 200 to setting {field} to {wanted}, but shows {got}"),
    }
}

impl BoxClient {
    /// Sends `request` with the bearer token (and `As-User` when set); on 401 a fresh token
    /// and one more try (Box did not act on a 401). Any other status is the caller's.
    pub(super) async fn send_api(
        &self,
        request: &ApiRequest<'_>,
    ) -> Result<HttpResponse, ProviderError> {
        let url = format!("{}{}", self.base, request.path);
        let token = self.token().await?;
        let response = self.send_api_once(request, &url, &token).await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::debug!(
            operation = request.operation,
            "box rejected the token; fetching a new one"
        );
        self.tokens.invalidate(&token).await;
        let token = self.token().await?;
        self.send_api_once(request, &url, &token).await
    }

    async fn send_api_once(
        &self,
        request: &ApiRequest<'_>,
        url: &str,
        token: &AccessToken,
    ) -> Result<HttpResponse, ProviderError> {
        let call = Call {
            idempotency: request.idempotency,
            timeout: request.timeout,
            ..Call::new(PROVIDER, request.operation, &self.config.retry)
        };
        self.http
            .send(call, |client| {
                let mut builder = client
                    .request(request.method.clone(), url)
                    .query(&request.query)
                    .bearer_auth(token.secret.expose_secret());
                if let Some(user_id) = request.as_user {
                    builder = builder.header(AS_USER, user_id);
                }
                if let Some(body) = &request.body {
                    builder = builder.json(body);
                }
                builder
            })
            .await
    }

    /// Sets the user's status (`active`, `inactive`, `cannot_delete_edit`,
    /// `cannot_delete_edit_upload`): `inactive` deactivates (content kept, seat still
    /// held), `active` restores. `notify` is Box's own e-mail to the user. Returns the user
    /// as Box has it afterwards.
    #[tracing::instrument(name = "box.set_user_status", skip_all, fields(user_id = %user_id, status = %status))]
    pub async fn set_user_status(
        &self,
        user_id: &str,
        status: &str,
        notify: bool,
    ) -> Result<BoxUser, ProviderError> {
        if !USER_STATUSES.contains(&status) {
            return Err(ProviderError::InvalidInput {
                provider: PROVIDER,
                detail: format!("{status:?} is not a Box user status"),
            });
        }
        let body = json!({ "status": status, "notify": notify });
        let user = self.update_user("users.set_status", user_id, body).await?;
        match user.status.as_deref() {
            Some(shown) if shown != status => Err(not_applied("status", status, shown)),
            _ => Ok(user),
        }
    }

    /// Sets the user's role (`coadmin` or `user`; `restore` puts back what a deactivate
    /// job saved). Returns the user as Box has it afterwards.
    #[tracing::instrument(name = "box.set_user_role", skip_all, fields(user_id = %user_id, role = %role))]
    pub async fn set_user_role(&self, user_id: &str, role: &str) -> Result<BoxUser, ProviderError> {
        if !SETTABLE_ROLES.contains(&role) {
            return Err(ProviderError::InvalidInput {
                provider: PROVIDER,
                detail: format!("{role:?} is not a role Box lets a client set"),
            });
        }
        let user = self
            .update_user("users.set_role", user_id, json!({ "role": role }))
            .await?;
        match user.role.as_deref() {
            Some(shown) if shown != role => Err(not_applied("role", role, shown)),
            _ => Ok(user),
        }
    }

    /// `PUT /2.0/users/{id}?fields=…` with `body`: the updated user, with every field the
    /// sync reads.
    async fn update_user(
        &self,
        operation: &'static str,
        user_id: &str,
        body: serde_json::Value,
    ) -> Result<BoxUser, ProviderError> {
        let request = ApiRequest::new(operation, Method::PUT, user_path(user_id)?)
            .query("fields", BOX_USER_FIELDS)
            .json(body);
        let response = self.send_api(&request).await?;
        if !response.status.is_success() {
            return Err(response_error(&response, request.path()));
        }
        let user: BoxUser = decode(&response, request.path())?;
        if user.id != user_id {
            return Err(ProviderError::Malformed {
                provider: PROVIDER,
                detail: format!("an update of {} answered another user", request.path()),
            });
        }
        Ok(user)
    }

    /// Moves everything `from_user` owns to `to_user` (`PUT /2.0/users/{from}/folders/0`),
    /// into a new folder in the destination's root. `notify` is Box's e-mail to the user.
    ///
    /// A 200 does not prove the transfer finished: until it has, a delete of `from_user`
    /// fails with [`ProviderError::TransferPending`]. A transfer refused because one from
    /// the same user still runs is `TransferPending` too. Not repeated on an unknown
    /// outcome (see the module docs); the client waits up to [`TRANSFER_TIMEOUT`].
    #[tracing::instrument(
        name = "box.transfer_owned_content",
        skip_all,
        fields(from_user = %from_user, to_user = %to_user)
    )]
    pub async fn transfer_owned_content(
        &self,
        from_user: &str,
        to_user: &str,
        notify: bool,
    ) -> Result<TransferredFolder, ProviderError> {
        let from = box_user_id(from_user)?;
        let to = box_user_id(to_user)?;
        if from == to {
            return Err(ProviderError::InvalidInput {
                provider: PROVIDER,
                detail: "a transfer needs two different users".to_owned(),
            });
        }
        let request = ApiRequest::new(
            "users.transfer_content",
            Method::PUT,
            format!("/2.0/users/{from}/folders/0"),
        )
        .query("notify", notify.to_string())
        .json(json!({ "owned_by": { "id": to } }))
        .not_idempotent()
        .timeout(TRANSFER_TIMEOUT);
        let response = self.send_api(&request).await?;
        if response.status.is_success() {
            let folder: TransferredFolder = decode(&response, request.path())?;
            tracing::info!(folder_id = %folder.id, "box content transfer answered");
            return Ok(folder);
        }
        let error = client_error(&response);
        if response.status == StatusCode::CONFLICT
            && error.code.as_deref() == Some(OPERATION_BLOCKED)
        {
            return Err(transfer_pending(from, error, response.status));
        }
        Err(response_error(&response, request.path()))
    }

    /// Deletes the user (`DELETE /2.0/users/{id}?notify=…`), never with `force`: this
    /// client has no way to send it, so a user who still owns content is never deleted
    /// with their files. That refusal is [`ProviderError::TransferPending`] (transfer
    /// first, or wait for a transfer that answered early). 404 is
    /// [`DeleteOutcome::AlreadyGone`], so a resumed step is idempotent.
    #[tracing::instrument(name = "box.delete_user", skip_all, fields(user_id = %user_id))]
    pub async fn delete_user(
        &self,
        user_id: &str,
        notify: bool,
    ) -> Result<DeleteOutcome, ProviderError> {
        let request = ApiRequest::new("users.delete", Method::DELETE, user_path(user_id)?)
            .query("notify", notify.to_string());
        let response = self.send_api(&request).await?;
        let status = response.status;
        if status.is_success() {
            tracing::info!("box user deleted");
            return Ok(DeleteOutcome::Deleted);
        }
        if status == StatusCode::NOT_FOUND {
            tracing::info!("box user already gone");
            return Ok(DeleteOutcome::AlreadyGone);
        }
        if matches!(status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) {
            let error = client_error(&response);
            if names_owned_content(&error) {
                return Err(transfer_pending(user_id, error, status));
            }
        }
        Err(response_error(&response, request.path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str, message: &str) -> ClientError {
        serde_json::from_value(json!({ "type": "error", "code": code, "message": message }))
            .unwrap()
    }

    #[test]
    fn owned_content_refusals_are_recognised_by_code_or_message() {
        assert!(names_owned_content(&error(
            "user_delete_failed_owns_content",
            "whatever"
        )));
        assert!(names_owned_content(&error(
            "bad_request",
            "User cannot be deleted because they still own content"
        )));
        assert!(names_owned_content(&error(
            "conflict",
            "The user still owns any content, was recently active, or recently joined"
        )));
        assert!(!names_owned_content(&error(
            "bad_request",
            "The user was recently active"
        )));
        assert!(!names_owned_content(&ClientError::default()));
    }

    #[test]
    fn only_box_ids_reach_a_path() {
        assert_eq!(user_path("12345").unwrap(), "/2.0/users/12345");
        for bad in ["", "me", "1/../2", "12?force=true", "1 2", &"9".repeat(33)] {
            assert!(
                matches!(user_path(bad), Err(ProviderError::InvalidInput { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_transfer_timeout_outlasts_boxs_ten_minutes() {
        assert!(TRANSFER_TIMEOUT > Duration::from_secs(10 * 60));
    }

    #[test]
    fn pending_errors_keep_boxs_code_or_name_the_status() {
        let pending = transfer_pending(
            "7",
            error(OPERATION_BLOCKED, "retry later"),
            StatusCode::CONFLICT,
        );
        assert!(matches!(
            &pending,
            ProviderError::TransferPending { user_id, code, .. }
                if user_id == "7" && code == OPERATION_BLOCKED
        ));
        let bare = transfer_pending("7", ClientError::default(), StatusCode::BAD_REQUEST);
        assert!(matches!(
            &bare,
            ProviderError::TransferPending { code, .. } if code == "http_400"
        ));
    }
}
