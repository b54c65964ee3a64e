//! Box's error answers: ClientError JSON for the API, OAuth2Error for the token endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::hashing::mix64;

const HELP_URL: &str =
    "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/";

#[derive(Debug)]
pub(crate) enum BoxError {
    /// A ClientError body: `{"type":"error","status","code","message","help_url","request_id"}`.
    Api {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    /// Box answers 401 with an empty body and a `WWW-Authenticate` challenge.
    Unauthorized,
    /// An OAuth2Error body (always 400 here): `{"error","error_description"}`.
    OAuth {
        error: &'static str,
        description: &'static str,
    },
}

impl BoxError {
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::Api {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::Api {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "Not Found".to_owned(),
        }
    }

    pub(crate) fn insufficient_permissions() -> Self {
        Self::Api {
            status: StatusCode::FORBIDDEN,
            code: "access_denied_insufficient_permissions",
            message: "Access denied - insufficient permission".to_owned(),
        }
    }

    pub(crate) fn internal() -> Self {
        Self::Api {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_server_error",
            message: "Internal Server Error".to_owned(),
        }
    }

    pub(crate) fn oauth(error: &'static str, description: &'static str) -> Self {
        Self::OAuth { error, description }
    }
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:015x}", mix64(NEXT.fetch_add(1, Ordering::Relaxed)) >> 4)
}

fn client_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "status": status.as_u16(),
        "code": code,
        "message": message,
        "help_url": HELP_URL,
        "request_id": request_id(),
    });
    (status, Json(body)).into_response()
}

impl IntoResponse for BoxError {
    fn into_response(self) -> Response {
        match self {
            Self::Api {
                status,
                code,
                message,
            } => client_error(status, code, &message),
            Self::RateLimited { retry_after_secs } => {
                let mut response = client_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    "Request rate limit exceeded, please try again later",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid.""#,
                )],
            )
                .into_response(),
            Self::OAuth { error, description } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": error, "error_description": description })),
            )
                .into_response(),
        }
    }
}
