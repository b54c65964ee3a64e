//! Everything a request-serving entry point (the API and OAuth functions, `seatkeeper serve`)
//! hands to the services: built once per container or process, shared by every request.

use crate::clock::{Clock, SystemClock};
use crate::config::{box_api_url, box_authorize_url};
use crate::domain::TaskToken;
use crate::notify::SnsNotifier;
use crate::provider::box_client::BoxConfig;
use crate::provider::http::{HttpClient, HttpConfig};
use crate::secrets::Secrets;
use crate::secrets::aws::SecretsManagerSecrets;
use crate::services::ProviderSources;
use crate::services::reclaim::{LogNotifier, Notifier, ReclaimOptions, Reclaimer};
use crate::store::Store;
use crate::store::dynamo::DynamoStore;
use crate::trigger::{LambdaSyncTrigger, SyncTrigger};
use crate::workflow::{
    ExecutionId, ExecutionInput, SfnWorkflow, TaskFailure, Workflow, WorkflowError,
};
use async_trait::async_trait;
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
    /// Runs reclaim executions and answers their approval waits: the Step Functions state
    /// machine in AWS, [`LocalWorkflow`](super::local_workflow::LocalWorkflow) locally.
    pub workflow: Arc<dyn Workflow>,
    /// Admins' notices from steps the API runs itself (a cancel that finalises a job).
    pub notifier: Arc<dyn Notifier>,
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
    /// `SEATKEEPER_STATE_MACHINE_ARN`: the reclaim state machine, for a function serving the
    /// reclaim routes; `None` elsewhere (oauth-callback), whose workflow then refuses.
    pub state_machine_arn: Option<String>,
    /// `SEATKEEPER_NOTIFY_TOPIC_ARN`, where the function has one (the API has none: the
    /// approval notices come from the reclaim function; the API's own go to its log).
    pub notify_topic_arn: Option<String>,
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
            workflow: match settings.state_machine_arn {
                Some(arn) => Arc::new(SfnWorkflow::new(aws_sdk_sfn::Client::new(config), arn)),
                None => Arc::new(NoWorkflow),
            },
            notifier: match settings.notify_topic_arn {
                Some(topic) => Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(config), topic)),
                None => Arc::new(LogNotifier),
            },
        })
    }

    /// The reclaim service over this context's store, provider sources and notifier.
    pub fn reclaimer(&self) -> Reclaimer {
        Reclaimer {
            store: self.store.clone(),
            sources: Arc::new(self.provider_sources()),
            clock: self.clock.clone(),
            notifier: self.notifier.clone(),
            options: ReclaimOptions::default(),
        }
    }

    /// Provider clients over this context's store, secrets and HTTP client.
    pub fn provider_sources(&self) -> ProviderSources {
        ProviderSources::new(
            self.store.clone(),
            self.secrets.clone(),
            self.clock.clone(),
            self.http.clone(),
            self.box_config.clone(),
        )
    }
}

/// The workflow of a function that serves no reclaim route: every call is refused (a
/// route that needs one would be a wiring mistake, reported as a failure, never ignored).
struct NoWorkflow;

impl NoWorkflow {
    fn refused(operation: &'static str) -> WorkflowError {
        WorkflowError::Service {
            operation,
            source: "this function has no reclaim state machine (SEATKEEPER_STATE_MACHINE_ARN)"
                .into(),
        }
    }
}

#[async_trait]
impl Workflow for NoWorkflow {
    async fn start(&self, _input: &ExecutionInput) -> Result<ExecutionId, WorkflowError> {
        Err(Self::refused("start an execution"))
    }

    async fn send_task_success(
        &self,
        _token: &TaskToken,
        _output: &serde_json::Value,
    ) -> Result<(), WorkflowError> {
        Err(Self::refused("send a task success"))
    }

    async fn send_task_failure(
        &self,
        _token: &TaskToken,
        _failure: TaskFailure,
        _cause: &str,
    ) -> Result<(), WorkflowError> {
        Err(Self::refused("send a task failure"))
    }

    async fn stop(&self, _execution: &ExecutionId, _cause: &str) -> Result<(), WorkflowError> {
        Err(Self::refused("stop an execution"))
    }
}
