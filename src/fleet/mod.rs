//! Several model servers behind the one client interface: which server answers a request, and
//! what happens when one fails. No ROS here; one URL behaves exactly as a single [`Client`].
//!
//! `ollama_url` may list several servers (`http://gpu1:11434,http://gpu2:11434`), all speaking
//! the same `api`. The node does not balance load itself beyond this:
//!
//! * **Affinity.** A session stays on the server that answered it last while that server is up:
//!   its prompt (KV) cache holds the conversation's prefix.
//! * **New sessions** go to the up server with the fewest requests in flight (then the fewest
//!   sessions) among those that have the model. Whether a server has it comes from its model list
//!   (`/api/tags`, or `/v1/models`), looked up when not known (a miss) and trusted for
//!   [`MODEL_LIST_TTL`]; a 404 "model not found" also says so.
//! * **Failover before output** ([`Route::chat_stream`]): connection refused, connect timeout,
//!   no first line within `load_timeout_s`, a 429 or 5xx answer, a connection closed before any
//!   line, or the model missing there → the request goes to the next server at once (no backoff,
//!   and it is not one of the `max_retries`), with the whole history: every request carries it.
//!   After the first chunk arrived the request is bound to its server; a failure then ends it
//!   with an error, as with one server (no answer is ever spoken twice).
//! * **Health** (`standing`): a server that failed so is marked down, and probed (`GET /`, or
//!   `GET /v1/models`) after 1 s, 2 s, 4 s ... at most [`PROBE_MAX`] apart; it rejoins when it
//!   answers (or when a request it was tried for as a last resort succeeds). Down servers are
//!   tried only after every up one. One server is always tried; it is marked down (and probed) only
//!   when it cannot be reached, so that its return is noticed too ([`Server::watch_up`]).
//!
//! * **Every server** gets the calls that are not a request's: the warm-up's load and the
//!   context-window lookup (each server's own window is what its requests are fitted to), the
//!   unload at exit, `list_models`, `pull_model` and the model check of `set_model`.
//!
//! Layout: `standing` (up/down, probes, model lists of one server), `route` (one request's
//! server choice and failover), here the fleet and its cache in the bridge, and the model check
//! of `set_model` ([`Fleet::check_model`]).

mod route;
mod standing;

#[cfg(test)]
mod tests;

pub use route::Route;
pub use standing::{Server, MODEL_LIST_TTL, PROBE_FIRST, PROBE_MAX};

use crate::config::{ApiKeys, Config};
use crate::ollama::{Api, Client, ClientConfig, OllamaError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Affinities older than this are forgotten when the table is pruned.
const AFFINITY_TTL: Duration = Duration::from_secs(3600);
/// The affinity table is pruned when it holds more sessions than this.
const AFFINITY_PRUNE_AT: usize = 10_000;

/// The servers of one `ollama_url` and what is known about them.
pub struct Fleet {
    servers: Vec<Arc<Server>>,
    /// The server that answered each session last, and when.
    affinity: Mutex<HashMap<String, (usize, Instant)>>,
}

impl Fleet {
    /// A fleet of one client per config (in order). Fails on the first unusable config.
    pub fn new(configs: Vec<ClientConfig>) -> Result<Fleet, OllamaError> {
        let clients = configs.into_iter().map(Client::new).collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(OllamaError::Config("no server URL".into()));
        }
        let servers = clients.into_iter().enumerate().map(|(i, client)| Arc::new(Server::new(i, client))).collect();
        Ok(Fleet { servers, affinity: Mutex::new(HashMap::new()) })
    }

    /// The servers, in `ollama_url`'s order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// The API the servers speak.
    pub fn api(&self) -> Api {
        self.servers[0].client.api()
    }

    /// True when `e` says the server cannot be reached: refused, connect timeout, a transport
    /// failure, or closed before answering anything.
    pub fn cut_off(e: &OllamaError) -> bool {
        match e {
            OllamaError::Connect { .. } | OllamaError::ConnectTimeout { .. } | OllamaError::Http(_) => true,
            OllamaError::Truncated { chunks, .. } => *chunks == 0,
            _ => false,
        }
    }

    /// After a call other than a request's (a warm-up's load) failed on `server` with `e`: when `e`
    /// says the server cannot be reached ([`Fleet::cut_off`]), marks it down (with one server too:
    /// its requests are still sent to it), so that the probes notice when it answers again
    /// ([`Server::watch_up`]), and returns true.
    pub fn unreachable(&self, server: &Arc<Server>, e: &OllamaError) -> bool {
        let cut_off = Fleet::cut_off(e);
        if cut_off {
            server.mark_down(e, self.servers.len() == 1);
        }
        cut_off
    }

    /// Looks `model` up in the model lists of the up servers where it is not known (several
    /// servers only: one is always tried), at once.
    pub async fn learn_models(&self, model: &str) {
        if self.servers.len() > 1 {
            let unknown = self.servers.iter().filter(|s| s.is_up() && s.has_model(model).is_none());
            futures::future::join_all(unknown.map(|s| s.look_up(model))).await;
        }
    }

    /// True when `server` is known not to have `model` (from its model list or a "model not
    /// found" answer, within [`MODEL_LIST_TTL`]) and it is one of several: requests pass it over.
    pub fn lacks(&self, server: &Server, model: &str) -> bool {
        self.servers.len() > 1 && server.has_model(model) == Some(false)
    }

    /// The way one request of `session` for `model` takes (see [`Route`]).
    pub fn route(self: &Arc<Fleet>, session: &str, model: &str) -> Route {
        Route::new(self.clone(), session, model)
    }

    /// The server `session` was answered by last, if it is still remembered.
    fn affinity(&self, session: &str) -> Option<usize> {
        self.lock_affinity().get(session).map(|(server, _)| *server)
    }

    /// Remembers that `server` answered `session`.
    fn answered(&self, session: &str, server: usize) {
        let mut table = self.lock_affinity();
        let now = Instant::now();
        if table.len() >= AFFINITY_PRUNE_AT {
            table.retain(|_, (_, at)| now.duration_since(*at) < AFFINITY_TTL);
        }
        table.insert(session.to_string(), (server, now));
    }

    /// Sessions remembered per server.
    fn sessions_per_server(&self) -> Vec<usize> {
        let mut counts = vec![0; self.servers.len()];
        for (server, _) in self.lock_affinity().values() {
            if let Some(n) = counts.get_mut(*server) {
                *n += 1;
            }
        }
        counts
    }

    fn lock_affinity(&self) -> std::sync::MutexGuard<'_, HashMap<String, (usize, Instant)>> {
        self.affinity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `set_model`'s check. `Ok(note)` when at least one server that answers has `model`: the
    /// note names the servers that lack it or did not answer (empty when none). `Err` says why
    /// no server can serve it, in words for a person. One server: its `/api/show` (or
    /// `/v1/models`) answer, as the node always checked.
    pub async fn check_model(&self, model: &str) -> Result<String, String> {
        let asked = futures::future::join_all(self.servers.iter().map(|s| s.check(model))).await;
        if let [only] = asked.as_slice() {
            let server = self.servers[0].shown();
            return match only {
                Ok(true) => Ok(String::new()),
                Ok(false) if self.api() == Api::OpenAi => Err(format!(
                    "model '{model}' is not served by the server at {server} (api: openai, GET /v1/models): start the \
                     engine with it, or pick one it serves")),
                Ok(false) => Err(format!(
                    "model '{model}' not found on the Ollama server at {server}: pull it first (`ollama pull {model}`)")),
                Err(e) => Err(format!("could not check model '{model}': {e}")),
            };
        }
        let mut missing = Vec::new();
        for (server, answer) in self.servers.iter().zip(&asked) {
            match answer {
                Ok(true) => {}
                Ok(false) => missing.push(format!("{} (does not have it)", server.shown())),
                Err(e) => missing.push(format!("{} (did not answer: {e})", server.shown())),
            }
        }
        if asked.iter().any(|a| matches!(a, Ok(true))) {
            Ok(if missing.is_empty() { String::new() } else { format!("not on {}", missing.join("; ")) })
        } else {
            Err(format!("model '{model}' is on none of the servers: {}", missing.join("; ")))
        }
    }
}

/// What a cached fleet was built from: the servers, the API, the connect, load and idle timeouts.
type FleetKey = (String, Api, Duration, Duration, Duration);

fn fleet_key(config: &Config) -> FleetKey {
    (config.ollama_url.clone(), config.api, config.connect_timeout, config.load_timeout, config.request_timeout)
}

/// Whether a change from `before` to `now` builds a new fleet (new servers, health and affinity
/// forgotten), so that what watches the old one (warm-up) must start again.
pub fn rebuilds_fleet(before: &Config, now: &Config) -> bool {
    fleet_key(before) != fleet_key(now)
}

/// The fleet for the current parameters, rebuilt (forgetting health and affinity) when the
/// servers, the API or a timeout change.
#[derive(Default)]
pub struct FleetCache {
    current: Mutex<Option<(FleetKey, Arc<Fleet>)>>,
}

impl FleetCache {
    /// The fleet for `config`, with the keys of the environment.
    pub fn get(&self, config: &Config, keys: &ApiKeys) -> Result<Arc<Fleet>, OllamaError> {
        let key = fleet_key(config);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_for, fleet)) = current.as_ref() {
            if *built_for == key {
                return Ok(fleet.clone());
            }
        }
        let fleet = Arc::new(Fleet::new(config.client_configs(keys))?);
        *current = Some((key, fleet.clone()));
        Ok(fleet)
    }
}
