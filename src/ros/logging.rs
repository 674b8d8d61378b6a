//! `log` → ROS logging (rcutils): every line of the node and its crates goes through the node's
//! ROS logger, so `--ros-args --log-level debug` governs all of it and output looks like any
//! ROS node's (`[INFO] [time] [ollama_bridge]: ...`); and to `/rosout` (see `rosout`).

use r2r::LogSeverity;
use std::sync::RwLock;

static LOGGER_NAME: RwLock<String> = RwLock::new(String::new());

struct RosLogger;

impl log::Log for RosLogger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        // Other crates (hyper, rustls, ...) only speak up when something is wrong.
        let ours = meta.target().starts_with(env!("CARGO_CRATE_NAME")) || meta.target().starts_with("r2r");
        meta.level() <= log::max_level() && (ours || meta.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let severity = match record.level() {
            log::Level::Error => LogSeverity::Error,
            log::Level::Warn => LogSeverity::Warn,
            log::Level::Info => LogSeverity::Info,
            log::Level::Debug | log::Level::Trace => LogSeverity::Debug,
        };
        // rcutils takes C strings: a NUL inside a message (e.g. from user text) must not panic.
        let message = record.args().to_string().replace('\0', "\\0");
        let name = LOGGER_NAME.read().map(|n| n.clone()).unwrap_or_default();
        let name = if name.is_empty() { env!("CARGO_CRATE_NAME").to_string() } else { name };
        let (file, line) = (record.file().unwrap_or(""), record.line().unwrap_or(0));
        r2r::log(&message, &name, file, line, severity);
        super::rosout::publish(record.level(), &name, &message, file, record.module_path().unwrap_or(""), line);
    }

    fn flush(&self) {}
}

/// The level asked for with `--ros-args --log-level LEVEL` (or `--log-level NAME:=LEVEL`).
pub fn level_from_args(args: &[String]) -> log::LevelFilter {
    let mut level = log::LevelFilter::Info;
    for pair in args.windows(2) {
        if pair[0] == "--log-level" {
            let value = pair[1].rsplit(":=").next().unwrap_or("").to_ascii_lowercase();
            level = match value.as_str() {
                "debug" => log::LevelFilter::Debug,
                "info" => log::LevelFilter::Info,
                "warn" => log::LevelFilter::Warn,
                "error" | "fatal" => log::LevelFilter::Error,
                _ => level,
            };
        }
    }
    level
}

/// Installs the logger (once, before anything logs).
pub fn init(level: log::LevelFilter) {
    if log::set_logger(&RosLogger).is_ok() {
        log::set_max_level(level);
    }
}

/// Names the ROS logger (the node's, which reflects remapped names and namespaces).
pub fn set_ros_logger(name: &str) {
    if let Ok(mut n) = LOGGER_NAME.write() {
        *n = name.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_comes_from_ros_args() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(level_from_args(&args("node --ros-args --log-level debug")), log::LevelFilter::Debug);
        assert_eq!(level_from_args(&args("node --ros-args --log-level ollama_bridge:=WARN")), log::LevelFilter::Warn);
        assert_eq!(level_from_args(&args("node")), log::LevelFilter::Info);
    }
}
