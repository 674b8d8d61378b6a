//! `/diagnostics` (`diagnostic_msgs/msg/DiagnosticArray`, the absolute topic that
//! rqt_robot_monitor, the diagnostic aggregator and Foxglove read): once a second, one status
//! named `ollama_bridge: <fully qualified node name>` built from [`Health::report`].

use super::StartError;
use crate::health::{Health, Level};
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::std_msgs::msg::Header;
use r2r::QosProfile;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the status is published (diagnostic_updater's default period is 1 s too).
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

/// The probe and publisher tasks; [`Diagnostics::stop`] ends both when the node shuts down
/// (before its publishers go away, and so that the servers shutting down with it are not
/// reported as unreachable).
pub struct Diagnostics {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Diagnostics {
    pub fn stop(&self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Starts the server probe and the publisher, as tokio tasks that run until [`Diagnostics::stop`].
pub fn start(node: &mut r2r::Node, health: Health, runtime: &tokio::runtime::Handle) -> Result<Diagnostics, StartError> {
    let publisher = node.create_publisher::<DiagnosticArray>("/diagnostics", QosProfile::default())?;
    let name = format!("ollama_bridge: {}", node.fully_qualified_name()?);
    let probes = runtime.spawn(health.clone().run_probes());
    let publishing = runtime.spawn(async move {
        let mut tick = tokio::time::interval(PUBLISH_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = health.report();
            let status = DiagnosticStatus {
                level: match report.level {
                    Level::Ok => DiagnosticStatus::OK as u8,
                    Level::Warn => DiagnosticStatus::WARN as u8,
                    Level::Error => DiagnosticStatus::ERROR as u8,
                },
                name: name.clone(),
                message: report.message,
                hardware_id: report.hardware_id,
                values: report.values.into_iter().map(|(key, value)| KeyValue { key: key.to_string(), value }).collect(),
            };
            // ROS time without a simulated clock is the system clock
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let header = Header { stamp: r2r::Clock::to_builtin_time(&since_epoch), frame_id: String::new() };
            if let Err(e) = publisher.publish(&DiagnosticArray { header, status: vec![status] }) {
                log::error!("could not publish /diagnostics: {e}");
            }
        }
    });
    Ok(Diagnostics { tasks: vec![probes, publishing] })
}
