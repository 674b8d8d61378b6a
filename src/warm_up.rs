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
//! With several servers (`ollama_url` lists them) every server is warmed, at once: a session may
//! be routed to any of them. Each server's outcome is logged with its URL (password as `***`),
//! and one failing does not stop the others. A server known from its model list (or a "model not
//! found" answer) not to have the model is skipped, with one INFO line: requests pass it over.
//!
//! A warm-up keeps its servers warm until a newer one or the node's stop: whenever a server
//! rejoins the rotation (`fleet`: marked down, then answering a probe or a request again), the
//! model is loaded there again, since a restarted `ollama serve` has nothing loaded. A server
//! that cannot be reached (refused, connect timeout) by the load, one server alone included (a
//! launch file may start the node before its `ollama serve` listens), is marked down, and the
//! model is loaded there when the fleet's probes (1 s, 2 s, 4 s ... 30 s apart) find it
//! answering; so is a server that was down when the warm-up began.
//!
//! The load runs in the background: inputs are taken and queued as usual meanwhile (a request
//! that reaches Ollama during the load waits for it there, as it would without warm-up, but
//! never for the bridge). A failure (server down, unknown model, timeout after
//! `connect_timeout_s + load_timeout_s`) is logged at WARN and is never fatal. A newer warm-up
//! cancels an older one still waiting (its HTTP request is closed; Ollama finishes a load it
//! started anyway, `server/sched.go`).
//!
//! With `unload_on_exit` (default off) the node sends `keep_alive: 0` for its model to every
//! server when it stops ([`Client::unload`], answered `done_reason: "unload"`), at once, waiting
//! at most the shutdown grace; warm-ups still running are cancelled first. Servers known not to
//! have the model are skipped (INFO), and a "model not found" answer is INFO too (nothing to
//! unload). Servers spoken to with `api: openai` are skipped (an engine keeps the models it was
//! started with).

use crate::config::Config;
use crate::fleet::{Fleet, Server};
use crate::ollama::{Api, Client, KeepAlive, OllamaError};
use std::future::Future;
use std::sync::{Arc, Mutex};
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

    /// Loads `config.model` on every server of `fleet` in the background when `config.warm_up` is
    /// on, and runs `look_up(client)` for each server alongside (e.g. the context-window lookup
    /// its first request would make); returns at once. A server that is down is warmed when it
    /// is back, and a server that rejoins the rotation later is warmed again (see the module doc),
    /// until a newer warm-up or the node's stop. Needs a tokio runtime (it spawns a task).
    /// Failures are logged at WARN.
    pub fn start<F, L>(&self, fleet: Result<Arc<Fleet>, OllamaError>, config: &Config, reason: Reason, look_up: L)
    where
        L: Fn(Client) -> F + Send + Sync + 'static,
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
        let (model, keep_alive) = (config.model.clone(), config.keep_alive);
        tokio::spawn(async move {
            let fleet = match fleet {
                Ok(fleet) => fleet,
                Err(e) => return log::warn!("warm_up {}: cannot load model '{model}': {e}", reason.as_str()),
            };
            let each = fleet.servers().iter().map(|server| keep_warm(&fleet, server, &model, keep_alive, reason, &look_up));
            tokio::select! {
                _ = cancel.cancelled() => log::debug!("warm_up of model '{model}' ended (a newer one, or shutdown)"),
                _ = futures::future::join_all(each) => {}
            }
        });
    }

    /// Cancels the warm-up still running, and any later one (the node is stopping).
    pub fn stop(&self) {
        self.stopping.cancel();
    }
}

/// How one load on one server ended.
enum Loaded {
    /// Loaded, skipped (the server lacks the model), or failed in a way a new try would repeat.
    Done,
    /// The server could not be reached: it is marked down, and the load waits for its return.
    Unreachable,
}

/// Keeps `model` loaded on `server`, until cancelled (the caller drops this future): loads it
/// once the server is up, and again each time it rejoins the rotation; a load that finds the
/// server unreachable (which marks it down) waits for its return and loads then.
async fn keep_warm<F: Future<Output = ()>>(
    fleet: &Fleet, server: &Arc<Server>, model: &str, keep_alive: Option<KeepAlive>, reason: Reason,
    look_up: &impl Fn(Client) -> F,
) {
    let url = server.shown();
    let mut up = server.watch_up();
    if !*up.borrow_and_update() {
        log::info!("warm_up {}: {url} is down; model '{model}' is loaded there when it is back in the rotation",
            reason.as_str());
    }
    let mut why = reason.as_str();
    loop {
        // the sender lives in `server`, which this future holds: `Err` cannot happen
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        if let Loaded::Unreachable = load_once(fleet, server, model, keep_alive, why, look_up).await {
            continue;
        }
        // the next rejoin: a change whose value is `true` (a down and up meanwhile count too)
        loop {
            if up.changed().await.is_err() {
                return;
            }
            if *up.borrow_and_update() {
                break;
            }
        }
        why = "on the server's return";
        log::info!("warm_up: {url} is back in the rotation: loading model '{model}' there again");
    }
}

/// One load of `model` on `server` with `look_up` alongside, logged (`why`: when it was asked for).
async fn load_once<F: Future<Output = ()>>(
    fleet: &Fleet, server: &Arc<Server>, model: &str, keep_alive: Option<KeepAlive>, why: &str,
    look_up: &impl Fn(Client) -> F,
) -> Loaded {
    let url = server.shown();
    fleet.learn_models(model).await;
    if fleet.lacks(server, model) {
        log::info!("warm_up {why}: {url} does not have model '{model}' (its model list): not loaded there; \
            sessions go to the servers that have it");
        return Loaded::Done;
    }
    let started = Instant::now();
    log::info!("warm_up {why}: loading model '{model}' on {url}");
    let (loaded, ()) = tokio::join!(server.client.load(model, keep_alive), look_up(server.client.clone()));
    let e = match loaded {
        Ok(answer) => {
            log::info!("warm_up: model '{model}' is loaded on {url} ({} after {} ms)",
                answer.done_reason.as_deref().unwrap_or("no done_reason"), started.elapsed().as_millis());
            return Loaded::Done;
        }
        Err(e) => e,
    };
    if fleet.unreachable(server, &e) {
        log::warn!("warm_up: could not load model '{model}' on {url}: {e}; it is loaded there when the server answers");
        return Loaded::Unreachable;
    }
    let then = if e.is_model_not_found() && fleet.servers().len() > 1 {
        server.learn(model, false);
        "sessions go to the servers that have it"
    } else {
        "the first answer there will wait for the load"
    };
    log::warn!("warm_up: could not load model '{model}' on {url}: {e} ({then})");
    Loaded::Done
}

/// With `config.unload_on_exit`, unloads `config.model` (`keep_alive: 0`) on every server of
/// `fleet` at once (not with `api: openai`, nor on a server known not to have it), waiting at
/// most `within`; logs each server's outcome (a failure at WARN). Without it, returns at once.
pub async fn unload_at_exit(fleet: Result<Arc<Fleet>, OllamaError>, config: &Config, within: Duration) {
    if !config.unload_on_exit {
        return;
    }
    let model = &config.model;
    let fleet = match fleet {
        Ok(fleet) => fleet,
        Err(e) => return log::warn!("unload_on_exit: cannot unload model '{model}': {e}"),
    };
    if fleet.api() == Api::OpenAi {
        return log::info!("unload_on_exit: not sent (api: openai; an engine keeps the models it was started with)");
    }
    let fleet = &fleet;
    let each = fleet.servers().iter().map(|server| async move {
        let url = server.shown();
        if fleet.lacks(server, model) {
            return log::info!("unload_on_exit: {url} does not have model '{model}' (its model list): nothing to unload there");
        }
        match tokio::time::timeout(within, server.client.unload(model)).await {
            Ok(Ok(answer)) => log::info!("unload_on_exit: model '{model}' unloaded on {url} ({})",
                answer.done_reason.as_deref().unwrap_or("no done_reason")),
            Ok(Err(e)) if e.is_model_not_found() =>
                log::info!("unload_on_exit: {url} does not have model '{model}' ({e}): nothing to unload there"),
            Ok(Err(e)) => log::warn!("unload_on_exit: could not unload model '{model}' on {url}: {e}"),
            Err(_) => log::warn!("unload_on_exit: {url} did not answer the unload of model '{model}' within {:.1}s",
                within.as_secs_f64()),
        }
    });
    futures::future::join_all(each).await;
}
