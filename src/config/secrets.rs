//! Secrets and the files they come from.

use std::path::Path;

use super::file::SecretFiles;
use super::one_line;
use super::types::{Config, ConfigError, Secret};

const MAX_SECRET_BYTES: u64 = 64 << 10;

pub(super) struct FileText {
    pub(super) content: String,
    /// Unix permission bits of the opened file.
    pub(super) mode: Option<u32>,
}

/// Reads a UTF-8 text file of at most `limit` bytes (a config pointed at
/// /dev/zero must not eat the memory). Errors never contain the content.
pub(super) fn read_limited(path: &Path, limit: u64) -> std::io::Result<FileText> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let mode = {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            Some(meta.permissions().mode())
        }
        #[cfg(not(unix))]
        {
            None
        }
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    let content = String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))?;
    Ok(FileText { content, mode })
}

/// Others reading or writing, or the group writing, draws a warning; the
/// group reading does not: 0640 root:reconcile is the recommended
/// deployment (docs/configuration.md).
pub(super) fn permission_warning(mode: &Option<u32>, what: &str) -> Option<String> {
    let m = (*mode)?;
    let problems: Vec<&str> = [
        (0o004, "readable by others"),
        (0o002, "writable by others"),
        (0o020, "writable by its group"),
    ]
    .into_iter()
    .filter(|(bit, _)| m & bit != 0)
    .map(|(_, what)| what)
    .collect();
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "{what} is {} (mode {:04o}); chmod g-w,o= (0640 or 0600)",
        problems.join(", "),
        m & 0o7777
    ))
}

/// One secret's sources: credential, `*_file` key, env variable.
struct SecretSpec<'a> {
    /// What it is, for messages.
    label: &'a str,
    /// `$CREDENTIALS_DIRECTORY/<credential>`.
    credential: &'a str,
    /// The `*_file` key, e.g. "[orchestrator] token_file".
    key: &'a str,
    file: Option<&'a Path>,
    env_var: &'a str,
}

/// The first non-empty value of: the systemd credential, the `*_file` key,
/// the env variable. A credential file or `*_file` that exists/is set but
/// cannot be read is an error naming it; trailing whitespace is trimmed; an
/// empty value counts as missing. `Ok(None)`: found nowhere; the error for
/// a required secret is the caller's (see `missing_secret`).
fn read_secret(
    spec: &SecretSpec<'_>,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let mut take = |path: &Path, what: String| -> Result<Option<Secret>, ConfigError> {
        let text = read_limited(path, MAX_SECRET_BYTES).map_err(|e| {
            ConfigError(one_line(&format!(
                "config {config_at}: {what}: cannot read {}: {e}",
                path.display()
            )))
        })?;
        let value = text.content.trim_end();
        if value.is_empty() {
            return Ok(None);
        }
        if let Some(w) = permission_warning(&text.mode, &format!("{what} {}", path.display())) {
            warnings.push(w);
        }
        Ok(Some(Secret::new(value)))
    };
    if let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty()) {
        let path = Path::new(&dir).join(spec.credential);
        if path.exists()
            && let Some(s) = take(&path, format!("credential {}", spec.credential))?
        {
            return Ok(Some(s));
        }
    }
    if let Some(path) = spec.file
        && let Some(s) = take(path, spec.key.to_string())?
    {
        return Ok(Some(s));
    }
    if let Some(v) = env(spec.env_var) {
        let v = v.trim_end();
        if !v.is_empty() {
            return Ok(Some(Secret::new(v)));
        }
    }
    Ok(None)
}

fn missing_secret(
    spec: &SecretSpec<'_>,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> ConfigError {
    let cred = match env("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty()) {
        Some(dir) => format!("{}", Path::new(&dir).join(spec.credential).display()),
        None => format!(
            "$CREDENTIALS_DIRECTORY/{} (CREDENTIALS_DIRECTORY unset)",
            spec.credential
        ),
    };
    let file = match spec.file {
        Some(p) => format!("{} = {}", spec.key, p.display()),
        None => format!("{} (unset)", spec.key),
    };
    ConfigError(one_line(&format!(
        "config {config_at}: no {}: looked in {cred}, {file}, env {}",
        spec.label, spec.env_var
    )))
}

pub(super) fn read_all_secrets(
    config: &mut Config,
    files: &SecretFiles,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let token = SecretSpec {
        label: "orchestrator token",
        credential: "orchestrator-token",
        key: "[orchestrator] token_file",
        file: files.orchestrator_token.as_deref(),
        env_var: "RECONCILE_ORCHESTRATOR_TOKEN",
    };
    config.orchestrator.token = Some(
        read_secret(&token, config_at, env, warnings)?
            .ok_or_else(|| missing_secret(&token, config_at, env))?,
    );

    let webhook = SecretSpec {
        label: "webhook secret",
        credential: "plane-webhook-secret",
        key: "[orchestrator] webhook_secret_file",
        file: files.webhook_secret.as_deref(),
        env_var: "RECONCILE_PLANE_WEBHOOK_SECRET",
    };
    config.orchestrator.webhook_secret = read_secret(&webhook, config_at, env, warnings)?;

    let key = SecretSpec {
        label: "Plane API key",
        credential: "plane-api-key",
        key: "[plane] api_key_file",
        file: files.plane_api_key.as_deref(),
        env_var: "RECONCILE_PLANE_API_KEY",
    };
    config.plane.api_key = Some(
        read_secret(&key, config_at, env, warnings)?
            .ok_or_else(|| missing_secret(&key, config_at, env))?,
    );

    if let Some(telegram) = config.telegram.as_mut() {
        let bot = SecretSpec {
            label: "Telegram bot token",
            credential: "telegram-bot-token",
            key: "[telegram] bot_token_file",
            file: files.telegram_bot_token.as_deref(),
            env_var: "RECONCILE_TELEGRAM_BOT_TOKEN",
        };
        telegram.bot_token = Some(
            read_secret(&bot, config_at, env, warnings)?
                .ok_or_else(|| missing_secret(&bot, config_at, env))?,
        );
    }
    Ok(())
}
