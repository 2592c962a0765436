//! `reconcile gate | plane | all`: one tick, then its metrics textfile and
//! its report.

use std::path::Path;
use std::process::ExitCode;

use super::{Context, EX_IOERR, exit_code_for};
use crate::cli::Format;
use crate::output::report::Report;
use crate::tick;

/// `gate`, `plane`, `all`: one tick, its metrics textfile and its report.
pub(super) fn run(ctx: &Context, command: tick::Command) -> anyhow::Result<ExitCode> {
    let cfg = ctx.config(true)?;
    if let Err(e) = crate::signals::install() {
        log::warn!("cannot handle stop signals; a stop kills the tick at once: {e}");
    }
    let opts = tick::Options {
        command,
        dry_run: ctx.dry_run,
        wait_lock: ctx.wait_lock,
    };
    let started = std::time::Instant::now();
    let textfile = cfg.metrics.textfile.as_ref().filter(|_| !ctx.dry_run);
    // Metrics are a side channel: a failure is logged, the exit code stands.
    let log_failure = |r: anyhow::Result<()>, path: &Path| {
        if let Err(e) = r {
            log::error!("metrics textfile {}: {e:#}", path.display());
        }
    };
    let report = match tick::run(&cfg, &opts) {
        Ok(outcome) => Report::new(outcome, &cfg.reconcile),
        Err(e) => {
            if let Some(path) = textfile
                && exit_code_for(&e) == EX_IOERR
            {
                let r = crate::output::metrics::write_after_sidecar_error(
                    path,
                    EX_IOERR,
                    started.elapsed(),
                );
                log_failure(r, path);
            }
            return Err(e);
        }
    };
    if let Some(path) = textfile {
        log_failure(
            crate::output::metrics::write(path, &report, started.elapsed()),
            path,
        );
    }
    print_report(&report, ctx.format, ctx.verbose, ctx.quiet);
    Ok(ExitCode::from(report.exit_code))
}

pub(super) fn print_report(report: &Report, format: Format, verbose: bool, quiet: bool) {
    match format {
        Format::Json => super::emit(&format!("{}\n", report.json())),
        Format::Text => super::emit(&report.text(verbose, quiet)),
    }
}
