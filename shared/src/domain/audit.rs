use super::IntegrationId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who did something: an IAM principal (API), the local user (CLI) or Seatkeeper itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An IAM principal ARN, as API Gateway's IAM authorizer reports it.
    Iam { arn: String },
    /// Whoever runs the CLI or `seatkeeper serve` on this machine.
    Local { user: String },
    /// Seatkeeper on its own (schedules, automatic approvals).
    System,
}

impl Actor {
    /// A stable name for comparisons (requester vs approver) and display.
    pub fn principal(&self) -> String {
        match self {
            Actor::Iam { arn } => arn.clone(),
            Actor::Local { user } => format!("local:{user}"),
            Actor::System => "seatkeeper".to_owned(),
        }
    }
}

/// One line of an integration's audit trail: every change made in a SaaS tenant, every
/// approval, every connect and disconnect. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub integration_id: IntegrationId,
    /// Unique within the integration; with `at` it orders the trail.
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// What happened, snake_case (`integration_connected`, `settings_changed`, …).
    pub action: String,
    /// The provider user acted on, if any.
    pub target: Option<String>,
    /// Small, action-specific facts (never a secret).
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(
        integration_id: IntegrationId,
        at: DateTime<Utc>,
        actor: Actor,
        action: impl Into<String>,
    ) -> Self {
        Self {
            integration_id,
            id: uuid::Uuid::new_v4().simple().to_string(),
            at,
            actor,
            action: action.into(),
            target: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}
