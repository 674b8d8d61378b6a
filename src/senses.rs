//! What a request carries besides its text: the latest camera frame (`images` of the user
//! message) and the ROS tools (`tools`), each offered only to a model that has the capability
//! (`vision`, `tools` in `/api/show`, read once per server and model).
//!
//! [`Senses::prepare`] is called by `exchange` once per request, before the first `/api/chat`:
//! it attaches the frame (or refuses the request with a clear error: no camera, no frame yet,
//! frame too old, unsupported encoding, a model without `vision`) and offers the tools,
//! returning the [`ToolRounds`] that `exchange` drives after each streamed answer. The frame is
//! only in this request's messages: the history keeps the text of the turn only.

use crate::config::Config;
use crate::images::{encode_frame, FrameStore};
use crate::ollama::{ChatRequest, Client, Role};
use crate::session::Request;
use crate::tools::{ToolExecutor, ToolRounds, ToolSet};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The camera and the tools of the node.
pub struct Senses {
    camera: Arc<FrameStore>,
    tools: Option<(Arc<ToolSet>, Arc<dyn ToolExecutor>)>,
    /// `capabilities` of `/api/show`, by (server URL, model).
    capabilities: Mutex<HashMap<(String, String), Vec<String>>>,
    /// Models already reported as unable to use tools (logged once each).
    told_no_tools: Mutex<HashSet<String>>,
}

impl Senses {
    /// `camera` gets the subscriptions' frames; `tools` is the loaded `tools_file` and the ROS
    /// layer that runs them (`None` = no tools).
    pub fn new(camera: Arc<FrameStore>, tools: Option<(Arc<ToolSet>, Arc<dyn ToolExecutor>)>) -> Senses {
        Senses { camera, tools, capabilities: Mutex::default(), told_no_tools: Mutex::default() }
    }

    /// Attaches the frame and offers the tools for `request`. `Err` is the request's error
    /// response. `Ok(Some(rounds))` when the model was offered tools.
    pub async fn prepare(&self, client: &Client, config: &Config, request: &Request, chat: &mut ChatRequest)
                         -> Result<Option<ToolRounds>, String> {
        let attach = config.attach_image.wants(request.attach_image);
        if request.attach_image && !attach {
            log::info!("request {}: attach_image ignored (parameter attach_image is 'never')", request.id);
        }
        if !attach && self.tools.is_none() {
            return Ok(None);
        }
        let capabilities = self.capabilities(client, config).await;
        if attach {
            let capabilities = capabilities.as_ref().map_err(|e| {
                format!("could not check whether model '{}' can see images (/api/show): {e}", config.model)
            })?;
            if !capabilities.iter().any(|c| c == "vision") {
                return Err(format!(
                    "model '{}' cannot see images: /api/show lists no 'vision' capability (it has: {}); \
                     switch to a vision model (set_model) or send the input without attach_image",
                    config.model, capabilities.join(", ")));
            }
            self.attach_frame(config, request, chat).await?;
        }
        let Some((tools, executor)) = &self.tools else { return Ok(None) };
        match capabilities {
            Ok(caps) if caps.iter().any(|c| c == "tools") => {
                chat.tools = Some(tools.definitions());
                Ok(Some(ToolRounds::new(tools.clone(), executor.clone(), config.max_tool_rounds, config.tools_dry_run,
                                        &request.session_id, request.id)))
            }
            Ok(caps) => {
                if self.told_no_tools.lock().unwrap_or_else(|e| e.into_inner()).insert(config.model.clone()) {
                    log::warn!("model '{}' has no 'tools' capability (it has: {}): it is asked without the tools of tools_file",
                        config.model, caps.join(", "));
                }
                Ok(None)
            }
            Err(e) => {
                log::warn!("request {}: could not read the capabilities of model '{}' ({e}); asking without tools",
                    request.id, config.model);
                Ok(None)
            }
        }
    }

    /// Puts the latest frame into the last user message of `chat`.
    async fn attach_frame(&self, config: &Config, request: &Request, chat: &mut ChatRequest) -> Result<(), String> {
        let frame = self.camera.latest(config.image_max_age, SystemTime::now()).map_err(|e| e.to_string())?;
        let max_side = config.image_max_side;
        let age = frame.age(SystemTime::now());
        let encoded = tokio::task::spawn_blocking(move || encode_frame(&frame, max_side).map(|img| (img, frame.topic.clone())))
            .await
            .map_err(|e| format!("encoding the camera frame failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let (image, topic) = encoded;
        let user = chat.messages.iter_mut().rev().find(|m| m.role == Role::User)
            .ok_or("the request has no user message to attach the image to")?;
        user.images.push(image.base64);
        log::info!("request {}: attached a {}x{} {:?} frame from {topic} ({:.2}s old{})", request.id, image.width,
            image.height, image.format, age.as_secs_f64(), if image.passed_through { ", as received" } else { "" });
        Ok(())
    }

    /// The model's capabilities, from `/api/show` once per server and model.
    async fn capabilities(&self, client: &Client, config: &Config) -> Result<Vec<String>, String> {
        let key = (config.ollama_url.clone(), config.model.clone());
        if let Some(known) = self.capabilities.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(known.clone());
        }
        let shown = client.show(&config.model).await.map_err(|e| e.to_string())?;
        self.capabilities.lock().unwrap_or_else(|e| e.into_inner()).insert(key, shown.capabilities.clone());
        Ok(shown.capabilities)
    }
}
