//! The `api` Lambda function: builds the service context once per container, then serves
//! API Gateway HTTP API (v2) events with the router.

use lambda_http::Error;
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
        state_machine_arn: Some(
            env_var("SEATKEEPER_STATE_MACHINE_ARN")
                .ok_or("SEATKEEPER_STATE_MACHINE_ARN is not set")?,
        ),
        // The approval notices are the reclaim function's; the API's own go to its log.
        notify_topic_arn: None,
    };
    let ctx = ServiceContext::for_aws(&config, settings)?;
    lambda_http::run(seatkeeper_api::router(ctx)).await
}
