//! Logs on stderr: info by default, -v/-q shift the level,
//! RUST_LOG wins. Under systemd (JOURNAL_STREAM set) no timestamp and an
//! `<N>` syslog priority prefix, so journald records levels.

use std::io::Write as _;

use log::LevelFilter;

pub fn init(verbose: u8, quiet: u8) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        // A blank RUST_LOG (env files often carry one) is no RUST_LOG.
        Ok(spec) if !spec.trim().is_empty() => {
            builder.parse_filters(&spec);
        }
        _ => {
            // Our own crate at the chosen level; libraries only warn.
            builder.filter_level(LevelFilter::Warn.min(level));
            builder.filter_module("reconcile", level);
        }
    }

    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format(|buf, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", line(record))
        });
    } else {
        builder.format(|buf, record| {
            let ts = buf.timestamp_seconds();
            writeln!(buf, "{ts} {:<5} {}", record.level(), line(record))
        });
    }
    let logger = Guarded(builder.build());
    let max = logger.0.filter();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// A record as one line: peers' strings reach log messages, and a newline
/// or escape sequence in one must not forge a line, a journald priority or
/// drive the terminal.
fn line(record: &log::Record<'_>) -> String {
    let text = record.args().to_string();
    crate::core::text::escape(&text).into_owned()
}

/// The HTTP stack logs URLs and raw headers at debug and trace, and those
/// carry the Telegram token and the API keys: its records below warn are
/// dropped whatever RUST_LOG asks, submodules included.
struct Guarded(env_logger::Logger);

fn secret_bearing(target: &str, level: log::Level) -> bool {
    level > log::Level::Warn
        && ["ureq", "ureq_proto", "rustls"].iter().any(|m| {
            target == *m
                || target
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

impl log::Log for Guarded {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        !secret_bearing(m.target(), m.level()) && self.0.enabled(m)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_stack_is_kept_at_warn_submodules_included() {
        assert!(secret_bearing("ureq", log::Level::Debug));
        assert!(secret_bearing("ureq_proto::client", log::Level::Trace));
        assert!(secret_bearing("rustls::conn", log::Level::Info));
        assert!(!secret_bearing("ureq", log::Level::Warn));
        assert!(!secret_bearing("ureqx", log::Level::Debug));
        assert!(!secret_bearing("reconcile::tick", log::Level::Trace));
    }

    proptest::proptest! {
        /// A log record carrying any peer bytes is one line without a
        /// control character: no forged line, no journald priority.
        #[test]
        fn a_record_is_one_clean_line(s in proptest::prelude::any::<String>()) {
            let args = format_args!("gate: task {s} failed");
            let record = log::Record::builder().args(args).level(log::Level::Error).build();
            let l = line(&record);
            proptest::prop_assert!(!l.chars().any(char::is_control), "{:?}", l);
            proptest::prop_assert_eq!(l.lines().count(), 1);
        }
    }
}
