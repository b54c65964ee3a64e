//! Settings from the environment (design §9). Provider URLs can be overridden for tests and
//! local runs only through these variables, never through a request.

pub const DEFAULT_BOX_API_URL: &str = "https://api.box.com";

/// Reads a variable, treating an empty value as unset.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `SEATKEEPER_BOX_API_URL`, without a trailing slash.
pub fn box_api_url() -> String {
    env_var("SEATKEEPER_BOX_API_URL")
        .unwrap_or_else(|| DEFAULT_BOX_API_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

pub const DEFAULT_BOX_AUTHORIZE_URL: &str = "https://account.box.com/api/oauth2/authorize";

/// `SEATKEEPER_BOX_AUTHORIZE_URL`: Box's authorize page.
pub fn box_authorize_url() -> String {
    env_var("SEATKEEPER_BOX_AUTHORIZE_URL").unwrap_or_else(|| DEFAULT_BOX_AUTHORIZE_URL.to_owned())
}
