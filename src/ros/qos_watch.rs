//! Says why an input publisher is not heard. DDS silently never matches a publisher whose QoS
//! offers less than a subscription requests: most speech recognisers publish with the
//! sensor-data profile (best effort), which a reliable subscription never receives. Once a
//! second, on the spin thread, this looks up the publishers of each input topic (after remaps)
//! in the ROS graph and logs a warning, once per publisher, naming the topic, the publisher's
//! node and the QoS that does not match, and what to change (`input_reliability`).

use super::rcl_args::RosArgs;
use r2r::qos::{DurabilityPolicy, ReliabilityPolicy};
use r2r::QosProfile;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How often the graph is looked at.
const PERIOD: Duration = Duration::from_secs(1);

/// The input topics and the QoS their subscriptions request.
pub struct InputWatch {
    /// (input name, resolved topic)
    topics: Vec<(&'static str, String)>,
    requested: QosProfile,
    warned: HashSet<Vec<u8>>,
    next: Instant,
}

impl InputWatch {
    /// Watches `inputs` (relative names) of `node` as remapped by `args`.
    pub fn new(node: &r2r::Node, args: &RosArgs, inputs: &[&'static str], requested: QosProfile) -> r2r::Result<InputWatch> {
        let (name, namespace) = (node.name()?, node.namespace()?);
        let topics = inputs.iter().map(|input| (*input, args.resolve_topic(input, &name, &namespace))).collect();
        Ok(InputWatch { topics, requested, warned: HashSet::new(), next: Instant::now() })
    }

    /// Checks the publishers of every input topic, at most once per [`PERIOD`].
    pub fn check(&mut self, node: &r2r::Node) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + PERIOD;
        for (input, topic) in &self.topics {
            let publishers = match node.get_publishers_info_by_topic(topic, false) {
                Ok(p) => p,
                Err(e) => {
                    log::debug!("could not list the publishers of {topic}: {e}");
                    continue;
                }
            };
            for publisher in publishers {
                let Some(why) = incompatibility(&publisher.qos_profile, &self.requested) else { continue };
                if self.warned.insert(publisher.endpoint_gid.to_vec()) {
                    let node_name = format!("{}/{}", publisher.node_namespace.trim_end_matches('/'), publisher.node_name);
                    log::warn!("input '{input}' ({topic}): a publisher of node {node_name} {why}: its messages never \
                        reach this node. Start the node with -p input_reliability:=best_effort, or make that publisher reliable");
                }
            }
        }
    }
}

/// Why a publisher offering `offered` never matches a subscription requesting `requested`
/// (the DDS request-offered rules for reliability and durability), or `None` if it matches.
pub fn incompatibility(offered: &QosProfile, requested: &QosProfile) -> Option<String> {
    if offered.reliability == ReliabilityPolicy::BestEffort && requested.reliability == ReliabilityPolicy::Reliable {
        return Some("offers best-effort reliability (sensor-data QoS) where this node's subscription requests reliable".into());
    }
    if offered.durability == DurabilityPolicy::Volatile && requested.durability == DurabilityPolicy::TransientLocal {
        return Some("offers volatile durability where this node's subscription requests transient local".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_effort_publishers_do_not_match_reliable_subscriptions() {
        let reliable = QosProfile::default().reliable().keep_last(1000);
        let best_effort = QosProfile::default().best_effort().keep_last(1000);
        assert!(incompatibility(&QosProfile::sensor_data(), &reliable).unwrap().contains("best-effort"));
        assert_eq!(incompatibility(&QosProfile::sensor_data(), &best_effort), None);
        assert_eq!(incompatibility(&QosProfile::default(), &best_effort), None);
        assert_eq!(incompatibility(&QosProfile::default(), &reliable), None);
        let latched = QosProfile::default().transient_local();
        assert!(incompatibility(&QosProfile::default(), &latched).unwrap().contains("volatile"));
    }
}
