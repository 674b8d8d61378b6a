//! One server of a fleet ([`Server`]): its client, whether it is up (and the probes that bring
//! it back), which models it has, and the requests it is serving.

use crate::ollama::{same_model, Client, OllamaError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The first probe of a server that went down comes this long after the failure; each failed
/// probe doubles the wait, up to [`PROBE_MAX`].
pub const PROBE_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two probes of a down server.
pub const PROBE_MAX: Duration = Duration::from_secs(30);
/// How long what a model list said about a model is trusted.
pub const MODEL_LIST_TTL: Duration = Duration::from_secs(60);
/// A model-list lookup is not repeated sooner than this after the last one failed.
const FAILED_LOOKUP_PAUSE: Duration = Duration::from_secs(5);

/// One server and what is known about it.
pub struct Server {
    /// The client for this server (cheap to clone).
    pub client: Client,
    /// Position in `ollama_url`.
    index: usize,
    /// Requests of the node on this server now.
    in_flight: AtomicUsize,
    state: Mutex<State>,
    /// True while the server is up: awaited by whatever waits for it to rejoin ([`Server::until_up`]).
    up: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    /// `Some` while the server is down: since when, and why.
    down: Option<(Instant, String)>,
    /// Whether the server has a model (by the name requests use), and when that was learnt.
    models: HashMap<String, (bool, Instant)>,
    /// When a model-list lookup last failed.
    lookup_failed: Option<Instant>,
}

impl Server {
    pub(super) fn new(index: usize, client: Client) -> Server {
        let up = tokio::sync::watch::Sender::new(true);
        Server { client, index, in_flight: AtomicUsize::new(0), state: Mutex::new(State::default()), up }
    }

    /// The URL as shown (password as `***`).
    pub fn shown(&self) -> &str {
        self.client.base_url()
    }

    /// Position in `ollama_url` (0 = first).
    pub fn index(&self) -> usize {
        self.index
    }

    /// False while the server is marked down.
    pub fn is_up(&self) -> bool {
        self.lock().down.is_none()
    }

    /// Why the server is down (`None` while it is up).
    pub fn down_because(&self) -> Option<String> {
        self.lock().down.as_ref().map(|(_, why)| why.clone())
    }

    /// Requests of the node this server is serving now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request on this server until the guard is dropped.
    pub(super) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Takes the server out of the rotation after `why`, and probes it until it answers (the
    /// first failure only; a down server stays down). `alone`: it is the fleet's only server (its
    /// requests still go to it; the log line says so).
    pub(super) fn mark_down(self: &Arc<Self>, why: &OllamaError, alone: bool) {
        {
            let mut state = self.lock();
            if state.down.is_some() {
                return;
            }
            state.down = Some((Instant::now(), why.to_string()));
            self.up.send_replace(false);
        }
        let meanwhile = if alone { "its requests are still sent to it" } else { "its requests go to the other servers" };
        log::warn!("server {} is down ({why}): {meanwhile}; probing it every {}-{} s until it answers",
            self.shown(), PROBE_FIRST.as_secs(), PROBE_MAX.as_secs());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(probe_until_up(Arc::downgrade(self)))),
            Err(_) => log::warn!("no runtime to probe {} on: it rejoins when a request succeeds there", self.shown()),
        }
    }

    /// Puts the server back into the rotation.
    pub(super) fn mark_up(&self) {
        let mut state = self.lock();
        if let Some((since, _)) = state.down.take() {
            self.up.send_replace(true);
            drop(state);
            log::info!("server {} answers again: back in the rotation after {:.1}s", self.shown(), since.elapsed().as_secs_f64());
        }
    }

    /// Returns when the server is up: at once while it is, else when a probe (or a request) puts
    /// it back into the rotation.
    pub async fn until_up(&self) {
        // `wait_for` fails only when the sender is gone, and `self` holds it
        let _ = self.up.subscribe().wait_for(|up| *up).await;
    }

    /// Whether the server is up, as a `watch` receiver: its value turns `false` when the server is
    /// marked down and `true` when it rejoins the rotation (each rejoin is a change to `true`).
    pub fn watch_up(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Whether the server has `model`, if known (learnt less than [`MODEL_LIST_TTL`] ago).
    pub fn has_model(&self, model: &str) -> Option<bool> {
        self.lock().models.get(model).filter(|(_, at)| at.elapsed() < MODEL_LIST_TTL).map(|(has, _)| *has)
    }

    /// Records whether the server has `model` (e.g. after a "model not found" answer).
    pub fn learn(&self, model: &str, has: bool) {
        self.lock().models.insert(model.to_string(), (has, Instant::now()));
    }

    /// Looks `model` up in the server's model list (`tags`), unless a lookup failed just now.
    pub(super) async fn look_up(&self, model: &str) {
        if self.lock().lookup_failed.is_some_and(|at| at.elapsed() < FAILED_LOOKUP_PAUSE) {
            return;
        }
        match self.client.tags().await {
            Ok(names) => {
                let now = Instant::now();
                let mut state = self.lock();
                state.models.insert(model.to_string(), (names.iter().any(|n| same_model(n, model)), now));
                for name in names {
                    state.models.insert(name, (true, now));
                }
            }
            Err(e) => {
                log::debug!("model list of {}: {e}", self.shown());
                self.lock().lookup_failed = Some(Instant::now());
            }
        }
    }

    /// Asks the server whether it has `model` (`/api/show`, or `/v1/models`): `Ok(false)` for a
    /// 404; an answer puts a down server back up.
    pub(super) async fn check(&self, model: &str) -> Result<bool, OllamaError> {
        let has = match self.client.show(model).await {
            Ok(_) => true,
            Err(OllamaError::Status { code: 404, .. }) => false,
            Err(e) => return Err(e),
        };
        self.learn(model, has);
        self.mark_up();
        Ok(has)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request counted on a server (see [`Server::enter`]).
pub(super) struct InFlight(Arc<Server>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The wait before probe `attempt` (0-based): [`PROBE_FIRST`] doubled each time, at most [`PROBE_MAX`].
pub fn probe_wait(attempt: u32) -> Duration {
    PROBE_FIRST.saturating_mul(1u32 << attempt.min(16)).min(PROBE_MAX)
}

/// Probes a down server with growing waits until it answers (then it is up again), it is put
/// back up otherwise, or its fleet is gone.
async fn probe_until_up(server: Weak<Server>) {
    let mut attempt = 0u32;
    loop {
        tokio::time::sleep(probe_wait(attempt)).await;
        attempt = attempt.saturating_add(1);
        let Some(server) = server.upgrade() else { return };
        if server.is_up() {
            return;
        }
        match server.client.ping().await {
            Ok(()) => return server.mark_up(),
            Err(e) => log::debug!("probe {attempt} of {}: {e}", server.shown()),
        }
    }
}
