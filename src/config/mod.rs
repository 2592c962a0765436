//! Configuration (docs/configuration.md): the TOML file (`file`), the
//! environment overrides of the original Python reconciler (`env`) and the
//! secrets (`secrets`). Loading never panics; every error names the key.

mod env;
mod file;
mod secrets;
#[cfg(test)]
mod tests;
mod toml_error;
mod types;

use std::path::Path;

pub use types::*;

/// The config file when neither `--config` nor `$RECONCILE_CONFIG` names
/// one (the CLI reads both, through clap).
pub const DEFAULT_PATH: &str = "/etc/reconcile/reconcile.toml";

/// The sidecar's default path: `$STATE_DIRECTORY/state.sqlite` under
/// systemd, else /var/lib/reconcile/state.sqlite.
pub fn default_state_path() -> std::path::PathBuf {
    file::default_state_path(&|name| std::env::var(name).ok())
}

/// The `[reconcile]` switches as a tick would see them with no config file:
/// the defaults with the environment overrides applied (`status` without a
/// config reads them this way, so it agrees with a tick).
pub fn reconcile_from_env() -> Result<Reconcile, ConfigError> {
    let mut r = Reconcile::default();
    env::apply_env(&mut r, &|name| std::env::var(name).ok(), &mut Vec::new())?;
    Ok(r)
}

/// Reads and validates the configuration at `path`, applying the process
/// environment (env overrides, `$CREDENTIALS_DIRECTORY`, secret env vars).
/// `read_secrets = false` (`check --offline`, `status`) reads no secret at
/// all and leaves every secret `None`.
pub fn load(path: &Path, read_secrets: bool) -> Result<Config, ConfigError> {
    load_with_env(path, read_secrets, &|name| std::env::var(name).ok())
}

/// As `load`, with the environment given as a lookup (tests). Every
/// environment read of the loader goes through `env`.
///
/// Order: the file (syntax, unknown keys, types, validation), then the
/// environment overrides, then the secrets; the first error wins.
pub fn load_with_env(
    path: &Path,
    read_secrets: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let at = path.display().to_string();
    let file_err = |msg: String| ConfigError(one_line(&format!("config {at}: {msg}")));
    let mut warnings = Vec::new();

    let text = secrets::read_limited(path, file::MAX_CONFIG_BYTES)
        .map_err(|e| file_err(format!("cannot read: {e}")))?;
    if let Some(w) = secrets::permission_warning(&text.mode, &format!("config file {at}")) {
        warnings.push(w);
    }
    let raw = toml_error::parse(&text.content).map_err(file_err)?;
    let (mut config, files) = file::build(raw, env).map_err(file_err)?;
    env::apply_env(&mut config.reconcile, env, &mut warnings)?;
    file::check_delivery_reserve(&config).map_err(file_err)?;
    if read_secrets {
        secrets::read_all_secrets(&mut config, &files, &at, env, &mut warnings)?;
    }
    config.warnings = warnings;
    Ok(config)
}

/// One line, whatever went in.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
