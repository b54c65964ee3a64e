//! The cookie that binds an OAuth state to the browser that started the connect
//! (RFC 9700 §4.7.1: the state alone proves nothing about who delivers it).
//!
//! `__Secure-seatkeeper-oauth=<nonce>; Path=/oauth/; Max-Age=600; HttpOnly; Secure;
//! SameSite=Lax`:
//! - `HttpOnly`: no script ever reads it.
//! - `SameSite=Lax`: sent on the provider's top-level redirect back to the callback (a
//!   cross-site GET navigation), not on cross-site subrequests or POSTs. `Strict` would
//!   drop it on that very redirect.
//! - `Path=/oauth/`: only the start and callback routes receive it, never the JSON API on
//!   the same host.
//! - The `__Secure-` prefix makes browsers refuse it unless set over HTTPS with `Secure`, so
//!   a plain-HTTP response (or a man in the middle on one) cannot plant or overwrite it.
//!   `__Host-` would also forbid `Domain`, but it requires `Path=/`, which would send the
//!   nonce with every API request; with no `Domain` attribute the cookie is host-only anyway.
//! - `Max-Age` equals the state's lifetime: the binding is useless once the state expired.
//!
//! One exception: when the public base URL is plain HTTP on a loopback address (`seatkeeper
//! serve` on a laptop), the cookie is `seatkeeper-oauth` without `Secure`: some browsers
//! drop `Secure` cookies set by `http://127.0.0.1`, and there is no network between the
//! browser and a loopback server for `Secure` to protect.

use axum::http::{HeaderMap, HeaderValue, header};
use seatkeeper_shared::services::oauth_connect::STATE_TTL;
use secrecy::{ExposeSecret, SecretString};

/// Cookie values longer than this are not ours and are ignored.
const MAX_VALUE_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingCookie {
    name: &'static str,
    secure: bool,
}

impl BindingCookie {
    pub const SECURE_NAME: &'static str = "__Secure-seatkeeper-oauth";
    pub const LOOPBACK_NAME: &'static str = "seatkeeper-oauth";
    pub const PATH: &'static str = "/oauth/";

    /// The cookie for a deployment served at `public_base_url`.
    pub fn for_base_url(public_base_url: &str) -> Self {
        if is_plain_http_loopback(public_base_url) {
            Self {
                name: Self::LOOPBACK_NAME,
                secure: false,
            }
        } else {
            Self {
                name: Self::SECURE_NAME,
                secure: true,
            }
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `Set-Cookie` binding the browser to `nonce` (base64url, so no quoting is needed).
    pub fn set(&self, nonce: &SecretString) -> Option<HeaderValue> {
        let value = format!(
            "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.name,
            nonce.expose_secret(),
            Self::PATH,
            STATE_TTL.num_seconds(),
            if self.secure { "; Secure" } else { "" },
        );
        let mut value = HeaderValue::try_from(value).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// `Set-Cookie` removing the binding (same name, path and attributes, expired).
    pub fn clear(&self) -> HeaderValue {
        let value = format!(
            "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
            self.name,
            Self::PATH,
            if self.secure { "; Secure" } else { "" },
        );
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Every value of this cookie in the request's `Cookie` header(s).
    pub fn values(&self, headers: &HeaderMap) -> Vec<SecretString> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, value)| {
                *name == self.name && !value.is_empty() && value.len() <= MAX_VALUE_LEN
            })
            .map(|(_, value)| SecretString::from(value.to_owned()))
            .collect()
    }
}

/// `http://127.0.0.1[:port]`, `http://localhost[:port]` or `http://[::1][:port]`.
fn is_plain_http_loopback(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_deployments_get_a_secure_prefixed_cookie() {
        let cookie = BindingCookie::for_base_url("https://sk.example.com");
        let set = cookie.set(&SecretString::from("abc")).unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            "__Secure-seatkeeper-oauth=abc; Path=/oauth/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(set.is_sensitive());
        assert_eq!(
            cookie.clear().to_str().unwrap(),
            "__Secure-seatkeeper-oauth=; Path=/oauth/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn only_plain_http_loopback_drops_secure() {
        for base in [
            "http://127.0.0.1:8080",
            "http://localhost:9",
            "http://[::1]:80",
        ] {
            let cookie = BindingCookie::for_base_url(base);
            assert_eq!(cookie.name(), BindingCookie::LOOPBACK_NAME, "{base}");
            let set = cookie.set(&SecretString::from("v")).unwrap();
            assert!(!set.to_str().unwrap().contains("Secure"), "{base}");
        }
        for base in [
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "https://127.0.0.1",
            "http://example.com",
        ] {
            assert_eq!(
                BindingCookie::for_base_url(base).name(),
                BindingCookie::SECURE_NAME,
                "{base}"
            );
        }
    }

    #[test]
    fn every_value_of_the_cookie_is_read() {
        let cookie = BindingCookie::for_base_url("https://x");
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Secure-seatkeeper-oauth=one; b=2"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Secure-seatkeeper-oauth=two;seatkeeper-oauth=three"),
        );
        let values: Vec<String> = cookie
            .values(&headers)
            .iter()
            .map(|v| v.expose_secret().to_owned())
            .collect();
        assert_eq!(values, ["one", "two"]);
    }
}
