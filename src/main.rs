use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = reconcile::cli::Cli::parse_args();
    reconcile::logging::init(cli.verbose, cli.quiet);
    match reconcile::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, with its context chain; never a secret (the layers
            // below redact before they build an error).
            eprintln!("reconcile: {err:#}");
            ExitCode::from(reconcile::cmd::exit_code_for(&err))
        }
    }
}
