//! `reconcile status`: the persisted counters, from the sidecar alone; the
//! configuration (when there is one) only adds the switches.

use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;
use crate::cli::Format;
use crate::config;
use crate::store::{self, SidecarReader};

/// The original reconciler's status() snapshot, from the sidecar alone; the config (when
/// there is one) only adds enabled / plane_enabled / interval.
pub(super) fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = ctx.optional_config("status");
    let (enabled, plane_enabled, interval) = match &cfg {
        Some(c) => (
            Some(c.reconcile.enabled),
            Some(c.reconcile.plane_enabled),
            c.reconcile.interval_s,
        ),
        None => env_switches(),
    };
    let state_path = ctx.state_path(cfg.as_ref());
    let snapshot = match SidecarReader::open(&state_path)? {
        Some(s) => s.snapshot()?.at(time::OffsetDateTime::now_utc()),
        None => store::Snapshot::default(),
    };
    let mut value = serde_json::to_value(&snapshot).context("serializing the status")?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("enabled".into(), serde_json::json!(enabled));
        obj.insert("plane_enabled".into(), serde_json::json!(plane_enabled));
        obj.insert("interval".into(), serde_json::json!(interval));
        obj.insert(
            "state_path".into(),
            serde_json::json!(state_path.display().to_string()),
        );
    }
    match ctx.format {
        Format::Json => super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )),
        Format::Text => super::emit(&status_text(&value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Without a config file: each switch its variable sets, read by the same
/// parser a tick uses; unset ones are unknown (null).
fn env_switches() -> (Option<bool>, Option<bool>, Option<u64>) {
    let set = |name: &str| std::env::var_os(name).is_some();
    if ![
        "ORCH_RECONCILE_ENABLED",
        "ORCH_RECONCILE_PLANE_ENABLED",
        "ORCH_RECONCILE_INTERVAL_S",
    ]
    .iter()
    .any(|n| set(n))
    {
        return (None, None, None);
    }
    match config::reconcile_from_env() {
        Ok(r) => (
            Some(r.enabled).filter(|_| set("ORCH_RECONCILE_ENABLED")),
            Some(r.plane_enabled).filter(|_| set("ORCH_RECONCILE_PLANE_ENABLED")),
            r.interval_s,
        ),
        Err(e) => {
            log::warn!("status: {e}");
            (None, None, None)
        }
    }
}

fn status_text(value: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(obj) = value.as_object() {
        for (k, v) in obj {
            let shown = match v {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(m) if m.is_empty() => "-".to_string(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            out.push_str(&format!("{k}: {shown}\n"));
        }
    }
    out
}
