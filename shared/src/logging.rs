//! Logging: JSON lines in Lambda (CloudWatch), human-readable lines in the CLI.
//! Secrets never reach a log: they travel as `SecretString`, which prints as redacted.

use tracing_subscriber::EnvFilter;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// JSON logs for Lambda functions.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Plain logs on stderr for the CLI (`verbose` lowers the level to debug).
pub fn init_cli(verbose: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(if verbose { "debug" } else { "warn" }))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
