//! Who may do what: the app's scopes, the caller's admin rights, and the `As-User` header.
//!
//! Box checks both the app (its scopes and settings) and the user the token acts as; either
//! failing answers 403. Missing scopes are `insufficient_scope`; missing user rights are
//! `access_denied_insufficient_permissions` ("Access denied - insufficient permission").

use axum::http::{HeaderMap, StatusCode};

use super::users::reachable;
use crate::boxsim::errors::BoxError;
use crate::boxsim::state::{AppScopes, Shared, lock};
use crate::boxsim::tenant::{Role, Tenant, UserKind};

pub(crate) const AS_USER: &str = "as-user";

/// The app scopes (and settings) endpoints need.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scope {
    ManageUsers,
    ManageEnterpriseProperties,
    RootReadwrite,
    ManageGroups,
}

impl Scope {
    fn granted(self, scopes: &AppScopes) -> bool {
        match self {
            Scope::ManageUsers => scopes.manage_users,
            Scope::ManageEnterpriseProperties => scopes.manage_enterprise_properties,
            Scope::RootReadwrite => scopes.root_readwrite,
            Scope::ManageGroups => scopes.manage_groups,
        }
    }
}

fn insufficient_scope() -> BoxError {
    BoxError::Api {
        status: StatusCode::FORBIDDEN,
        code: "insufficient_scope",
        message: "The request requires higher privileges than provided by the access token."
            .to_owned(),
    }
}

fn denied(message: &str) -> BoxError {
    BoxError::Api {
        status: StatusCode::FORBIDDEN,
        code: "access_denied_insufficient_permissions",
        message: message.to_owned(),
    }
}

const ACCESS_DENIED: &str = "Access denied - insufficient permission";

pub(super) fn require_scope(shared: &Shared, scope: Scope) -> Result<(), BoxError> {
    if scope.granted(&lock(&shared.scopes)) {
        Ok(())
    } else {
        Err(insufficient_scope())
    }
}

/// An admin, a co-admin or the service account (which Box treats as an admin).
fn is_admin_like(tenant: &Tenant, user: usize) -> bool {
    tenant.users[user].role != Role::User
}

/// User management needs admin rights, whatever the app's scopes.
pub(super) fn require_admin_caller(tenant: &Tenant, caller: usize) -> Result<(), BoxError> {
    if is_admin_like(tenant, caller) {
        Ok(())
    } else {
        Err(denied(ACCESS_DENIED))
    }
}

/// Whether `caller` may change or remove `target`: nobody but the primary admin touches the
/// primary admin, and co-admins cannot manage admins or other co-admins.
pub(super) fn may_manage(tenant: &Tenant, caller: usize, target: usize) -> Result<(), BoxError> {
    if target == tenant.admin() && caller != target {
        return Err(denied(ACCESS_DENIED));
    }
    let caller_is_coadmin = tenant.users[caller].role == Role::Coadmin;
    if caller_is_coadmin && caller != target && is_admin_like(tenant, target) {
        return Err(denied(ACCESS_DENIED));
    }
    Ok(())
}

/// The user a request acts as: the `As-User` user when the header is present, else the
/// token's own user. Box's rules: the app needs "Perform Actions as Users"; the caller must
/// be an admin, co-admin or the service account; only regular users (managed or app users)
/// can be impersonated, never an admin, a co-admin, a service account or the caller itself.
pub(super) fn acting_user(
    shared: &Shared,
    tenant: &Tenant,
    headers: &HeaderMap,
    caller: usize,
) -> Result<usize, BoxError> {
    let Some(value) = headers.get(AS_USER) else {
        return Ok(caller);
    };
    if !lock(&shared.scopes).as_user {
        return Err(denied(ACCESS_DENIED));
    }
    let target_id = value.to_str().map(str::trim).unwrap_or_default();
    if target_id.is_empty() || !target_id.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(BoxError::bad_request(
            "bad_request",
            "Invalid value for header 'As-User'",
        ));
    }
    require_admin_caller(tenant, caller)?;
    let target = tenant
        .user_index(target_id)
        .filter(|&index| reachable(shared, &tenant.users[index]))
        .ok_or_else(BoxError::not_found)?;
    let user = &tenant.users[target];
    if target == caller || user.kind == UserKind::ServiceAccount || is_admin_like(tenant, target) {
        return Err(denied(ACCESS_DENIED));
    }
    Ok(target)
}

/// Whether the request carries an `As-User` header at all (counted in the stats).
pub(super) fn has_as_user(headers: &HeaderMap) -> bool {
    headers.contains_key(AS_USER)
}
