//! The API's routes in one table: the router is built from these paths, and the OpenAPI
//! test checks this table, the router and `openapi.json` against each other.

pub const OPENAPI: &str = "/openapi.json";
pub const INTEGRATIONS: &str = "/integrations";
pub const INTEGRATIONS_OAUTH: &str = "/integrations/oauth";
pub const INTEGRATION: &str = "/integrations/{id}";
pub const LICENSES: &str = "/integrations/{id}/licenses";
pub const ACCOUNTS: &str = "/integrations/{id}/accounts";
pub const SNAPSHOTS: &str = "/integrations/{id}/snapshots";
pub const TASKS: &str = "/integrations/{id}/tasks";
pub const AUDIT: &str = "/integrations/{id}/audit";
pub const SYNC: &str = "/integrations/{id}/sync";
pub const RECLAMATIONS: &str = "/integrations/{id}/reclamations";
pub const RECLAMATION: &str = "/reclamations/{job}";
pub const RECLAMATION_ACCOUNTS: &str = "/reclamations/{job}/accounts";
pub const RECLAMATION_APPROVE: &str = "/reclamations/{job}/approve";
pub const RECLAMATION_REJECT: &str = "/reclamations/{job}/reject";
pub const RECLAMATION_CANCEL: &str = "/reclamations/{job}/cancel";
pub const RECLAMATION_RESTORE: &str = "/reclamations/{job}/restore";

/// Every (method, path) the router serves, paths in OpenAPI (and axum 0.8) template syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", OPENAPI),
    ("GET", INTEGRATIONS),
    ("POST", INTEGRATIONS),
    ("POST", INTEGRATIONS_OAUTH),
    ("GET", INTEGRATION),
    ("PATCH", INTEGRATION),
    ("DELETE", INTEGRATION),
    ("GET", LICENSES),
    ("GET", ACCOUNTS),
    ("GET", SNAPSHOTS),
    ("GET", TASKS),
    ("GET", AUDIT),
    ("POST", SYNC),
    ("GET", RECLAMATIONS),
    ("POST", RECLAMATIONS),
    ("GET", RECLAMATION),
    ("GET", RECLAMATION_ACCOUNTS),
    ("POST", RECLAMATION_APPROVE),
    ("POST", RECLAMATION_REJECT),
    ("POST", RECLAMATION_CANCEL),
    ("POST", RECLAMATION_RESTORE),
];
