//! The node's log on `/rosout` (`rcl_interfaces/msg/Log`), where rqt_console, Foxglove and bags
//! look for it. rcl only publishes there for nodes whose client library called
//! `rcl_logging_rosout_init_publisher_for_node` (rclcpp and rclpy do, since Humble); r2r 0.9.7
//! does not and keeps the `rcl_node_t` private, so nothing of an r2r node reached `/rosout`. This
//! module publishes every record of the `log` facade itself, with rcl's QoS for the topic
//! (`rcl_qos_profile_rosout_default`: reliable, transient local, depth 1000, lifespan 10 s), and
//! honours `--disable-rosout-logs`.

use r2r::rcl_interfaces::msg::Log;
use r2r::{Publisher, QosProfile};
use std::cell::Cell;
use std::sync::Mutex;
use std::time::Duration;

static PUBLISHER: Mutex<Option<Publisher<Log>>> = Mutex::new(None);

/// The QoS rcl gives `/rosout` publishers.
pub const ROSOUT_QOS: QosProfile =
    QosProfile::default().reliable().keep_last(1000).transient_local().lifespan(Duration::from_secs(10));

/// Starts publishing the log on `/rosout` (unless `--disable-rosout-logs` was given).
pub fn attach(node: &mut r2r::Node) -> r2r::Result<()> {
    // SAFETY: reads a flag rcl_logging_configure set in Context::create.
    if !unsafe { r2r_rcl::rcl_logging_rosout_enabled() } {
        return Ok(());
    }
    let publisher = node.create_publisher::<Log>("/rosout", ROSOUT_QOS)?;
    *PUBLISHER.lock().unwrap_or_else(|e| e.into_inner()) = Some(publisher);
    Ok(())
}

/// Stops publishing (before the node goes away).
pub fn detach() {
    *PUBLISHER.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

thread_local! {
    /// Set while this thread publishes: a record logged meanwhile (r2r logs a failed publish)
    /// is not sent to `/rosout` again, which would deadlock on [`PUBLISHER`].
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

/// Publishes one record (from any thread).
pub fn publish(level: log::Level, logger: &str, message: &str, file: &str, function: &str, line: u32) {
    if PUBLISHING.with(|p| p.replace(true)) {
        return;
    }
    send(level, logger, message, file, function, line);
    PUBLISHING.with(|p| p.set(false));
}

fn send(level: log::Level, logger: &str, message: &str, file: &str, function: &str, line: u32) {
    let guard = PUBLISHER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(publisher) = guard.as_ref() else { return };
    let level = match level {
        log::Level::Error => Log::ERROR as u8,
        log::Level::Warn => Log::WARN as u8,
        log::Level::Info => Log::INFO as u8,
        log::Level::Debug | log::Level::Trace => Log::DEBUG as u8,
    };
    let msg = Log {
        stamp: super::params::now(),
        level,
        name: logger.to_string(),
        msg: message.to_string(),
        file: file.to_string(),
        function: function.to_string(),
        line,
    };
    let _ = publisher.publish(&msg);
}
