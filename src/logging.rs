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
    // Our own crate at the chosen level; the HTTP stack stays quiet.
    builder.filter_level(LevelFilter::Warn.min(level));
    builder.filter_module("reconcile", level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
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
