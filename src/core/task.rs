//! The domain's own view of a task: what the orchestrator lists
//! (docs/orchestrator-api.md, the Task schema). The peers deserialize into
//! it; the decisions read it.

use serde::{Deserialize, Deserializer, Serialize};

/// A task as the orchestrator lists it. Missing optional fields are
/// null/false/0/[]; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Task {
    pub id: i64,
    pub stage: String,
    #[serde(default, deserialize_with = "null_default")]
    pub repo: String,
    #[serde(default)]
    pub work_item_id: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub plane_issue_id: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub age_s: Option<f64>,
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub active_job: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub developer_retry_count: i64,
    #[serde(default)]
    pub escalated: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub depends_on: Vec<Dependency>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Dependency {
    pub id: i64,
    #[serde(default)]
    pub work_item_id: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
}

impl Task {
    /// The work item id when present and non-empty.
    pub fn work_item(&self) -> Option<&str> {
        self.work_item_id.as_deref().filter(|s| !s.is_empty())
    }

    pub fn issue_id(&self) -> Option<&str> {
        self.plane_issue_id.as_deref().filter(|s| !s.is_empty())
    }
}

pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
