//! Extractors whose every rejection is a JSON error (axum's own answer in plain text), and
//! the caller-identity middleware.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use lambda_http::request::RequestContext;
use seatkeeper_shared::domain::{Actor, IntegrationId, ReclaimJobId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body: `Content-Type: application/json` (else 415), at most 1 MiB (else
/// 413), well-formed, of the expected shape (else 400 naming the field).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
            Err(_) => {
                return Err(ApiError::bad_request(
                    "unreadable_body",
                    "the request body could not be read",
                ));
            }
        };
        parse_json(&bytes).map(JsonBody)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body may be at most {MAX_BODY_BYTES} bytes"),
    )
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(value: Option<&axum::http::HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Deserialises a whole JSON document; errors tell bad JSON (`malformed_json`) from JSON of
/// the wrong shape (`invalid_body`, naming the field: `reclaim.grace_period_days`). The
/// document is parsed first on its own because serde_json reports some shape errors (an enum
/// given `null`) as syntax errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let document: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request("invalid_body", inner.to_string())
        } else {
            ApiError::bad_request("invalid_body", format!("{path}: {inner}")).with_field(path)
        }
    })
}

/// The `{id}` of an integration route, parsed (400 when it cannot be an integration id).
pub struct IntegrationPath(pub IntegrationId);

impl<S: Send + Sync> FromRequestParts<S> for IntegrationPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request("invalid_path", "the path could not be decoded")
                    .with_field("id")
            })?;
        IntegrationId::parse(&raw)
            .map(IntegrationPath)
            .map_err(|e| {
                ApiError::bad_request("invalid_input", format!("id: {}", e.reason)).with_field("id")
            })
    }
}

/// The `{job}` of a reclamation route, parsed (400 when it cannot be a job id).
pub struct JobPath(pub ReclaimJobId);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request("invalid_path", "the path could not be decoded")
                    .with_field("job")
            })?;
        ReclaimJobId::parse(&raw).map(JobPath).map_err(|e| {
            ApiError::bad_request("invalid_input", format!("job: {}", e.reason)).with_field("job")
        })
    }
}

/// The query string as `T` (whose fields are all optional strings, parsed by the handler
/// with field-specific errors); unknown or repeated parameters are a 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::bad_request("invalid_query", detail.to_owned())
            })
    }
}

/// Who is calling, as the identity middleware found it.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// Resolves the caller before any handler runs: an [`Actor`] already in the request's
/// extensions (put there by `seatkeeper serve` after its token check) wins; otherwise the
/// IAM principal API Gateway's `AWS_IAM` authorizer verified. Neither: 401.
pub async fn require_caller(mut req: Request, next: Next) -> Response {
    if req.extensions().get::<Actor>().is_none() {
        match iam_principal(&req) {
            Some(arn) => {
                req.extensions_mut().insert(Actor::Iam { arn });
            }
            None => return ApiError::unauthenticated().into_response(),
        }
    }
    next.run(req).await
}

fn iam_principal(req: &Request) -> Option<String> {
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .iam
            .as_ref()?
            .user_arn
            .clone()
            .filter(|arn| !arn.trim().is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        outer: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn json_errors_name_the_field_and_tell_syntax_from_shape() {
        let e = parse_json::<Body>(br#"{"outer": {"n": "x"}}"#).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::BAD_REQUEST, "invalid_body")
        );
        let body = format!("{e:?}");
        assert!(body.contains("outer.n"), "{body}");
        assert_eq!(
            parse_json::<Body>(b"{").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(
            parse_json::<Body>(br#"{"outer": {"n": 1}} x"#)
                .unwrap_err()
                .code(),
            "malformed_json"
        );
        let unknown = parse_json::<Body>(br#"{"outer": {"n": 1}, "other": 2}"#).unwrap_err();
        assert!(format!("{unknown:?}").contains("other"));
    }

    #[test]
    fn json_content_types_are_recognised() {
        let v = |s: &'static str| Some(axum::http::HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("Application/JSON; charset=utf-8").as_ref()));
        assert!(!is_json(v("text/plain").as_ref()));
        assert!(!is_json(v("application/jsonx").as_ref()));
        assert!(!is_json(None));
    }
}
