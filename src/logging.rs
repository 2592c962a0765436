//! Logs on stderr (DESIGN §9): info by default, -v/-q shift the level,
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
        Ok(spec) => {
            builder.parse_filters(&spec);
        }
        Err(_) => {
            // Our own crate at the chosen level; libraries only warn.
            builder.filter_level(LevelFilter::Warn.min(level));
            builder.filter_module("reconcile", level);
        }
    }
    // The HTTP stack logs URLs and raw headers at debug and trace, and those
    // carry the Telegram token and the API keys: never below warn, whatever
    // RUST_LOG asks (a later directive for the same module replaces it).
    for module in ["ureq", "ureq_proto", "rustls"] {
        builder.filter_module(module, LevelFilter::Warn);
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format(|buf, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", record.args())
        });
    } else {
        builder.format(|buf, record| {
            let ts = buf.timestamp_seconds();
            writeln!(buf, "{ts} {:<5} {}", record.level(), record.args())
        });
    }
    let _ = builder.try_init();
}
