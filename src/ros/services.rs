//! Services `reset`, `cancel` and `set_model`. Requests are taken off r2r's queue on the spin
//! thread; `reset` and `cancel` are answered there at once, `set_model` asks the Ollama server first (in a tokio task)
//! and then responds.

use super::params::ParamStore;
use super::StartError;
use crate::bridge::Bridge;
use crate::config::ConfigHandle;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::ollama_bridge_msgs::srv::{Cancel, Reset, SetModel};
use r2r::rcl_interfaces::msg::{Parameter, ParameterType, ParameterValue};
use r2r::QosProfile;
use std::sync::Arc;

/// Everything `set_model` needs to switch the model for the next requests.
#[derive(Clone)]
pub struct ModelSwitch {
    pub params: Arc<ParamStore>,
    pub config: ConfigHandle,
}

impl ModelSwitch {
    /// Sets the `model` parameter (checked on the server first, announced on
    /// `/parameter_events`). Returns (success, message, previous).
    pub async fn switch(&self, model: &str) -> (bool, String, String) {
        let model = model.trim();
        let previous = self.config.get().model.clone();
        let value = ParameterValue {
            type_: ParameterType::PARAMETER_STRING as u8,
            string_value: model.to_string(),
            ..Default::default()
        };
        let note = match self.params.set(&[Parameter { name: "model".into(), value }]).await {
            Ok(note) if note.is_empty() => note,
            Ok(note) => format!("; {note}"),
            Err(why) => {
                log::warn!("set_model '{model}' refused: {why}");
                return (false, format!("{why}; still using '{previous}'"), previous);
            }
        };
        log::info!("model switched from '{previous}' to '{model}' (requests already streaming finish on '{previous}')");
        (true, format!("model set to '{model}' (was '{previous}'){note}"), previous)
    }
}

/// Creates the services; returns their request loops, to be run on the spin thread.
pub fn serve(
    node: &mut r2r::Node, switch: ModelSwitch, bridge: Bridge, runtime: &tokio::runtime::Handle,
) -> Result<Vec<BoxFuture<'static, ()>>, StartError> {
    let mut resets = node.create_service::<Reset::Service>("reset", QosProfile::services_default())?;
    let (bridge, reset_bridge) = (bridge.clone(), bridge);
    let reset_loop = async move {
        let bridge = reset_bridge;
        while let Some(req) = resets.next().await {
            let answer = bridge.reset(&req.message.session_id);
            if let Err(e) = req.respond(Reset::Response { success: answer.success, message: answer.message }) {
                log::error!("could not answer a reset request: {e}");
            }
        }
    };
    let mut cancels = node.create_service::<Cancel::Service>("cancel", QosProfile::services_default())?;
    let cancel_loop = async move {
        while let Some(req) = cancels.next().await {
            let answer = bridge.cancel(&req.message.session_id);
            if let Err(e) = req.respond(Cancel::Response { success: answer.success, message: answer.message }) {
                log::error!("could not answer a cancel request: {e}");
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
    Ok(vec![reset_loop.boxed(), cancel_loop.boxed(), set_model_loop.boxed()])
}
