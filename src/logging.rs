//! One log sink for the whole process: the systemd journal when stderr is connected to it
//! (`$JOURNAL_STREAM`), else one readable line per record on stderr.
//!
//! The level comes from `server.log_level` and follows config reloads, unless `RUST_LOG` is set:
//! then its directives (`debug`, `rallypoint=trace,hyper=info`, ...) win. Crates that log through
//! `tracing` reach this sink too, through tracing's `log` feature.

use std::io::Write;
use std::sync::{OnceLock, RwLock};

use env_filter::{Builder, Filter};
use log::{LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

use crate::config::LogLevel;

struct Logger {
    filter: RwLock<Filter>,
    /// `RUST_LOG` pins the filter; the config file's level is then ignored.
    pinned: bool,
    journal: Option<JournalLog>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the process-wide logger. Later calls only change the level.
pub fn init(level: LogLevel) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let logger = LOGGER.get_or_init(|| Logger {
        filter: RwLock::new(match &env {
            Some(directives) => Builder::new().parse(directives).build(),
            None => level_filter(level),
        }),
        pinned: env.is_some(),
        journal: systemd_journal_logger::connected_to_journal()
            .then(|| JournalLog::new().ok())
            .flatten(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(logger.filter.read().unwrap().filter());
    } else {
        set_level(level);
    }
}

/// Applies the level of a reloaded config; returns false when `RUST_LOG` overrides it.
pub fn set_level(level: LogLevel) -> bool {
    let Some(logger) = LOGGER.get() else {
        return false;
    };
    if logger.pinned {
        return false;
    }
    let filter = level_filter(level);
    log::set_max_level(filter.filter());
    *logger.filter.write().unwrap() = filter;
    true
}

/// The config's level for everything, except the HTTP/2 library's frame-by-frame records (one
/// line per frame at debug), which stay at info unless `RUST_LOG` asks for them.
fn level_filter(level: LogLevel) -> Filter {
    let level = LevelFilter::from(level);
    Builder::new()
        .filter_level(level)
        .filter_module("h2", level.min(LevelFilter::Info))
        .build()
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.read().unwrap().enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.filter.read().unwrap().matches(record) {
            return;
        }
        if let Some(journal) = &self.journal {
            journal.log(record);
            return;
        }
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let line = format!(
            "{now} {:<5} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        // One write per line so lines from several threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
