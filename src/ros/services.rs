//! Services `reset` and `set_model`. Requests are taken off r2r's queue on the spin thread;
//! `reset` is answered there at once, `set_model` asks the Ollama server first (in a tokio task)
//! and then responds.

use super::StartError;
use crate::bridge::Bridge;
use super::params::LiveParams;
use crate::config::{Config, ConfigHandle};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::ollama_bridge_msgs::srv::{Reset, SetModel};
use r2r::QosProfile;
use std::sync::{Arc, Mutex};

/// Everything `set_model` needs to switch the model for the next requests.
#[derive(Clone)]
pub struct ModelSwitch {
    pub bridge: Bridge,
    pub params: Arc<Mutex<LiveParams>>,
    pub config: ConfigHandle,
}

impl ModelSwitch {
    /// Checks `model` on the server; switches only if it exists. Returns (success, message, previous).
    pub async fn switch(&self, model: &str) -> (bool, String, String) {
        let model = model.trim();
        let previous = self.config.get().model.clone();
        if let Err(why) = self.bridge.check_model(model).await {
            log::warn!("set_model '{model}' refused: {why}");
            return (false, format!("{why}; still using '{previous}'"), previous);
        }
        let mut params = self.params.lock().unwrap_or_else(|e| e.into_inner());
        params.values.model = model.to_string();
        match Config::from_params(&params.values) {
            Ok(config) => self.config.set(config),
            Err(e) => {
                params.values.model = previous.clone();
                return (false, e.to_string(), previous);
            }
        }
        log::info!("model switched from '{previous}' to '{model}' (requests already streaming finish on '{previous}')");
        (true, format!("model set to '{model}' (was '{previous}')"), previous)
    }
}

/// Creates both services; returns their request loops, to be run on the spin thread.
pub fn serve(node: &mut r2r::Node, switch: ModelSwitch, runtime: &tokio::runtime::Handle) -> Result<Vec<BoxFuture<'static, ()>>, StartError> {
    let mut resets = node.create_service::<Reset::Service>("reset", QosProfile::services_default())?;
    let bridge = switch.bridge.clone();
    let reset_loop = async move {
        while let Some(req) = resets.next().await {
            let answer = bridge.reset(&req.message.session_id);
            if let Err(e) = req.respond(Reset::Response { success: answer.success, message: answer.message }) {
                log::error!("could not answer a reset request: {e}");
            }
        }
    };
    let mut set_models = node.create_service::<SetModel::Service>("set_model", QosProfile::services_default())?;
    let runtime = runtime.clone();
    let set_model_loop = async move {
        while let Some(req) = set_models.next().await {
            let switch = switch.clone();
            runtime.spawn(async move {
                let (success, message, previous_model) = switch.switch(&req.message.model).await;
                if let Err(e) = req.respond(SetModel::Response { success, message, previous_model }) {
                    log::error!("could not answer a set_model request: {e}");
                }
            });
        }
    };
    Ok(vec![reset_loop.boxed(), set_model_loop.boxed()])
}
