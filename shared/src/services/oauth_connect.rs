//! Connecting a tenant with OAuth (design §7, "Connect (OAuth)"; RFC 9700, the OAuth 2.0
//! Security Best Current Practice).
//!
//! Three steps, each consuming what the previous one stored:
//!
//! 1. [`issue_ticket`]: an authorised caller (`POST /integrations/oauth`, `seatkeeper serve`)
//!    gets a start URL carrying a single-use **ticket**. Without one, nobody on the internet
//!    can start a connect against this deployment.
//! 2. [`start`] (`GET /oauth/{provider}/start?ticket=`): spends the ticket and stores a
//!    single-use **state** bound to the browser by a random **binding nonce** the caller
//!    sets as an HttpOnly cookie; answers the provider's authorize URL.
//! 3. [`complete`] (`GET /oauth/{provider}/callback`): spends the state (a replay finds
//!    nothing), checks that it was issued for this provider (mix-up defence, RFC 9700
//!    §4.4) and to this browser (CSRF, RFC 9700 §4.7), exchanges the code, identifies the
//!    tenant, checks what the integration needs, stores the tokens and creates the
//!    integration or repairs the one already holding the tenant, audits, starts a sync.
//!
//! Tickets, states and binding nonces are bearer values of 256 random bits. The store only
//! ever sees their SHA-256 (the one-time item's key, the binding digest); the values travel
//! as [`SecretString`]. Expiry (10 minutes) is checked in the consuming write, not left to a
//! TTL. Nothing is stored for a refused callback: no secret, no integration, no claim.
//!
//! PKCE (RFC 7636, S256) is used where the provider supports it. Box does not document
//! PKCE (`shared/reference/box-api.md` §2), so Box flows go without; Salesforce's web-server
//! flow will set [`ProviderFlow::pkce`]. The verifier is never stored: it is derived from
//! the binding nonce (which only the browser holds) and the state, so a stolen code cannot
//! be redeemed without the victim's cookie.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::ServiceContext;
use super::tokens::{OAuthTokens, TokenError, TokenLockOptions};
use crate::domain::{
    Actor, AuditEntry, AuthKind, BoxPlan, Integration, IntegrationId, IntegrationStatus,
    InvalidInput, Provider, ReclaimGuardRails, SyncSettings,
};
use crate::provider::ProviderError;
use crate::provider::box_client::oauth::{
    BOX_OAUTH_SCOPES, BoxOAuthApp, BoxTokenSet, authorize_url, exchange_code, revoke,
};
use crate::provider::box_client::{BoxClient, BoxCurrentUser};
use crate::secrets::{IntegrationCredentials, OAuthAppCredentials, SecretsError};
use crate::store::{OneTimeItem, OneTimeKind, OneTimeTake, StoreError};
use crate::trigger::SyncRequest;

/// How long a start URL can be used.
pub const TICKET_TTL: TimeDelta = TimeDelta::minutes(10);
/// How long a user has to sign in and consent at the provider. Also the binding cookie's
/// `Max-Age`.
pub const STATE_TTL: TimeDelta = TimeDelta::minutes(10);

/// Random bytes in a ticket, a state and a binding nonce (RFC 9700 asks for at least 128
/// bits of entropy in a state; these are bearer values, so twice that).
const TOKEN_BYTES: usize = 32;
/// Longest ticket or state read from a request; anything longer is not ours.
const MAX_BEARER_LEN: usize = 256;
/// The provider calls of a callback (exchange, identity, capability probes) must end well
/// within API Gateway's 30 s, so a slow provider gets a page instead of a gateway timeout.
const PROVIDER_PHASE_TIMEOUT: Duration = Duration::from_secs(20);
/// A repair writes new tokens under the token lock; it waits this long for a refresh
/// running elsewhere to finish (then writes anyway: the new grant is what the admin just
/// approved), so the page still comes back within API Gateway's 30 s.
const TOKEN_LOCK_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Tickets

/// What an authorised caller asks for: a new integration, or (with `integration_id`) a
/// reconnect of an existing OAuth integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTicketRequest {
    pub provider: Provider,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub plan: Option<BoxPlan>,
    #[serde(default)]
    pub purchased_seats: Option<u64>,
    /// Reconnect (repair) this integration: the tenant that authorises must be its tenant.
    #[serde(default)]
    pub integration_id: Option<IntegrationId>,
}

impl OAuthTicketRequest {
    /// Checks what can be checked without the store.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.provider == Provider::Salesforce {
            return Err(InvalidInput::new(
                "provider",
                "connecting Salesforce with OAuth is not supported yet",
            ));
        }
        if self.integration_id.is_none() && self.plan.is_none() {
            return Err(InvalidInput::new(
                "plan",
                "is required for a new Box integration (Box has no API that tells the plan)",
            ));
        }
        if let Some(seats) = self.purchased_seats {
            Integration::check_seats(seats)?;
        }
        if let Some(name) = &self.name {
            Integration::check_name("name", name)?;
        }
        Ok(())
    }
}

/// The answer to an authorised ticket request. `start_url` carries the ticket: show it to
/// the user who asked, never log it.
#[derive(Debug, Clone)]
pub struct OAuthTicketIssued {
    /// `{public_base_url}/oauth/{provider}/start?ticket=...`
    pub start_url: SecretString,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthConnectError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("integration {0} not found")]
    NotFound(IntegrationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a ticket stands for, stored under the ticket's digest.
#[derive(Debug, Serialize, Deserialize)]
struct TicketPayload {
    request: OAuthTicketRequest,
    requester: Actor,
}

/// Validates the request and stores a single-use ticket for it (10 minutes).
#[tracing::instrument(skip_all, fields(provider = %request.provider))]
pub async fn issue_ticket(
    ctx: &ServiceContext,
    request: OAuthTicketRequest,
    actor: &Actor,
) -> Result<OAuthTicketIssued, OAuthConnectError> {
    request.validate()?;
    if let Some(id) = &request.integration_id {
        let integration = ctx
            .store
            .get_integration(id)
            .await?
            .ok_or_else(|| OAuthConnectError::NotFound(id.clone()))?;
        if integration.provider != request.provider || integration.auth_kind != AuthKind::OAuth {
            return Err(InvalidInput::new(
                "integration_id",
                format!(
                    "integration {id} is not a {} OAuth integration",
                    request.provider
                ),
            )
            .into());
        }
        if integration.status == IntegrationStatus::Disconnected {
            // Its tenant claim was released; a new connect makes a new integration.
            return Err(InvalidInput::new(
                "integration_id",
                format!("integration {id} is disconnected: connect the tenant anew"),
            )
            .into());
        }
    }
    let now = ctx.clock.now();
    let ticket = random_bearer();
    let expires_at = now + TICKET_TTL;
    let provider = request.provider;
    let payload = TicketPayload {
        request,
        requester: actor.clone(),
    };
    ctx.store
        .put_one_time(&OneTimeItem {
            kind: OneTimeKind::OAuthTicket,
            key: digest_hex(&ticket),
            expires_at,
            payload: to_payload(&payload)?,
        })
        .await?;
    tracing::info!(requester = %actor.principal(), "OAuth connect ticket issued");
    let start_url = format!(
        "{}/oauth/{}/start?ticket={}",
        base_url(ctx),
        provider.as_str(),
        ticket.expose_secret()
    );
    Ok(OAuthTicketIssued {
        start_url: SecretString::from(start_url),
        expires_at,
    })
}

// ---------------------------------------------------------------------------------------
// Provider flows

/// How Seatkeeper runs the authorization-code flow at one provider.
#[derive(Debug, Clone, Copy)]
pub struct ProviderFlow {
    pub provider: Provider,
    /// Send an S256 code challenge and the verifier (RFC 7636).
    pub pkce: bool,
    pub scopes: &'static [&'static str],
}

impl ProviderFlow {
    /// The flow for `provider`, or `None` when OAuth connects are not supported for it.
    pub fn for_provider(provider: Provider) -> Option<ProviderFlow> {
        match provider {
            // Box documents no PKCE (reference §2); the scopes are the ones seed 000 asks
            // the admin to grant, minus "Manage app users" (app users hold no seat and are
            // never acted on) plus root_readwrite, which reclaim's content transfer needs.
            Provider::Box => Some(ProviderFlow {
                provider,
                pkce: false,
                scopes: BOX_OAUTH_SCOPES,
            }),
            Provider::Salesforce => None,
        }
    }
}

/// `{public_base_url}/oauth/{provider}/callback`: built from configuration, never from a
/// Host header, and one per provider so a response cannot be delivered to the wrong flow.
pub fn redirect_uri(ctx: &ServiceContext, provider: Provider) -> String {
    format!("{}/oauth/{}/callback", base_url(ctx), provider.as_str())
}

fn base_url(ctx: &ServiceContext) -> &str {
    ctx.public_base_url.trim_end_matches('/')
}

// ---------------------------------------------------------------------------------------
// Start

/// Where to send the browser, and the nonce to bind it with (the caller sets it as an
/// HttpOnly cookie limited to the OAuth routes, for [`STATE_TTL`]).
#[derive(Debug)]
pub struct OAuthStart {
    /// The provider's authorize URL; it carries the state.
    pub authorize_url: SecretString,
    pub browser_binding: SecretString,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthStartError {
    #[error("no ticket was given")]
    MissingTicket,
    #[error("the ticket is unknown or was already used")]
    UnknownTicket,
    #[error("the ticket has expired")]
    ExpiredTicket,
    #[error("the ticket was issued for {issued_for}, not {used_at}")]
    WrongProvider {
        issued_for: Provider,
        used_at: Provider,
    },
    #[error("connecting {0} with OAuth is not supported yet")]
    Unsupported(Provider),
    #[error("the OAuth app for {provider} is not configured")]
    AppNotConfigured {
        provider: Provider,
        #[source]
        source: SecretsError,
    },
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a state stands for, stored under the state's digest.
#[derive(Debug, Serialize, Deserialize)]
struct StatePayload {
    provider: Provider,
    request: OAuthTicketRequest,
    requester: Actor,
    /// Hex SHA-256 of the browser binding nonce.
    binding_sha256: String,
    /// Whether the authorize request carried a PKCE challenge.
    #[serde(default)]
    pkce: bool,
}

/// Spends the ticket and prepares the redirect to the provider.
#[tracing::instrument(skip_all, fields(provider = %provider))]
pub async fn start(
    ctx: &ServiceContext,
    provider: Provider,
    ticket: Option<&SecretString>,
) -> Result<OAuthStart, OAuthStartError> {
    let ticket = ticket
        .filter(|t| !t.expose_secret().is_empty())
        .ok_or(OAuthStartError::MissingTicket)?;
    if !is_bearer_shaped(ticket) {
        return Err(OAuthStartError::UnknownTicket);
    }
    let flow = ProviderFlow::for_provider(provider);
    // The app is loaded before the ticket is spent, so a misconfigured deployment does not
    // burn the user's ticket.
    let app = match flow {
        Some(_) => Some(
            load_app(ctx, provider)
                .await
                .map_err(|source| OAuthStartError::AppNotConfigured { provider, source })?,
        ),
        None => None,
    };
    let now = ctx.clock.now();
    let item = match ctx
        .store
        .take_one_time(OneTimeKind::OAuthTicket, &digest_hex(ticket), now)
        .await?
    {
        OneTimeTake::Taken(item) => item,
        OneTimeTake::Expired => return Err(OAuthStartError::ExpiredTicket),
        OneTimeTake::Missing => return Err(OAuthStartError::UnknownTicket),
    };
    let ticket: TicketPayload = serde_json::from_value(item.payload)
        .map_err(|e| OAuthStartError::Corrupt(format!("OAuth ticket: {e}")))?;
    if ticket.request.provider != provider {
        return Err(OAuthStartError::WrongProvider {
            issued_for: ticket.request.provider,
            used_at: provider,
        });
    }
    let (Some(flow), Some(app)) = (flow, app) else {
        return Err(OAuthStartError::Unsupported(provider));
    };

    let state = random_bearer();
    let binding = random_bearer();
    let expires_at = now + STATE_TTL;
    let payload = StatePayload {
        provider,
        request: ticket.request,
        requester: ticket.requester,
        binding_sha256: digest_hex(&binding),
        pkce: flow.pkce,
    };
    let mut url = match provider {
        Provider::Box => authorize_url(
            &ctx.box_authorize_url,
            &app.client_id,
            &redirect_uri(ctx, provider),
            state.expose_secret(),
            flow.scopes,
        ),
        Provider::Salesforce => return Err(OAuthStartError::Unsupported(provider)),
    };
    if flow.pkce {
        let verifier = pkce_verifier(&binding, &state);
        url.push_str("&code_challenge=");
        url.push_str(&pkce_challenge(&verifier));
        url.push_str("&code_challenge_method=S256");
    }
    ctx.store
        .put_one_time(&OneTimeItem {
            kind: OneTimeKind::OAuthState,
            key: digest_hex(&state),
            expires_at,
            payload: serde_json::to_value(&payload)
                .map_err(|e| OAuthStartError::Corrupt(format!("OAuth state: {e}")))?,
        })
        .await?;
    tracing::info!(
        requester = %payload.requester.principal(),
        reconnect = payload.request.integration_id.is_some(),
        "OAuth connect started"
    );
    Ok(OAuthStart {
        authorize_url: SecretString::from(url),
        browser_binding: binding,
        expires_at,
    })
}

// ---------------------------------------------------------------------------------------
// Callback

/// The callback's query and the browser's binding cookie(s), as received.
#[derive(Debug, Default)]
pub struct OAuthCallback {
    pub code: Option<SecretString>,
    pub state: Option<SecretString>,
    /// The `error` parameter of an error response; its description is never read: it is
    /// attacker-controllable text.
    pub error: Option<String>,
    /// Every value of the binding cookie the browser sent (a browser may send several).
    pub browser_bindings: Vec<SecretString>,
}

/// The `error` of an authorization error response (RFC 6749 §4.1.2.1), reduced to what
/// changes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The user (or the provider's policy) declined.
    AccessDenied,
    /// `server_error`, `temporarily_unavailable`: worth trying again later.
    Unavailable,
    /// Anything else (`invalid_request`, `invalid_scope`, `unauthorized_client`, …):
    /// the request or the app's configuration was refused.
    Refused,
}

impl AuthorizeError {
    pub fn parse(code: &str) -> AuthorizeError {
        match code {
            "access_denied" => AuthorizeError::AccessDenied,
            "server_error" | "temporarily_unavailable" => AuthorizeError::Unavailable,
            _ => AuthorizeError::Refused,
        }
    }
}

/// A completed connect.
#[derive(Debug, Clone)]
pub struct OAuthConnected {
    pub integration: Integration,
    /// An existing integration was repaired (new tokens, status back to connected).
    pub repaired: bool,
    /// Whether the first sync could be started (a failure is logged, not fatal).
    pub sync_started: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthCallbackError {
    #[error("the callback carries no state")]
    MissingState,
    #[error("the state is unknown or was already used")]
    UnknownState,
    #[error("the state has expired")]
    ExpiredState,
    #[error("the state was issued for {issued_for}, not {used_at}")]
    WrongProvider {
        issued_for: Provider,
        used_at: Provider,
    },
    #[error("the connect was started in another browser")]
    BrowserMismatch,
    #[error("the provider answered with an error ({0:?})")]
    Authorize(AuthorizeError),
    #[error("the callback carries no authorization code")]
    MissingCode,
    #[error("the authorization code was refused ({code}): it is invalid, used or expired")]
    CodeRejected { code: String },
    #[error("the OAuth app for {provider} is not configured")]
    AppNotConfigured {
        provider: Provider,
        #[source]
        source: SecretsError,
    },
    #[error("connecting {0} with OAuth is not supported yet")]
    Unsupported(Provider),
    #[error("the Box account that authorised belongs to no enterprise")]
    NoEnterprise,
    #[error("the app cannot {capability}: {fix}")]
    MissingCapability {
        capability: &'static str,
        fix: &'static str,
    },
    #[error("integration {0} no longer exists")]
    IntegrationGone(IntegrationId),
    #[error("the tenant that authorised is not the tenant of integration {integration_id}")]
    WrongTenant { integration_id: IntegrationId },
    #[error(
        "{provider} tenant {tenant_id} is connected with client credentials as integration {integration_id}"
    )]
    TenantHeldByClientCredentials {
        provider: Provider,
        tenant_id: String,
        integration_id: IntegrationId,
    },
    #[error("{provider} tenant {tenant_id} is already connected as integration {integration_id}")]
    TenantClaimed {
        provider: Provider,
        tenant_id: String,
        integration_id: String,
    },
    #[error("{0} did not answer in time")]
    ProviderTimeout(Provider),
    #[error(transparent)]
    Provider(ProviderError),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
}

/// Who authorised, at which tenant, with which tokens.
struct Authorised {
    app: BoxOAuthApp,
    tokens: BoxTokenSet,
    me: BoxCurrentUser,
    enterprise_id: String,
}

/// Spends the state, checks it, exchanges the code and stores the integration.
#[tracing::instrument(skip_all, fields(provider = %provider))]
pub async fn complete(
    ctx: &ServiceContext,
    provider: Provider,
    callback: OAuthCallback,
) -> Result<OAuthConnected, OAuthCallbackError> {
    let state = callback
        .state
        .as_ref()
        .filter(|s| !s.expose_secret().is_empty())
        .ok_or(OAuthCallbackError::MissingState)?;
    if !is_bearer_shaped(state) {
        return Err(OAuthCallbackError::UnknownState);
    }
    let now = ctx.clock.now();
    // Spent first, whatever follows: a state is good for one answer, even a refused one.
    let item = match ctx
        .store
        .take_one_time(OneTimeKind::OAuthState, &digest_hex(state), now)
        .await?
    {
        OneTimeTake::Taken(item) => item,
        OneTimeTake::Expired => return Err(OAuthCallbackError::ExpiredState),
        OneTimeTake::Missing => return Err(OAuthCallbackError::UnknownState),
    };
    let payload: StatePayload = serde_json::from_value(item.payload)
        .map_err(|e| OAuthCallbackError::Corrupt(format!("OAuth state: {e}")))?;
    if payload.provider != provider {
        return Err(OAuthCallbackError::WrongProvider {
            issued_for: payload.provider,
            used_at: provider,
        });
    }
    let Some(expected) = decode_digest(&payload.binding_sha256) else {
        return Err(OAuthCallbackError::Corrupt(
            "OAuth state: binding digest".into(),
        ));
    };
    // Any of the cookie values may be ours (another flow or a stale cookie may sit beside
    // it); each comparison takes the same time whatever the bytes.
    let bound = callback
        .browser_bindings
        .iter()
        .fold(false, |found, candidate| {
            digests_equal(&digest(candidate), &expected) | found
        });
    if !bound {
        return Err(OAuthCallbackError::BrowserMismatch);
    }
    if let Some(error) = &callback.error {
        let error = AuthorizeError::parse(error);
        tracing::info!(
            ?error,
            "the provider answered the authorize request with an error"
        );
        return Err(OAuthCallbackError::Authorize(error));
    }
    let code = callback
        .code
        .as_ref()
        .filter(|c| !c.expose_secret().is_empty())
        .ok_or(OAuthCallbackError::MissingCode)?;
    // A provider with PKCE (`payload.pkce`) re-derives its verifier here with
    // `pkce_verifier(binding, state)` from the cookie value that passed the check above.
    match ProviderFlow::for_provider(provider).map(|flow| flow.provider) {
        Some(Provider::Box) => complete_box(ctx, payload, code).await,
        Some(Provider::Salesforce) | None => Err(OAuthCallbackError::Unsupported(provider)),
    }
}

async fn complete_box(
    ctx: &ServiceContext,
    payload: StatePayload,
    code: &SecretString,
) -> Result<OAuthConnected, OAuthCallbackError> {
    let provider = Provider::Box;
    let app = load_app(ctx, provider)
        .await
        .map_err(|source| OAuthCallbackError::AppNotConfigured { provider, source })?;
    let app = BoxOAuthApp {
        client_id: app.client_id,
        client_secret: app.client_secret,
    };
    let authorised =
        match tokio::time::timeout(PROVIDER_PHASE_TIMEOUT, authorise_box(ctx, app, code)).await {
            Ok(result) => result?,
            Err(_) => return Err(OAuthCallbackError::ProviderTimeout(provider)),
        };
    // From here on fresh tokens exist: any refusal revokes them, so no grant is left behind
    // that nothing will ever use.
    match store_box(ctx, &payload, &authorised).await {
        Ok(connected) => Ok(connected),
        Err(e) => {
            revoke_quietly(ctx, &authorised.app, &authorised.tokens.refresh_token).await;
            Err(e)
        }
    }
}

/// Exchanges the code, then checks who authorised and what the grant can do.
async fn authorise_box(
    ctx: &ServiceContext,
    app: BoxOAuthApp,
    code: &SecretString,
) -> Result<Authorised, OAuthCallbackError> {
    let tokens = exchange_code(
        &ctx.http,
        &ctx.box_config,
        &app,
        code,
        &redirect_uri(ctx, Provider::Box),
        ctx.clock.now(),
    )
    .await
    .map_err(|e| match e {
        ProviderError::Auth { code, .. } if code == "invalid_grant" => {
            OAuthCallbackError::CodeRejected { code }
        }
        other => OAuthCallbackError::Provider(other),
    })?;
    let checked = check_box_grant(ctx, &tokens).await;
    match checked {
        Ok((me, enterprise_id)) => Ok(Authorised {
            app,
            tokens,
            me,
            enterprise_id,
        }),
        Err(e) => {
            revoke_quietly(ctx, &app, &tokens.refresh_token).await;
            Err(e)
        }
    }
}

/// The same capability checks as the CCG connect (`services::connect`): the token names
/// an enterprise, sees its managed users, and may read its event stream.
async fn check_box_grant(
    ctx: &ServiceContext,
    tokens: &BoxTokenSet,
) -> Result<(BoxCurrentUser, String), OAuthCallbackError> {
    let client = BoxClient::with_access_token(
        ctx.box_config.clone(),
        ctx.http.clone(),
        tokens.access_token.clone(),
    );
    let me = client
        .current_user()
        .await
        .map_err(OAuthCallbackError::Provider)?;
    let enterprise_id = me
        .enterprise_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(OAuthCallbackError::NoEnterprise)?;
    match client.probe_managed_users().await {
        Ok(n) if n > 0 => {}
        Ok(_) | Err(ProviderError::Forbidden { .. }) => {
            return Err(OAuthCallbackError::MissingCapability {
                capability: "see the enterprise's managed users",
                fix: "sign in as a Box admin, and give the app App + Enterprise Access and the 'Manage users' scope",
            });
        }
        Err(e) => return Err(OAuthCallbackError::Provider(e)),
    }
    match client.probe_events().await {
        Ok(()) => {}
        Err(ProviderError::Forbidden { .. }) => {
            return Err(OAuthCallbackError::MissingCapability {
                capability: "read the enterprise event stream (last logins)",
                fix: "sign in as a Box admin, and give the app the 'Manage enterprise properties' scope",
            });
        }
        Err(e) => return Err(OAuthCallbackError::Provider(e)),
    }
    Ok((me, enterprise_id))
}

/// Creates the integration, or repairs the one holding the tenant.
async fn store_box(
    ctx: &ServiceContext,
    payload: &StatePayload,
    authorised: &Authorised,
) -> Result<OAuthConnected, OAuthCallbackError> {
    let provider = Provider::Box;
    let tenant_id = authorised.enterprise_id.as_str();
    let owner = ctx.store.tenant_owner(provider, tenant_id).await?;
    let target = match &payload.request.integration_id {
        // A reconnect names its integration: the tenant must be that integration's.
        Some(id) => {
            let integration = ctx
                .store
                .get_integration(id)
                .await?
                .ok_or_else(|| OAuthCallbackError::IntegrationGone(id.clone()))?;
            if integration.tenant_id != tenant_id {
                return Err(OAuthCallbackError::WrongTenant {
                    integration_id: id.clone(),
                });
            }
            if owner.as_ref() != Some(id) {
                return Err(match owner {
                    Some(other) => held_by(ctx, provider, tenant_id, other).await?,
                    // Disconnected since the ticket: its claim was released.
                    None => OAuthCallbackError::IntegrationGone(id.clone()),
                });
            }
            Some(integration)
        }
        None => match owner {
            None => None,
            Some(owner) => {
                let integration = ctx.store.get_integration(&owner).await?;
                match integration {
                    Some(i) if i.auth_kind == AuthKind::OAuth && i.provider == provider => Some(i),
                    _ => return Err(held_by(ctx, provider, tenant_id, owner).await?),
                }
            }
        },
    };
    let (integration, repaired) = match target {
        Some(existing) => (repair(ctx, payload, authorised, existing).await?, true),
        None => (create(ctx, payload, authorised).await?, false),
    };

    let action = if repaired {
        "integration_reconnected"
    } else {
        "integration_connected"
    };
    let entry = AuditEntry::new(
        integration.id.clone(),
        ctx.clock.now(),
        payload.requester.clone(),
        action,
    )
    .with_detail(serde_json::json!({
        "provider": provider.as_str(),
        "tenant_id": tenant_id,
        "auth_kind": "oauth",
        "authorised_by": authorised.me.id,
    }));
    if let Err(e) = ctx.store.append_audit(&entry).await {
        // The connect happened; refusing the page now would not undo it.
        tracing::error!(integration_id = %integration.id, error = %e, action, "could not write the audit entry");
    }
    let sync_started = match ctx
        .sync_trigger
        .trigger(&SyncRequest {
            integration_id: integration.id.clone(),
            checkpoint: None,
        })
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(integration_id = %integration.id, error = %e, "could not start the first sync");
            false
        }
    };
    tracing::info!(integration_id = %integration.id, repaired, "OAuth connect completed");
    Ok(OAuthConnected {
        integration,
        repaired,
        sync_started,
    })
}

/// The error for a tenant held by `owner`, which this connect may not repair.
async fn held_by(
    ctx: &ServiceContext,
    provider: Provider,
    tenant_id: &str,
    owner: IntegrationId,
) -> Result<OAuthCallbackError, OAuthCallbackError> {
    let auth_kind = ctx
        .store
        .get_integration(&owner)
        .await?
        .map(|i| i.auth_kind);
    Ok(match auth_kind {
        Some(AuthKind::ClientCredentials) => OAuthCallbackError::TenantHeldByClientCredentials {
            provider,
            tenant_id: tenant_id.to_owned(),
            integration_id: owner,
        },
        _ => OAuthCallbackError::TenantClaimed {
            provider,
            tenant_id: tenant_id.to_owned(),
            integration_id: owner.to_string(),
        },
    })
}

fn oauth_credentials(app: &BoxOAuthApp, tokens: &BoxTokenSet) -> IntegrationCredentials {
    IntegrationCredentials {
        client_id: app.client_id.clone(),
        client_secret: None,
        refresh_token: Some(tokens.refresh_token.clone()),
        access_token: Some(tokens.access_token.clone()),
        access_token_expires_at: Some(tokens.expires_at),
    }
}

async fn create(
    ctx: &ServiceContext,
    payload: &StatePayload,
    authorised: &Authorised,
) -> Result<Integration, OAuthCallbackError> {
    let request = &payload.request;
    let plan = request.plan.ok_or_else(|| {
        OAuthCallbackError::Corrupt("OAuth state: a new integration without a plan".into())
    })?;
    let now = ctx.clock.now();
    let id = IntegrationId::generate();
    let tenant_id = authorised.enterprise_id.clone();
    let integration = Integration {
        secret_name: Integration::secret_name_for(&id),
        id,
        provider: Provider::Box,
        name: request
            .name
            .clone()
            .or_else(|| authorised.me.enterprise_name.clone())
            .unwrap_or_else(|| format!("Box {tenant_id}")),
        auth_kind: AuthKind::OAuth,
        tenant_id,
        status: IntegrationStatus::Connected,
        enabled: true,
        plan: Some(plan),
        purchased_seats: request.purchased_seats,
        // The admin who authorised: Seatkeeper acts as them, so they are never reclaimed.
        service_user_id: Some(authorised.me.id.clone()),
        sync: SyncSettings::default(),
        created_at: now,
        updated_at: now,
        last_sync: None,
        reclaim: ReclaimGuardRails::default(),
        seat_price: None,
    };
    oauth_credentials(&authorised.app, &authorised.tokens)
        .save(ctx.secrets.as_ref(), &integration.secret_name)
        .await?;
    if let Err(e) = ctx.store.create_integration(&integration).await {
        // Lost a race for the tenant (or the store failed): leave nothing behind.
        if let Err(cleanup) = ctx.secrets.delete(&integration.secret_name).await {
            tracing::error!(error = %cleanup, "could not delete the secret of a refused integration");
        }
        return Err(match e {
            StoreError::TenantClaimed {
                provider,
                tenant_id,
                integration_id,
            } => OAuthCallbackError::TenantClaimed {
                provider,
                tenant_id,
                integration_id,
            },
            other => OAuthCallbackError::Store(other),
        });
    }
    Ok(integration)
}

/// New tokens for an existing integration, written under its token lock (so a refresh
/// running elsewhere cannot overwrite them with the old grant's rotation), then the
/// integration set back to `connected` as the admin who authorised.
async fn repair(
    ctx: &ServiceContext,
    payload: &StatePayload,
    authorised: &Authorised,
    existing: Integration,
) -> Result<Integration, OAuthCallbackError> {
    let id = existing.id.clone();
    // The grant being replaced, ended below so no live grant is left that nothing uses.
    let previous = IntegrationCredentials::load_fresh(ctx.secrets.as_ref(), &existing.secret_name)
        .await
        .ok()
        .and_then(|creds| creds.refresh_token);
    OAuthTokens::new(ctx.store.clone(), ctx.secrets.clone(), ctx.clock.clone())
        .with_options(TokenLockOptions {
            max_wait: TOKEN_LOCK_WAIT,
            ..TokenLockOptions::default()
        })
        .store_new_tokens(&existing, &authorised.app.client_id, &authorised.tokens)
        .await?;
    let request = payload.request.clone();
    let user_id = authorised.me.id.clone();
    let now = ctx.clock.now();
    let updated = ctx
        .store
        .modify_integration(&id, &move |integration: &mut Integration| {
            // A disabled integration stays disabled: that was an admin's decision.
            if integration.status != IntegrationStatus::Disabled {
                integration.status = IntegrationStatus::Connected;
            }
            integration.service_user_id = Some(user_id.clone());
            if let Some(name) = &request.name {
                integration.name = name.clone();
            }
            if let Some(plan) = request.plan {
                integration.plan = Some(plan);
            }
            if let Some(seats) = request.purchased_seats {
                integration.purchased_seats = Some(seats);
            }
            integration.updated_at = now;
        })
        .await?;
    if let Some(old) = previous
        && old.expose_secret() != authorised.tokens.refresh_token.expose_secret()
    {
        revoke_quietly(ctx, &authorised.app, &old).await;
    }
    Ok(updated)
}

/// Ends a grant at the provider; a failure is logged (the token then expires unused).
async fn revoke_quietly(ctx: &ServiceContext, app: &BoxOAuthApp, token: &SecretString) {
    if let Err(e) = revoke(&ctx.http, &ctx.box_config, app, token).await {
        tracing::warn!(error = %e, "could not revoke an unused Box grant");
    }
}

async fn load_app(
    ctx: &ServiceContext,
    provider: Provider,
) -> Result<OAuthAppCredentials, SecretsError> {
    OAuthAppCredentials::load(ctx.secrets.as_ref(), provider).await
}

// ---------------------------------------------------------------------------------------
// Bearer values, digests, PKCE

/// 256 random bits, base64url without padding (43 characters).
fn random_bearer() -> SecretString {
    let mut bytes = [0u8; TOKEN_BYTES];
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a ticket or state from a request could be one of ours; anything else is
/// refused without a store round trip.
fn is_bearer_shaped(value: &SecretString) -> bool {
    let value = value.expose_secret();
    value.len() <= MAX_BEARER_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn digest(value: &SecretString) -> [u8; 32] {
    Sha256::digest(value.expose_secret().as_bytes()).into()
}

/// The store key of a bearer value: hex SHA-256, never the value itself.
fn digest_hex(value: &SecretString) -> String {
    hex(&digest(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Compares two digests in time independent of where they differ.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The PKCE verifier of a flow (RFC 7636 §4.1: 43 characters of base64url), derived from
/// the binding nonce and the state so it never has to be stored.
pub fn pkce_verifier(binding: &SecretString, state: &SecretString) -> SecretString {
    let mut hasher = Sha256::new();
    hasher.update(b"seatkeeper/pkce/v1\0");
    hasher.update(binding.expose_secret().as_bytes());
    hasher.update(b"\0");
    hasher.update(state.expose_secret().as_bytes());
    SecretString::from(URL_SAFE_NO_PAD.encode(hasher.finalize()))
}

/// `code_challenge` for the S256 method: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

fn to_payload<T: Serialize>(value: &T) -> Result<serde_json::Value, OAuthConnectError> {
    serde_json::to_value(value)
        .map_err(|e| OAuthConnectError::Store(StoreError::Corrupt(format!("OAuth ticket: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OAuthTicketRequest {
        OAuthTicketRequest {
            provider: Provider::Box,
            name: Some("Acme".into()),
            plan: Some(BoxPlan::Business),
            purchased_seats: Some(100),
            integration_id: None,
        }
    }

    #[test]
    fn a_new_box_integration_needs_a_plan() {
        let no_plan = OAuthTicketRequest {
            plan: None,
            ..request()
        };
        assert_eq!(no_plan.validate().unwrap_err().field, "plan");
        let reconnect = OAuthTicketRequest {
            plan: None,
            integration_id: Some(IntegrationId::parse("abc").unwrap()),
            ..request()
        };
        assert!(reconnect.validate().is_ok());
    }

    #[test]
    fn salesforce_is_refused_clearly() {
        let sf = OAuthTicketRequest {
            provider: Provider::Salesforce,
            ..request()
        };
        let err = sf.validate().unwrap_err();
        assert_eq!(err.field, "provider");
        assert!(err.reason.contains("not supported yet"), "{err}");
    }

    #[test]
    fn names_and_seats_are_bounded() {
        for bad in ["", "   ", "a\u{7}b"] {
            let r = OAuthTicketRequest {
                name: Some(bad.into()),
                ..request()
            };
            assert_eq!(r.validate().unwrap_err().field, "name", "{bad:?}");
        }
        let long = OAuthTicketRequest {
            name: Some("x".repeat(101)),
            ..request()
        };
        assert_eq!(long.validate().unwrap_err().field, "name");
        let ok = OAuthTicketRequest {
            name: Some("é".repeat(100)),
            ..request()
        };
        assert!(ok.validate().is_ok());
        let seats = OAuthTicketRequest {
            purchased_seats: Some(10_000_001),
            ..request()
        };
        assert_eq!(seats.validate().unwrap_err().field, "seats");
    }

    #[test]
    fn bearer_values_are_long_random_and_url_safe() {
        let a = random_bearer();
        let b = random_bearer();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 43);
        assert!(is_bearer_shaped(&a));
        assert!(!is_bearer_shaped(&SecretString::from("a b")));
        assert!(!is_bearer_shaped(&SecretString::from("x".repeat(257))));
    }

    #[test]
    fn digests_round_trip_through_hex_and_compare() {
        let value = SecretString::from("state-value");
        let d = digest(&value);
        let hex = digest_hex(&value);
        assert_eq!(hex.len(), 64);
        assert_ne!(hex, "state-value");
        assert_eq!(decode_digest(&hex), Some(d));
        assert!(digests_equal(&d, &d));
        assert!(!digests_equal(&d, &digest(&SecretString::from("other"))));
        assert_eq!(decode_digest("zz"), None);
        assert_eq!(decode_digest(&"g".repeat(64)), None);
    }

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        // RFC 7636 appendix B.
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let derived = pkce_verifier(&SecretString::from("n"), &SecretString::from("s"));
        assert_eq!(derived.expose_secret().len(), 43);
        assert_ne!(
            derived.expose_secret(),
            pkce_verifier(&SecretString::from("n2"), &SecretString::from("s")).expose_secret()
        );
    }

    #[test]
    fn authorize_errors_reduce_to_what_changes_the_answer() {
        assert_eq!(
            AuthorizeError::parse("access_denied"),
            AuthorizeError::AccessDenied
        );
        assert_eq!(
            AuthorizeError::parse("temporarily_unavailable"),
            AuthorizeError::Unavailable
        );
        assert_eq!(AuthorizeError::parse("<script>"), AuthorizeError::Refused);
    }

    #[test]
    fn box_flow_has_no_pkce_and_the_seeded_scopes() {
        let flow = ProviderFlow::for_provider(Provider::Box).unwrap();
        assert!(!flow.pkce);
        for scope in [
            "manage_managed_users",
            "manage_groups",
            "manage_enterprise_properties",
        ] {
            assert!(flow.scopes.contains(&scope), "{scope}");
        }
        assert!(ProviderFlow::for_provider(Provider::Salesforce).is_none());
    }
}
