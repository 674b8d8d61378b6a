//! A warm model for a speaking robot (parameters `warm_up`, `unload_on_exit`). No ROS.
//!
//! Ollama loads a model on the first request that names it, and that request waits for the
//! load (`load_duration`: seconds for a large model). With `warm_up` (default on) the node loads
//! the model itself, at start and after every change of `model` or `ollama_url` (the `set_model`
//! service and `ros2 param set` both end in a parameter change): a chat request with no messages
//! ([`Client::load`]; Ollama's `docs/api.md`, "Load a model", answers `done_reason: "load"`),
//! with the `keep_alive` parameter, so the model then stays as long as after an answer. Alongside,
//! the node looks up what its first request would (the model's context window, `/api/show`).
//!
//! The load runs in the background: inputs are taken and queued as usual meanwhile (a request
//! that reaches Ollama during the load waits for it there, as it would without warm-up, but
//! never for the bridge). A failure (server down, unknown model, timeout after
//! `connect_timeout_s + load_timeout_s`) is logged at WARN and is never fatal. A newer warm-up
//! cancels an older one still waiting (its HTTP request is closed; Ollama finishes a load it
//! started anyway, `server/sched.go`).
//!
//! With `unload_on_exit` (default off) the node sends `keep_alive: 0` for its model when it
//! stops ([`Client::unload`], answered `done_reason: "unload"`), waiting at most the shutdown
//! grace; warm-ups still running are cancelled first.

use crate::config::Config;
use crate::ollama::{Client, OllamaError};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why a warm-up was asked for (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The node started.
    Start,
    /// `model` or `ollama_url` changed.
    ModelChange,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "at start",
            Reason::ModelChange => "after a model change",
        }
    }
}

/// Runs warm-ups in the background, one at a time (a newer one cancels the older).
pub struct WarmUp {
    /// The running warm-up's cancel token (a child of `stopping`).
    current: Mutex<CancellationToken>,
    /// Cancelled when the node stops: no warm-up after that.
    stopping: CancellationToken,
}

impl Default for WarmUp {
    fn default() -> Self {
        Self::new()
    }
}

impl WarmUp {
    pub fn new() -> WarmUp {
        let stopping = CancellationToken::new();
        WarmUp { current: Mutex::new(stopping.child_token()), stopping }
    }

    /// Loads `config.model` in the background when `config.warm_up` is on, and runs `also` (e.g.
    /// the context-window lookup the first request would make) alongside; returns at once.
    /// Needs a tokio runtime (it spawns a task). Failures are logged at WARN.
    pub fn start<F>(&self, client: Result<Client, OllamaError>, config: &Config, reason: Reason, also: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if !config.warm_up || self.stopping.is_cancelled() {
            return;
        }
        let cancel = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            current.cancel();
            *current = self.stopping.child_token();
            current.clone()
        };
        let (model, keep_alive, url) = (config.model.clone(), config.keep_alive, config.shown_url());
        tokio::spawn(async move {
            let client = match client {
                Ok(client) => client,
                Err(e) => return log::warn!("warm_up {}: cannot load model '{model}': {e}", reason.as_str()),
            };
            let started = Instant::now();
            log::info!("warm_up {}: loading model '{model}' on {url}", reason.as_str());
            let load = async {
                match client.load(&model, keep_alive).await {
                    Ok(answer) => log::info!("warm_up: model '{model}' is loaded ({} after {} ms)",
                        answer.done_reason.as_deref().unwrap_or("no done_reason"), started.elapsed().as_millis()),
                    Err(e) => log::warn!("warm_up: could not load model '{model}' on {url}: {e} \
                        (the first answer will wait for the load)"),
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => log::debug!("warm_up of model '{model}' cancelled (a newer one, or shutdown)"),
                _ = async { tokio::join!(load, also) } => {}
            }
        });
    }

    /// Cancels the warm-up still running, and any later one (the node is stopping).
    pub fn stop(&self) {
        self.stopping.cancel();
    }
}

/// With `config.unload_on_exit`, unloads `config.model` (`keep_alive: 0`), waiting at most
/// `within`; logs the outcome (a failure at WARN). Without it, returns at once.
pub async fn unload_at_exit(client: Result<Client, OllamaError>, config: &Config, within: Duration) {
    if !config.unload_on_exit {
        return;
    }
    let model = &config.model;
    let client = match client {
        Ok(client) => client,
        Err(e) => return log::warn!("unload_on_exit: cannot unload model '{model}': {e}"),
    };
    match tokio::time::timeout(within, client.unload(model)).await {
        Ok(Ok(answer)) => log::info!("unload_on_exit: model '{model}' unloaded ({})",
            answer.done_reason.as_deref().unwrap_or("no done_reason")),
        Ok(Err(e)) => log::warn!("unload_on_exit: could not unload model '{model}' on {}: {e}", config.shown_url()),
        Err(_) => log::warn!("unload_on_exit: the server did not answer the unload of model '{model}' within {:.1}s",
            within.as_secs_f64()),
    }
}
