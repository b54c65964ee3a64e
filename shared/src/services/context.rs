//! Everything a request-serving entry point (the API and OAuth functions, `seatkeeper serve`)
//! hands to the services: built once per container or process, shared by every request.

use crate::clock::{Clock, SystemClock};
use crate::config::{box_api_url, box_authorize_url};
use crate::provider::box_client::BoxConfig;
use crate::provider::http::{HttpClient, HttpConfig};
use crate::secrets::Secrets;
use crate::secrets::aws::SecretsManagerSecrets;
use crate::store::Store;
use crate::store::dynamo::DynamoStore;
use crate::trigger::{LambdaSyncTrigger, SyncTrigger};
use std::sync::Arc;

#[derive(Clone)]
pub struct ServiceContext {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<dyn Clock>,
    pub http: HttpClient,
    pub box_config: BoxConfig,
    /// Box's authorize page (`SEATKEEPER_BOX_AUTHORIZE_URL`).
    pub box_authorize_url: String,
    /// The public HTTPS base of the API (`SEATKEEPER_PUBLIC_BASE_URL`, no trailing slash):
    /// OAuth `redirect_uri`s and start URLs are built from it, never from a Host header.
    pub public_base_url: String,
    /// Starts a sync elsewhere: the license-sync function in AWS, a task in-process locally.
    pub sync_trigger: Arc<dyn SyncTrigger>,
}

/// What a Lambda function serving HTTP reads from its environment (design §9); the
/// function reads the variables itself, so each function's needs stay visible in its crate.
pub struct AwsSettings {
    /// `SEATKEEPER_TABLE`.
    pub table: String,
    /// `SEATKEEPER_SYNC_FUNCTION`: license-sync, invoked asynchronously.
    pub sync_function: String,
    /// `SEATKEEPER_PUBLIC_BASE_URL`.
    pub public_base_url: String,
}

impl ServiceContext {
    /// The context in AWS: DynamoDB, Secrets Manager, and the license-sync function for syncs.
    pub fn for_aws(
        config: &aws_config::SdkConfig,
        settings: AwsSettings,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(config),
                settings.table,
            )),
            secrets: Arc::new(SecretsManagerSecrets::new(
                aws_sdk_secretsmanager::Client::new(config),
            )),
            clock: Arc::new(SystemClock),
            http: HttpClient::new(&HttpConfig::default())?,
            box_config: BoxConfig {
                api_base: box_api_url(),
                ..BoxConfig::default()
            },
            box_authorize_url: box_authorize_url(),
            public_base_url: settings.public_base_url.trim_end_matches('/').to_owned(),
            sync_trigger: Arc::new(LambdaSyncTrigger::new(
                aws_sdk_lambda::Client::new(config),
                settings.sync_function,
            )),
        })
    }
}
