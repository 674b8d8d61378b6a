//! Subscriptions `speech_text` and `utterance`. Their streams are drained on the spin thread
//! right after each `spin_once`, so r2r's 10-slot channels can never overflow; each message is
//! handed to [`Bridge::submit`], which never waits.

use crate::bridge::{Bridge, DEFAULT_SESSION};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::ollama_bridge_msgs::msg::Utterance;
use r2r::std_msgs::msg::String as StringMsg;
use r2r::QosProfile;
use std::time::Instant;

/// Reliable, deep: a burst of recognised speech (or a replayed bag) must not be dropped.
pub const INPUT_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);

/// Subscribes both inputs; returns their drain loops, to be run on the spin thread.
pub fn subscribe(node: &mut r2r::Node, bridge: &Bridge) -> Result<Vec<BoxFuture<'static, ()>>, super::StartError> {
    let mut speech = node.subscribe::<StringMsg>("speech_text", INPUT_QOS)?;
    let b = bridge.clone();
    let speech_loop = async move {
        while let Some(msg) = speech.next().await {
            b.submit(DEFAULT_SESSION, msg.data, Instant::now());
        }
    };
    let mut utterances = node.subscribe::<Utterance>("utterance", INPUT_QOS)?;
    let b = bridge.clone();
    let utterance_loop = async move {
        while let Some(msg) = utterances.next().await {
            b.submit(&msg.session_id, msg.text, Instant::now());
        }
    };
    Ok(vec![speech_loop.boxed(), utterance_loop.boxed()])
}
