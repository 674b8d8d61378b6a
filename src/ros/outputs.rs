//! Publishers of `response_partial`, `response_final`, `response_text`, `response_sentence`,
//! `response_sentence_text`, `response_thinking` and `session_state`.

use crate::outputs::{FinalResponse, Outputs, Partial, SentenceOut, SessionState as State};
use r2r::ollama_bridge_msgs::msg::{Response, ResponseChunk, Sentence, SessionState};
use r2r::std_msgs::msg::String as StringMsg;
use r2r::{Clock, Publisher, QosProfile};
use std::sync::{Arc, Mutex};

/// Reliable and deep: a lost partial would break "partials concatenate to the final", and a
/// burst of sessions can produce thousands of chunks a second. Subscribers that must not lose
/// chunks should also ask for reliable with a deep queue (e.g. depth 1000) or keep-all.
pub const PARTIAL_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);
/// Finals, texts and sentences: reliable, deep enough for a burst of answers.
pub const FINAL_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);
/// Session states: reliable and transient local, so a dialogue manager that starts late sees the
/// last states (of up to 100 changes).
pub const STATE_QOS: QosProfile = QosProfile::default().reliable().keep_last(100).transient_local();

struct Publishers {
    partial: Publisher<ResponseChunk>,
    finals: Publisher<Response>,
    text: Publisher<StringMsg>,
    sentence: Publisher<Sentence>,
    sentence_text: Publisher<StringMsg>,
    thinking: Publisher<ResponseChunk>,
    state: Publisher<SessionState>,
}

/// [`Outputs`] over ROS topics. r2r publishers are `Send` but not `Sync`: a mutex serialises
/// publishing, which is held for one `rcl_publish` call only.
pub struct RosOutputs {
    publishers: Mutex<Publishers>,
    /// The node's ROS clock (simulated time with `use_sim_time`), for `session_state` stamps.
    clock: Arc<Mutex<Clock>>,
}

impl RosOutputs {
    /// Creates the publishers (relative names, so namespaces and remaps apply).
    pub fn create(node: &mut r2r::Node) -> r2r::Result<RosOutputs> {
        Ok(RosOutputs {
            publishers: Mutex::new(Publishers {
                partial: node.create_publisher("response_partial", PARTIAL_QOS)?,
                finals: node.create_publisher("response_final", FINAL_QOS)?,
                text: node.create_publisher("response_text", FINAL_QOS)?,
                sentence: node.create_publisher("response_sentence", FINAL_QOS)?,
                sentence_text: node.create_publisher("response_sentence_text", FINAL_QOS)?,
                thinking: node.create_publisher("response_thinking", PARTIAL_QOS)?,
                state: node.create_publisher("session_state", STATE_QOS)?,
            }),
            clock: node.get_ros_clock(),
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
        let speak = r.ending.error().is_empty() && r.ending.done_reason() != "cancelled" && !r.speech.trim().is_empty();
        self.with(|pubs| {
            if let Err(e) = pubs.finals.publish(&msg) {
                log::error!("could not publish response_final: {e}");
            }
            if speak {
                if let Err(e) = pubs.text.publish(&StringMsg { data: r.speech.clone() }) {
                    log::error!("could not publish response_text: {e}");
                }
            }
        });
    }

    fn thinking(&self, p: &Partial<'_>) {
        let msg = ResponseChunk { session_id: p.session_id.to_string(), request_id: p.request_id, seq: p.seq, text: p.text.to_string() };
        if let Err(e) = self.with(|pubs| pubs.thinking.publish(&msg)) {
            log::error!("could not publish response_thinking: {e}");
        }
    }

    fn sentence(&self, s: &SentenceOut<'_>) {
        let msg = Sentence { session_id: s.session_id.to_string(), request_id: s.request_id, index: s.index, text: s.text.to_string() };
        self.with(|pubs| {
            if let Err(e) = pubs.sentence.publish(&msg) {
                log::error!("could not publish response_sentence: {e}");
            }
            if let Err(e) = pubs.sentence_text.publish(&StringMsg { data: msg.text.clone() }) {
                log::error!("could not publish response_sentence_text: {e}");
            }
        });
    }

    fn state(&self, session_id: &str, request_id: u64, state: State) {
        let now = self.clock.lock().unwrap_or_else(|e| e.into_inner()).get_now().unwrap_or_default();
        let msg = SessionState {
            session_id: session_id.to_string(),
            request_id,
            state: state.as_str().to_string(),
            stamp: Clock::to_builtin_time(&now),
        };
        if let Err(e) = self.with(|pubs| pubs.state.publish(&msg)) {
            log::error!("could not publish session_state: {e}");
        }
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
