use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use reclaim::{Deps, handle};
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::config::{box_api_url, env_var};
use seatkeeper_shared::notify::SnsNotifier;
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, HttpConfig};
use seatkeeper_shared::secrets::aws::SecretsManagerSecrets;
use seatkeeper_shared::services::ProviderSources;
use seatkeeper_shared::services::reclaim::{ReclaimOptions, Reclaimer};
use seatkeeper_shared::store::dynamo::DynamoStore;
use seatkeeper_shared::workflow::SfnWorkflow;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatkeeper_shared::logging::init_json();
    // Built once per container, shared by every invocation.
    let config = aws_config::load_from_env().await;
    let table = env_var("SEATKEEPER_TABLE").ok_or("SEATKEEPER_TABLE is not set")?;
    let topic =
        env_var("SEATKEEPER_NOTIFY_TOPIC_ARN").ok_or("SEATKEEPER_NOTIFY_TOPIC_ARN is not set")?;
    let state_machine =
        env_var("SEATKEEPER_STATE_MACHINE_ARN").ok_or("SEATKEEPER_STATE_MACHINE_ARN is not set")?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&config),
    ));
    let sources = ProviderSources::new(
        store.clone(),
        secrets,
        Arc::new(SystemClock),
        HttpClient::new(&HttpConfig::default())?,
        BoxConfig {
            api_base: box_api_url(),
            ..BoxConfig::default()
        },
    );
    let deps = Deps {
        reclaimer: Reclaimer {
            store,
            sources: Arc::new(sources),
            clock: Arc::new(SystemClock),
            notifier: Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(&config), topic)),
            options: ReclaimOptions::default(),
        },
        workflow: Arc::new(SfnWorkflow::new(
            aws_sdk_sfn::Client::new(&config),
            state_machine,
        )),
        deadline_margin: Duration::from_secs(60),
    };
    run(service_fn(|event: LambdaEvent<Value>| handle(event, &deps))).await
}
