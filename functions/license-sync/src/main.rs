use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use license_sync::{Deps, SyncEvent, handle};
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::config::{box_api_url, env_var};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, HttpConfig};
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::services::{ProviderSources, SyncOptions};
use seatkeeper_shared::store::dynamo::DynamoStore;
use seatkeeper_shared::trigger::LambdaSyncTrigger;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatkeeper_shared::logging::init_json();
    // Built once per container, shared by every invocation.
    let config = aws_config::load_from_env().await;
    let table = env_var("SEATKEEPER_TABLE").ok_or("SEATKEEPER_TABLE is not set")?;
    let function = env_var("SEATKEEPER_SYNC_FUNCTION")
        .or_else(|| env_var("AWS_LAMBDA_FUNCTION_NAME"))
        .ok_or("SEATKEEPER_SYNC_FUNCTION is not set")?;
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&config),
    ));
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let deps = Deps {
        store: store.clone(),
        sources: Arc::new(ProviderSources::new(
            store,
            secrets,
            Arc::new(SystemClock),
            HttpClient::new(&HttpConfig::default())?,
            BoxConfig {
                api_base: box_api_url(),
                ..BoxConfig::default()
            },
        )),
        trigger: Arc::new(LambdaSyncTrigger::new(
            aws_sdk_lambda::Client::new(&config),
            function,
        )),
        clock: Arc::new(SystemClock),
        options: SyncOptions::default(),
        deadline_margin: Duration::from_secs(60),
    };
    run(service_fn(|event: LambdaEvent<SyncEvent>| {
        handle(event, &deps)
    }))
    .await
}
