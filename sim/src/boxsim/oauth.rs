//! Server-side state of the OAuth 2.0 authorization-code flow: pending codes and live
//! refresh tokens. Each successful code exchange starts a *grant* (one user's consent to the
//! app); the grant's refresh token is rotated on every refresh, and revoking any of the
//! grant's tokens ends the grant.
//!
//! Access tokens live in [`super::state::TokenStore`], tagged with their grant.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::state::random_token;
use super::stats::OAuthStats;

/// Box's authorization-code lifetime.
pub(crate) const DEFAULT_CODE_TTL: Duration = Duration::from_secs(30);
/// Box's refresh-token lifetime (60 days).
pub(crate) const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(60 * 86_400);
/// Expired codes are remembered this long so that a late exchange is told "expired" rather
/// than "doesn't exist"; after that they are purged to keep the map bounded.
const EXPIRED_CODE_MEMORY: Duration = Duration::from_secs(60);

pub(crate) type GrantId = u64;

/// `None` for a lifetime too long to represent: such a code or token never expires.
fn deadline(ttl: Duration) -> Option<Instant> {
    Instant::now().checked_add(ttl)
}

fn has_expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|at| at <= now)
}

/// Whether `uri` is an absolute http(s) URI usable as a redirect target: it must become a
/// `Location` header as is (visible ASCII only) and must not carry a fragment (RFC 6749 §3.1.2).
pub(crate) fn is_web_uri(uri: &str) -> bool {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return false;
    };
    let host = uri[scheme_len..]
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    !host.is_empty() && !uri.contains('#') && uri.bytes().all(|byte| byte.is_ascii_graphic())
}

struct PendingCode {
    user: usize,
    /// Where the code was delivered; an exchange naming another URI is refused.
    redirect_uri: String,
    expires_at: Option<Instant>,
}

struct LiveRefreshToken {
    user: usize,
    grant: GrantId,
    expires_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    /// Unknown, already used, or from another client.
    Invalid,
    Expired,
    RedirectMismatch,
}

/// What a successful code exchange or refresh hands out besides the access token.
#[derive(Debug)]
pub(crate) struct Granted {
    pub user: usize,
    pub grant: GrantId,
    pub refresh_token: String,
}

pub(crate) struct OAuthStore {
    code_ttl: Duration,
    refresh_token_ttl: Duration,
    codes: HashMap<String, PendingCode>,
    refresh_tokens: HashMap<String, LiveRefreshToken>,
    next_grant: GrantId,
    rng: StdRng,
    pub stats: OAuthStats,
}

impl OAuthStore {
    pub(crate) fn new(seed: u64, code_ttl: Duration, refresh_token_ttl: Duration) -> Self {
        Self {
            code_ttl,
            refresh_token_ttl,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            next_grant: 1,
            rng: StdRng::seed_from_u64(seed),
            stats: OAuthStats::default(),
        }
    }

    /// A fresh authorization code for `user`, delivered to `redirect_uri`.
    pub(crate) fn issue_code(&mut self, user: usize, redirect_uri: String) -> String {
        let now = Instant::now();
        self.codes.retain(|_, code| {
            code.expires_at
                .and_then(|at| at.checked_add(EXPIRED_CODE_MEMORY))
                .is_none_or(|forget_at| forget_at > now)
        });
        let code = random_token(&mut self.rng, 32);
        self.codes.insert(
            code.clone(),
            PendingCode {
                user,
                redirect_uri,
                expires_at: deadline(self.code_ttl),
            },
        );
        self.stats.authorizations_approved += 1;
        code
    }

    /// Redeems `code` and starts a grant. The code is spent by this attempt whatever its
    /// outcome: a code is single use, and a refused exchange must not leave it reusable.
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<Granted, CodeRefusal> {
        let outcome = match self.codes.remove(code) {
            None => Err(CodeRefusal::Invalid),
            Some(pending) if has_expired(pending.expires_at, Instant::now()) => {
                Err(CodeRefusal::Expired)
            }
            Some(pending) if redirect_uri.is_some_and(|given| given != pending.redirect_uri) => {
                Err(CodeRefusal::RedirectMismatch)
            }
            Some(pending) => Ok(pending.user),
        };
        match outcome {
            Ok(user) => {
                let grant = self.next_grant;
                self.next_grant += 1;
                let refresh_token = self.new_refresh_token(user, grant);
                self.stats.authorization_code_grants += 1;
                Ok(Granted {
                    user,
                    grant,
                    refresh_token,
                })
            }
            Err(refusal) => {
                self.stats.invalid_grants += 1;
                Err(refusal)
            }
        }
    }

    /// Spends `refresh_token` and returns its successor, or `None` when it is unknown,
    /// already used, revoked or expired.
    pub(crate) fn rotate(&mut self, refresh_token: &str) -> Option<Granted> {
        let live = self
            .refresh_tokens
            .remove(refresh_token)
            .filter(|live| !has_expired(live.expires_at, Instant::now()));
        let Some(live) = live else {
            self.stats.invalid_grants += 1;
            return None;
        };
        let refresh_token = self.new_refresh_token(live.user, live.grant);
        self.stats.refresh_token_grants += 1;
        Some(Granted {
            user: live.user,
            grant: live.grant,
            refresh_token,
        })
    }

    /// Removes a live refresh token and gives its grant.
    pub(crate) fn revoke_refresh_token(&mut self, refresh_token: &str) -> Option<GrantId> {
        self.refresh_tokens
            .remove(refresh_token)
            .map(|live| live.grant)
    }

    pub(crate) fn revoke_grant(&mut self, grant: GrantId) {
        self.refresh_tokens.retain(|_, live| live.grant != grant);
    }

    pub(crate) fn revoke_all_refresh_tokens(&mut self) {
        self.refresh_tokens.clear();
    }

    fn new_refresh_token(&mut self, user: usize, grant: GrantId) -> String {
        let now = Instant::now();
        // Grants abandoned by their clients would otherwise pile up.
        self.refresh_tokens
            .retain(|_, live| !has_expired(live.expires_at, now));
        let token = random_token(&mut self.rng, 64);
        self.refresh_tokens.insert(
            token.clone(),
            LiveRefreshToken {
                user,
                grant,
                expires_at: deadline(self.refresh_token_ttl),
            },
        );
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> OAuthStore {
        OAuthStore::new(1, DEFAULT_CODE_TTL, DEFAULT_REFRESH_TOKEN_TTL)
    }

    #[test]
    fn web_uris_are_absolute_http_without_fragment() {
        for good in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/callback?x=1",
            "HTTPS://EXAMPLE.COM",
        ] {
            assert!(is_web_uri(good), "{good}");
        }
        for bad in [
            "",
            "ftp://example.com/",
            "https:///path",
            "https://example.com/cb#frag",
            "https://example.com/a b",
            "https://exämple.com/",
            "/relative",
        ] {
            assert!(!is_web_uri(bad), "{bad}");
        }
    }

    #[test]
    fn a_code_is_spent_by_its_first_exchange_even_when_refused() {
        let mut store = store();
        let code = store.issue_code(3, "https://a.example/cb".to_owned());
        assert_eq!(
            store.redeem_code(&code, Some("https://b.example/cb")).err(),
            Some(CodeRefusal::RedirectMismatch)
        );
        assert_eq!(
            store.redeem_code(&code, None).err(),
            Some(CodeRefusal::Invalid)
        );
        assert_eq!(store.stats.invalid_grants, 2);
    }

    #[test]
    fn rotation_keeps_the_grant_and_kills_the_old_token() {
        let mut store = store();
        let code = store.issue_code(3, "https://a.example/cb".to_owned());
        let first = store.redeem_code(&code, None).unwrap();
        let second = store.rotate(&first.refresh_token).unwrap();
        assert_eq!((second.user, second.grant), (3, first.grant));
        assert_ne!(second.refresh_token, first.refresh_token);
        assert!(store.rotate(&first.refresh_token).is_none());
        store.revoke_grant(first.grant);
        assert!(store.rotate(&second.refresh_token).is_none());
    }

    #[test]
    fn huge_lifetimes_never_expire_instead_of_overflowing() {
        let mut store = OAuthStore::new(1, Duration::MAX, Duration::MAX);
        let code = store.issue_code(0, "https://a.example/cb".to_owned());
        let granted = store.redeem_code(&code, None).unwrap();
        assert!(store.rotate(&granted.refresh_token).is_some());
    }
}
