use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = reconcile::Cli::parse_args();
    reconcile::init_logging(cli.verbose, cli.quiet);
    match reconcile::run(cli) {
        Ok(code) => code,
        Err(err) => reconcile::fail(&err),
    }
}
