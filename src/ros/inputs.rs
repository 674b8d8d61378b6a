//! Subscriptions `speech_text`, `utterance` and `spoken` (what the text-to-speech node said). Their streams are drained on the spin thread
//! right after each `spin_once`, so r2r's 10-slot channels can never overflow; each message is
//! handed to [`Bridge::submit`], which never waits. Messages are taken as raw CDR and decoded
//! here, so text that is not valid UTF-8 gets an error response instead of vanishing.

use crate::bridge::{Bridge, DEFAULT_SESSION};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use super::cdr;
use r2r::ollama_bridge_msgs::msg::Spoken;
use r2r::QosProfile;
use std::time::Instant;

/// Reliable, deep: a burst of recognised speech (or a replayed bag) must not be dropped.
pub const INPUT_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);
/// With `input_reliability: best_effort`: matches best-effort (sensor-data) publishers as well
/// as reliable ones, which then deliver without retransmission.
pub const BEST_EFFORT_INPUT_QOS: QosProfile = QosProfile::default().best_effort().keep_last(1000);
/// The input topics (relative names).
pub const INPUTS: [&str; 2] = ["speech_text", "utterance"];

/// The QoS of the input subscriptions for an `input_reliability` value.
pub fn input_qos(reliability: &str) -> QosProfile {
    if reliability == "best_effort" { BEST_EFFORT_INPUT_QOS } else { INPUT_QOS }
}

/// Subscribes both inputs with `qos`; returns their drain loops, to be run on the spin thread.
pub fn subscribe(node: &mut r2r::Node, bridge: &Bridge, qos: QosProfile) -> Result<Vec<BoxFuture<'static, ()>>, super::StartError> {
    // `spoken` first: r2r takes the messages of one `spin_once` in subscription order and the spin
    // thread's executor runs the drains in the order they were woken, so a report that arrived
    // with a barge-in input (the TTS said a sentence, the user spoke at once, the node was busy)
    // is recorded before that input cancels the answer and its history is written.
    let mut spoken = node.subscribe::<Spoken>("spoken", INPUT_QOS)?;
    let b = bridge.clone();
    let spoken_loop = async move {
        while let Some(report) = spoken.next().await {
            b.spoken(&report.session_id, report.request_id, &report.text);
        }
    };
    let mut speech = node.subscribe_raw(INPUTS[0], "std_msgs/msg/String", qos.clone())?;
    let b = bridge.clone();
    let speech_loop = async move {
        while let Some(bytes) = speech.next().await {
            match cdr::string_msg(&bytes) {
                Ok(text) => submit(&b, Ok(DEFAULT_SESSION.to_string()), text, false),
                Err(e) => log::error!("speech_text: undecodable message ({e}); dropped"),
            }
        }
    };
    let mut utterances = node.subscribe_raw(INPUTS[1], "ollama_bridge_msgs/msg/Utterance", qos)?;
    let b = bridge.clone();
    let utterance_loop = async move {
        while let Some(bytes) = utterances.next().await {
            match cdr::utterance(&bytes) {
                Ok((session, text, attach_image)) => submit(&b, session, text, attach_image),
                Err(e) => log::error!("utterance: undecodable message ({e}); dropped"),
            }
        }
    };
    Ok(vec![spoken_loop.boxed(), speech_loop.boxed(), utterance_loop.boxed()])
}

/// Hands a decoded input to the bridge; invalid UTF-8 in either field is refused with a reason.
fn submit(bridge: &Bridge, session: cdr::Field, text: cdr::Field, attach_image: bool) {
    let arrived = Instant::now();
    match (session, text) {
        (Ok(session), Ok(text)) => bridge.submit_input(&session, text, attach_image, arrived),
        (Err((session, why)), text) => {
            let text = text.unwrap_or_else(|(lossy, _)| lossy);
            bridge.refuse(&session, text, format!("session id: {why}"), arrived)
        }
        (Ok(session), Err((lossy, why))) => bridge.refuse(&session, lossy, why, arrived),
    }
}
