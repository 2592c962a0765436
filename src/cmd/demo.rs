//! `reconcile demo`: a real tick against the built-in simulated stack, with
//! a temporary config and sidecar, so a fresh checkout shows what the tool
//! does without any peer or configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::Format;
use crate::output::report::Report;
use crate::sim::{Scenario, Simulator};
use crate::tick;

pub fn run(format: Format, verbose: bool, metrics: Option<&Path>) -> anyhow::Result<ExitCode> {
    let sim = Simulator::start(Scenario::demo()).context("starting the simulator")?;
    let dir = TempDir::new()?;
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
    crate::cmd::print_report(&report, format, verbose, false);
    if format == Format::Text {
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

/// Owner-only, and searchable: without the x bit only root could create
/// the demo's files in it (the container image runs as a plain user).
fn set_private_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("reconcile-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        set_private_dir(&p);
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_demo_directory_is_owner_only_and_searchable() {
        let dir = TempDir::new().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(dir.path().join("f"), "x").unwrap();
    }
}
