//! Libraries that log through `tracing` (hyper's h2 does) must reach rallypoint's `log` sink.
//! tracing's `log` feature, enabled in Cargo.toml, turns their events into `log` records when no
//! tracing subscriber is installed; this checks the wiring with a capturing logger.

use std::sync::Mutex;

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        RECORDS
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

#[test]
fn tracing_events_arrive_as_log_records() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    tracing::warn!("h2 says hello");
    let records = RECORDS.lock().unwrap();
    assert!(
        records.iter().any(|r| r == "WARN h2 says hello"),
        "{records:?}"
    );
}
