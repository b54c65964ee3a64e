//! The `oauth-callback` Lambda function: builds the service context once per container,
//! then serves the public `/oauth/{provider}/start` and `/callback` routes.

use lambda_http::Error;
use seatkeeper_oauth_callback::{not_found, router, validate_public_base_url};
use seatkeeper_shared::config::env_var;
use seatkeeper_shared::services::{AwsSettings, ServiceContext};

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatkeeper_shared::logging::init_json();
    let config = aws_config::load_from_env().await;
    let settings = AwsSettings {
        table: env_var("SEATKEEPER_TABLE").ok_or("SEATKEEPER_TABLE is not set")?,
        sync_function: env_var("SEATKEEPER_SYNC_FUNCTION")
            .ok_or("SEATKEEPER_SYNC_FUNCTION is not set")?,
        public_base_url: env_var("SEATKEEPER_PUBLIC_BASE_URL")
            .ok_or("SEATKEEPER_PUBLIC_BASE_URL is not set")?,
        // The OAuth pages start no reclaim executions and send no notices.
        state_machine_arn: None,
        notify_topic_arn: None,
    };
    let ctx = ServiceContext::for_aws(&config, settings)?;
    validate_public_base_url(&ctx.public_base_url)?;
    // API Gateway only routes /oauth/* here; anything else still gets a page, not a panic.
    lambda_http::run(router(ctx).fallback(not_found)).await
}
