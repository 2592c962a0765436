use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = reconcile::cli::Cli::parse_args();
    reconcile::logging::init(cli.verbose, cli.quiet);
    match reconcile::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, with its context chain; never a secret (the layers
            // below redact before they build an error).
            // Peer text can reach an error: one line, escaped.
            let text = format!("{err:#}");
            let _ = writeln!(
                std::io::stderr(),
                "reconcile: {}",
                reconcile::output::escape(&text)
            );
            ExitCode::from(reconcile::cmd::exit_code_for(&err))
        }
    }
}
