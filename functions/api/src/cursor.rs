//! Page cursors as the API hands them out: base64url (no padding) of a small JSON value.
//! Opaque to callers; decoding checks the shape, so garbage is a 400, never a read at a
//! position nobody handed out (the store checks its own part again).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Real cursors are a few hundred characters; longer input is refused before decoding.
const MAX_LEN: usize = 4096;

pub fn encode<T: Serialize>(value: &T) -> Result<String, ApiError> {
    let json = serde_json::to_vec(value).map_err(|e| ApiError::internal(&e))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

pub fn decode<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    if raw.is_empty() || raw.len() > MAX_LEN {
        return Err(ApiError::bad_cursor(
            "the cursor is not one this API handed out",
        ));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| ApiError::bad_cursor("the cursor is not one this API handed out"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_cursor("the cursor is not one this API handed out"))
}

/// The audit listing's cursor: the store's own, tagged so another listing's is refused.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCursor {
    pub audit: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = AuditCursor {
            audit: "abc".into(),
        };
        let raw = encode(&c).unwrap();
        assert!(
            raw.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode::<AuditCursor>(&raw).unwrap().audit, "abc");
        for bad in ["", "!!!", "bm90IGpzb24", &"A".repeat(5000)] {
            let e = decode::<AuditCursor>(bad).unwrap_err();
            assert_eq!(e.code(), "bad_cursor");
        }
        // Valid JSON of another shape.
        let other = URL_SAFE_NO_PAD.encode(br#"{"f":"all"}"#);
        assert!(decode::<AuditCursor>(&other).is_err());
    }
}
