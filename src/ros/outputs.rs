//! Publishers of `response_partial`, `response_final` and `response_text`.

use crate::outputs::{FinalResponse, Outputs, Partial};
use r2r::ollama_bridge_msgs::msg::{Response, ResponseChunk};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::{Publisher, QosProfile};
use std::sync::Mutex;

/// Reliable and deep: a lost partial would break "partials concatenate to the final", and a
/// burst of sessions can produce thousands of chunks a second. Subscribers that must not lose
/// chunks should also ask for reliable with a deep queue (e.g. depth 1000) or keep-all.
pub const PARTIAL_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);
/// Finals and texts: reliable, deep enough for a burst of answers.
pub const FINAL_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);

struct Publishers {
    partial: Publisher<ResponseChunk>,
    finals: Publisher<Response>,
    text: Publisher<StringMsg>,
}

/// [`Outputs`] over ROS topics. r2r publishers are `Send` but not `Sync`: a mutex serialises
/// publishing, which is held for one `rcl_publish` call only.
pub struct RosOutputs {
    publishers: Mutex<Publishers>,
}

impl RosOutputs {
    /// Creates the three publishers (relative names, so namespaces and remaps apply).
    pub fn create(node: &mut r2r::Node) -> r2r::Result<RosOutputs> {
        Ok(RosOutputs {
            publishers: Mutex::new(Publishers {
                partial: node.create_publisher("response_partial", PARTIAL_QOS)?,
                finals: node.create_publisher("response_final", FINAL_QOS)?,
                text: node.create_publisher("response_text", FINAL_QOS)?,
            }),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&Publishers) -> R) -> R {
        f(&self.publishers.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Outputs for RosOutputs {
    fn partial(&self, p: &Partial<'_>) {
        let msg = ResponseChunk {
            session_id: p.session_id.to_string(),
            request_id: p.request_id,
            seq: p.seq,
            text: p.text.to_string(),
        };
        if let Err(e) = self.with(|pubs| pubs.partial.publish(&msg)) {
            log::error!("could not publish response_partial: {e}");
        }
    }

    fn finished(&self, r: &FinalResponse) {
        let msg = response_msg(r);
        // Only real answers go to the text-to-speech topic: errors and cancellations are not spoken.
        let speak = r.ending.error().is_empty() && r.ending.done_reason() != "cancelled" && !r.text.trim().is_empty();
        self.with(|pubs| {
            if let Err(e) = pubs.finals.publish(&msg) {
                log::error!("could not publish response_final: {e}");
            }
            if speak {
                if let Err(e) = pubs.text.publish(&StringMsg { data: r.text.clone() }) {
                    log::error!("could not publish response_text: {e}");
                }
            }
        });
    }
}

/// The `Response` message of a final response (also an action result's `response`).
pub(super) fn response_msg(r: &FinalResponse) -> Response {
    let c = &r.counters;
    Response {
        session_id: r.session_id.clone(),
        request_id: r.request_id,
        prompt: r.prompt.clone(),
        text: r.text.clone(),
        model: r.model.clone(),
        done_reason: r.ending.done_reason().to_string(),
        error: r.ending.error().to_string(),
        prompt_eval_count: c.prompt_eval_count,
        eval_count: c.eval_count,
        total_duration_ns: c.total_duration_ns,
        load_duration_ns: c.load_duration_ns,
        prompt_eval_duration_ns: c.prompt_eval_duration_ns,
        eval_duration_ns: c.eval_duration_ns,
        time_to_first_chunk_s: r.time_to_first_chunk_s,
        total_time_s: r.total_time_s,
        chunk_count: r.chunk_count,
        server: r.server.clone(),
    }
}
