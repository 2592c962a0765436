//! The domain's own view of a task: what the orchestrator lists
//! (docs/orchestrator-api.md, the Task schema). The peers deserialize into
//! it; the decisions read it.

use serde::{Deserialize, Deserializer, Serialize};

use super::bounds::check_id;

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

    /// Ok when every string of the task fits [`MAX_ID`](super::bounds::MAX_ID) (docs/sidecar.md):
    /// each one is an identifier that reaches the sidecar (de-dup keys,
    /// intents, history) or a request, and a cut one would name another
    /// thing, so a task with a longer one is a bad entry.
    pub fn check_bounds(&self) -> Result<(), String> {
        let fields = [
            ("stage", Some(&self.stage)),
            ("repo", Some(&self.repo)),
            ("work_item_id", self.work_item_id.as_ref()),
            ("branch", self.branch.as_ref()),
            ("plane_issue_id", self.plane_issue_id.as_ref()),
            ("updated_at", self.updated_at.as_ref()),
            ("gate", self.gate.as_ref()),
        ];
        let deps = self.depends_on.iter().flat_map(|d| {
            [
                ("depends_on work_item_id", d.work_item_id.as_ref()),
                ("depends_on stage", d.stage.as_ref()),
            ]
        });
        for (what, value) in fields.into_iter().chain(deps) {
            if let Some(v) = value {
                check_id(&format!("task {} {what}", self.id), v)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_with_an_identifier_over_the_limit_is_refused() {
        let ok = Task {
            id: 1,
            stage: "testing".into(),
            work_item_id: Some("ET-1".into()),
            depends_on: vec![Dependency {
                id: 2,
                work_item_id: Some("ET-2".into()),
                stage: Some("done".into()),
            }],
            ..Task::default()
        };
        assert_eq!(ok.check_bounds(), Ok(()));
        let long = "x".repeat(super::super::bounds::MAX_ID + 1);
        let mut t = ok.clone();
        t.stage = long.clone();
        assert!(t.check_bounds().unwrap_err().contains("task 1 stage"));
        let mut t = ok.clone();
        t.plane_issue_id = Some(long.clone());
        assert!(t.check_bounds().unwrap_err().contains("plane_issue_id"));
        let mut t = ok;
        t.depends_on[0].stage = Some(long);
        assert!(t.check_bounds().unwrap_err().contains("depends_on stage"));
    }
}
