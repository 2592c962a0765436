//! The subcommands, one file each, over a `Context` resolved once from the
//! command line; and the mapping of errors to exit codes.

pub mod check;
pub mod conformance;
mod context;
pub mod demo;
mod forget;
pub mod history;
pub mod man;
mod outbox;
mod status;
mod tick;

pub use context::Context;

use std::process::ExitCode;

use crate::cli::{Cli, Command, Format, OutboxAction};
use crate::config::ConfigError;
use crate::store::{self, LockBusy, LockStopped, Sidecar, SidecarError, SidecarReader, TickLock};
use crate::tick::Command as TickCommand;

pub const EX_IOERR: u8 = 74;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_CONFIG: u8 = 78;

/// Prints an error that stopped the tool before a report, once, on one
/// line with its context chain, and gives its exit code. Never a secret
/// (the layers below redact before they build an error); peer text that
/// reached it is escaped, so it cannot forge log lines.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    use std::io::Write as _;
    let text = format!("{err:#}");
    let _ = writeln!(
        std::io::stderr(),
        "reconcile: {}",
        crate::output::escape(&text)
    );
    ExitCode::from(exit_code_for(err))
}

/// The exit code of an error that stopped the tool before a report.
fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return EX_CONFIG;
        }
        if cause.is::<SidecarError>() {
            return EX_IOERR;
        }
        if cause.is::<LockBusy>() || cause.is::<LockStopped>() {
            return EX_TEMPFAIL;
        }
    }
    1
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cli.check_bounds()?;
    let ctx = Context::new(&cli);
    match cli.command {
        Command::Gate => tick::run(&ctx, TickCommand::Gate),
        Command::Plane => tick::run(&ctx, TickCommand::Plane),
        Command::All => tick::run(&ctx, TickCommand::All),
        Command::Status => status::run(&ctx),
        Command::History { limit, since } => history::run(&ctx, limit, since),
        Command::Check { offline } => check::run(&ctx, offline),
        Command::Outbox {
            action: OutboxAction::List,
        } => outbox::list(&ctx),
        Command::Outbox {
            action: OutboxAction::Drop { id },
        } => outbox::drop(&ctx, id),
        Command::Forget { ref key } => forget::run(&ctx, key),
        Command::Demo { ref metrics } => demo::run(&ctx, metrics.as_deref()),
        Command::Completions { shell } => write_stdout(&man::completions(shell)),
        Command::Man => write_stdout(&man::render()),
    }
}

/// Writes generated text to stdout; a closed pipe (`| head`) is not an error.
/// Writes command output to stdout. A closed pipe (`… | head`) or a full
/// disk never panics and never changes the exit code: a tick has already
/// acted by then (docs/reliability.md, hostile conditions).
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => log::error!("writing to stdout: {e}"),
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Lock, then open live; `None` when there is no sidecar yet (nothing to
/// change, and nothing is created). For the commands that write to the
/// sidecar: they take the tick lock like a live tick (busy → 75).
fn open_locked(
    ctx: &Context,
    path: &std::path::Path,
) -> anyhow::Result<Option<(TickLock, Sidecar)>> {
    if SidecarReader::open(path)?.is_none() {
        return Ok(None);
    }
    // A stop signal while waiting for a tick's lock ends the wait, as it
    // does for a tick (exit 75, nothing done; docs/sidecar.md).
    if !ctx.wait_lock.is_zero()
        && let Err(e) = crate::signals::install()
    {
        log::warn!("cannot handle stop signals; a stop kills the wait at once: {e}");
    }
    let lock = TickLock::acquire_or_stop(path, ctx.wait_lock, &crate::signals::stop_requested)
        .map_err(store::LockError::into_anyhow)?;
    Ok(Some((lock, Sidecar::open(path)?)))
}

/// Prints a one-object answer; text on stderr when it reports a miss.
fn done(ctx: &Context, value: serde_json::Value, text: String, ok: bool) -> ExitCode {
    match ctx.format {
        Format::Json => emit(&format!("{value}\n")),
        Format::Text if ok => emit(&format!("{text}\n")),
        Format::Text => eprintln!("reconcile: {text}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
