//! `reconcile demo`: a real tick against the built-in simulated stack, with
//! a temporary config and sidecar, so a fresh checkout shows what the tool
//! does without any peer or configuration.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use super::tick::print_report;
use crate::cli::Format;
use crate::output::report::Report;
use crate::sim::{Scenario, Simulator};
use crate::tick;

pub fn run(ctx: &Context, metrics: Option<&Path>) -> anyhow::Result<ExitCode> {
    let sim = Simulator::start(Scenario::demo()).context("starting the simulator")?;
    let dir = temp_dir()?;
    let cfg = config(&sim, dir.path())?;
    let opts = tick::Options {
        command: tick::Command::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let outcome = tick::run(&cfg, &opts)?;
    let elapsed = outcome.elapsed;
    let report = Report::new(outcome, &cfg.reconcile);
    if let Some(path) = metrics {
        crate::output::metrics::write(path, &report, elapsed)
            .with_context(|| format!("metrics textfile {}", path.display()))?;
    }
    print_report(&report, ctx.format, ctx.verbose, false);
    if ctx.format == Format::Text {
        let messages = sim.telegram_messages();
        println!();
        println!("Telegram received {} message(s):", messages.len());
        for m in messages {
            println!("  {m}");
        }
    }
    Ok(ExitCode::from(report.exit_code))
}

fn config(sim: &Simulator, dir: &Path) -> anyhow::Result<crate::config::Config> {
    let path = sim.write_config(dir, "demo", "")?;
    // The operator's environment must not steer the demo.
    Ok(crate::config::load_with_env(&path, true, &|_| None)?)
}

/// A private temporary directory, removed on drop: owner-only, and
/// searchable (without the x bit only root could create the demo's files
/// in it; the container image runs as a plain user).
fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix("reconcile-demo-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating the demo's temporary directory")
}

#[cfg(test)]
mod tests {
    use super::temp_dir;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_demo_directory_is_owner_only_and_searchable() {
        let dir = temp_dir().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(dir.path().join("f"), "x").unwrap();
    }
}
