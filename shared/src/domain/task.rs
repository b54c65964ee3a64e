use super::IntegrationId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The integration tasks of the "Application Task Tracking" chart (seed 001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Users.
    ApplicationRoster,
    /// Seats and plan.
    LicenseInformation,
    /// License types.
    LicenseDifferentiation,
    /// Login and activity data.
    ApplicationAccess,
    Reclamation,
}

impl TaskKind {
    pub const SYNC: [TaskKind; 4] = [
        TaskKind::ApplicationRoster,
        TaskKind::LicenseInformation,
        TaskKind::LicenseDifferentiation,
        TaskKind::ApplicationAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::ApplicationRoster => "application_roster",
            TaskKind::LicenseInformation => "license_information",
            TaskKind::LicenseDifferentiation => "license_differentiation",
            TaskKind::ApplicationAccess => "application_access",
            TaskKind::Reclamation => "reclamation",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Succeeded,
    Failed,
    /// Cut short (deadline); continued by another invocation.
    Continued,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub integration_id: IntegrationId,
    pub kind: TaskKind,
    pub sync_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: TaskStatus,
    pub duration_ms: u64,
    /// What the task did: accounts read, written, events read, …
    pub counts: BTreeMap<String, u64>,
    /// A safe, secret-free message.
    pub error: Option<String>,
}
