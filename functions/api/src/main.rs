//! The `api` Lambda function: builds the service context once per container, then serves
//! API Gateway HTTP API (v2) events with the router.

use lambda_http::Error;
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::config::{box_api_url, box_authorize_url, env_var};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, HttpConfig};
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::services::ServiceContext;
use seatkeeper_shared::store::dynamo::DynamoStore;
use seatkeeper_shared::trigger::LambdaSyncTrigger;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatkeeper_shared::logging::init_json();
    let config = aws_config::load_from_env().await;
    let table = env_var("SEATKEEPER_TABLE").ok_or("SEATKEEPER_TABLE is not set")?;
    let sync_function =
        env_var("SEATKEEPER_SYNC_FUNCTION").ok_or("SEATKEEPER_SYNC_FUNCTION is not set")?;
    let public_base_url = env_var("SEATKEEPER_PUBLIC_BASE_URL")
        .ok_or("SEATKEEPER_PUBLIC_BASE_URL is not set")?
        .trim_end_matches('/')
        .to_owned();
    let ctx = ServiceContext {
        store: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            table,
        )),
        secrets: Arc::new(SecretsManagerSecrets::new(
            aws_sdk_secretsmanager::Client::new(&config),
        )),
        clock: Arc::new(SystemClock),
        http: HttpClient::new(&HttpConfig::default())?,
        box_config: BoxConfig {
            api_base: box_api_url(),
            ..BoxConfig::default()
        },
        box_authorize_url: box_authorize_url(),
        public_base_url,
        sync_trigger: Arc::new(LambdaSyncTrigger::new(
            aws_sdk_lambda::Client::new(&config),
            sync_function,
        )),
    };
    lambda_http::run(seatkeeper_api::router(ctx)).await
}
