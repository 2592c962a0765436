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
    let (bytes, mode) = read_regular(path, limit)?;
    let content = String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))?;
    Ok(FileText { content, mode })
}

/// The bytes (at most `limit`) and the permission bits of a regular file.
/// The type is checked with `stat` before the file is opened: opening a
/// FIFO for reading blocks until a writer comes, so a FIFO (or a device, a
/// socket) at the config or a secret path would hang every tick.
fn read_regular(path: &Path, limit: u64) -> std::io::Result<(Vec<u8>, Option<u32>)> {
    use std::io::Read;
    not_special(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    // Again on the open file: it may have been replaced in between.
    let meta = file.metadata()?;
    not_special(&meta)?;
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
    Ok((bytes, mode))
}

/// An error unless `meta` is a regular file, saying what it is instead.
fn not_special(meta: &std::fs::Metadata) -> std::io::Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let what = if ft.is_dir() {
        "is a directory"
    } else {
        special_kind(&ft)
    };
    Err(std::io::Error::other(what))
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "not a regular file (a FIFO)"
    } else if ft.is_char_device() || ft.is_block_device() {
        "not a regular file (a device)"
    } else if ft.is_socket() {
        "not a regular file (a socket)"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// A secret as read (file or environment) → its value: surrounding
/// whitespace (the trailing newline of `echo … > file` first) goes; the
/// rest must be printable ASCII without whitespace, since it ends up in an
/// HTTP header or URL where anything else fails every request later, far
/// from its cause. The reason never shows the value.
pub(super) fn clean_secret(raw: &str) -> Result<&str, &'static str> {
    let v = raw.trim();
    if v.is_empty() {
        return Err("is empty");
    }
    match v.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
        None => Ok(v),
        Some(b'\n' | b'\r') => Err("contains a line break"),
        Some(0) => Err("contains a NUL byte"),
        Some(b' ' | b'\t') => Err("contains whitespace"),
        Some(b) if b >= 0x80 => Err("contains a non-ASCII character"),
        Some(_) => Err("contains a control character"),
    }
}

const SECRET_RULE: &str = "a secret must be printable ASCII without whitespace";

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

/// The first of: the systemd credential, the `*_file` key, the env
/// variable (blank counts as unset). A credential file or `*_file` that
/// exists/is set but cannot be read, is not a regular file, or does not
/// hold a clean secret (`clean_secret`) is an error naming it. `Ok(None)`: found nowhere; the error for
/// a required secret is the caller's (see `missing_secret`).
fn read_secret(
    spec: &SecretSpec<'_>,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let mut take = |path: &Path, what: String| -> Result<Option<Secret>, ConfigError> {
        let (bytes, mode) = read_regular(path, MAX_SECRET_BYTES).map_err(|e| {
            ConfigError(one_line(&format!(
                "config {config_at}: {what}: cannot read {}: {e}",
                path.display()
            )))
        })?;
        let value = std::str::from_utf8(&bytes)
            .map_err(|_| "contains a non-ASCII character")
            .and_then(clean_secret)
            .map_err(|why| {
                ConfigError(one_line(&format!(
                    "config {config_at}: {what}: {} {why} ({SECRET_RULE})",
                    path.display()
                )))
            })?;
        if let Some(w) = permission_warning(&mode, &format!("{what} {}", path.display())) {
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
    // A blank variable counts as unset (`VAR=` in an environment file is
    // how one unsets it there); anything else must be a clean secret.
    if let Some(v) = env(spec.env_var).filter(|v| !v.trim().is_empty()) {
        let value = clean_secret(&v).map_err(|why| {
            ConfigError(format!(
                "config {config_at}: env {} {why} ({SECRET_RULE})",
                spec.env_var
            ))
        })?;
        return Ok(Some(Secret::new(value)));
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
    let mut read = |spec: &SecretSpec<'_>| read_secret(spec, config_at, env, warnings);
    let required = |spec: &SecretSpec<'_>, found: Option<Secret>| {
        found.ok_or_else(|| missing_secret(spec, config_at, env))
    };
    let token = SecretSpec {
        label: "orchestrator token",
        credential: "orchestrator-token",
        key: "[orchestrator] token_file",
        file: files.orchestrator_token.as_deref(),
        env_var: "RECONCILE_ORCHESTRATOR_TOKEN",
    };
    config.orchestrator.token = Some(required(&token, read(&token)?)?);
    // Optional: replays are then unsigned.
    config.orchestrator.webhook_secret = read(&SecretSpec {
        label: "webhook secret",
        credential: "plane-webhook-secret",
        key: "[orchestrator] webhook_secret_file",
        file: files.webhook_secret.as_deref(),
        env_var: "RECONCILE_PLANE_WEBHOOK_SECRET",
    })?;
    let key = SecretSpec {
        label: "Plane API key",
        credential: "plane-api-key",
        key: "[plane] api_key_file",
        file: files.plane_api_key.as_deref(),
        env_var: "RECONCILE_PLANE_API_KEY",
    };
    config.plane.api_key = Some(required(&key, read(&key)?)?);
    if let Some(telegram) = config.telegram.as_mut() {
        let bot = SecretSpec {
            label: "Telegram bot token",
            credential: "telegram-bot-token",
            key: "[telegram] bot_token_file",
            file: files.telegram_bot_token.as_deref(),
            env_var: "RECONCILE_TELEGRAM_BOT_TOKEN",
        };
        telegram.bot_token = Some(required(&bot, read(&bot)?)?);
    }
    Ok(())
}
