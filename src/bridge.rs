//! The bridge: turns inputs into per-session jobs, runs them with bounded concurrency, commits
//! completed exchanges, and answers reset / model checks. No ROS here: the ROS layer calls
//! [`Bridge::submit`] from its subscription loops (it never waits) and implements [`Outputs`].

use crate::config::{ApiKeys, Config, ConfigHandle};
use crate::context::ContextWindows;
use crate::exchange;
use crate::fleet::{Fleet, FleetCache};
use crate::history_files::HistoryFiles;
use crate::ollama::{Client, OllamaError};
use crate::outputs::{Counters, Ending, FinalResponse, Outputs, SessionState};
use crate::session::{Admission, Limits, Request, SessionStore, Turn, Withdrawn};
use crate::senses::Senses;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Session ids longer than this are rejected (they name files and appear in every message).
pub const MAX_SESSION_ID_CHARS: usize = 128;
/// The session of inputs that name none (`speech_text`, or an `Utterance` with an empty id).
pub const DEFAULT_SESSION: &str = "default";

/// Cheap-clone handle to the running bridge.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConfigHandle,
    store: SessionStore,
    outputs: Arc<dyn Outputs>,
    history_files: Option<HistoryFiles>,
    limiter: Semaphore,
    /// The limiter's permits (`max_concurrent_requests` at start).
    slots: usize,
    next_request_id: AtomicU64,
    /// Parent of every job's cancel token: cancelling it cancels everything.
    shutdown: CancellationToken,
    workers: TaskTracker,
    /// The servers of the current `ollama_url` (clients, health, affinity); rebuilt when the
    /// servers, the API or the timeouts change.
    fleets: FleetCache,
    /// `OLLAMA_API_KEY` and `OPENAI_API_KEY`, read once at start.
    keys: ApiKeys,
    /// Camera and tools ([`Bridge::set_senses`]); without them requests are text only.
    senses: OnceLock<Arc<Senses>>,
    /// Context windows of the models used, looked up on the server once in a while.
    windows: ContextWindows,
}

/// What the bridge is doing now (for diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Activity {
    /// Requests holding one of the `max_concurrent_requests` slots (talking to Ollama).
    pub in_flight: usize,
    /// Inputs waiting: in a session's queue, or for a free slot.
    pub queued: usize,
    /// Sessions in memory.
    pub sessions: usize,
    /// `max_concurrent_requests` (read at start).
    pub slots: usize,
}

/// Answer of a reset.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetAnswer {
    pub success: bool,
    pub message: String,
}

impl Bridge {
    /// Starts the bridge on the current tokio runtime.
    pub fn start(config: ConfigHandle, outputs: Arc<dyn Outputs>) -> Bridge {
        let snapshot = config.get();
        let store = SessionStore::new();
        let history_files = snapshot.history_dir.as_ref().and_then(|dir| match HistoryFiles::open(dir) {
            Ok(files) => {
                // the most recently used sessions, as many as memory may hold; the others are
                // read back when they speak again
                let saved = files.load_all(snapshot.max_history_turns);
                let (mut sessions, mut turns) = (0, 0);
                for session in saved.into_iter().take(snapshot.max_sessions) {
                    (sessions, turns) = (sessions + 1, turns + session.turns.len());
                    store.restore(&session.id, session.turns, snapshot.max_history_turns);
                }
                log::info!("restored {sessions} session(s), {turns} exchange(s) from {}", dir.display());
                Some(files)
            }
            Err(e) => {
                log::error!("history_dir '{}' is unusable ({e}); conversations are kept in memory only", dir.display());
                None
            }
        });
        let bridge = Bridge {
            inner: Arc::new(Inner {
                limiter: Semaphore::new(snapshot.max_concurrent_requests),
                slots: snapshot.max_concurrent_requests,
                config,
                store,
                outputs,
                history_files,
                next_request_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                workers: TaskTracker::new(),
                fleets: FleetCache::default(),
                keys: ApiKeys::from_env(),
                senses: OnceLock::new(),
                windows: ContextWindows::new(),
            }),
        };
        bridge.inner.workers.spawn(expire_idle_sessions(bridge.inner.clone()));
        bridge
    }

    /// Gives requests the camera and the tools (at start, before any input; a second call is ignored).
    pub fn set_senses(&self, senses: Arc<Senses>) {
        let _ = self.inner.senses.set(senses);
    }

    /// The sessions (for tests and diagnostics).
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.store
    }

    /// Takes one input. Never waits: the answer comes later through [`Outputs`]. An input that
    /// cannot be queued gets an error response at once; an empty one is ignored with a warning.
    pub fn submit(&self, session_id: &str, text: String, arrived: Instant) {
        self.submit_input(session_id, text, false, arrived)
    }

    /// [`Bridge::submit`] for an input that may ask for the latest camera frame (`attach_image`).
    pub fn submit_input(&self, session_id: &str, text: String, attach_image: bool, arrived: Instant) {
        if text.trim().is_empty() {
            let session_id = if session_id.is_empty() { DEFAULT_SESSION } else { session_id };
            log::warn!("ignored an empty input for session '{}'", printable(session_id));
            return;
        }
        self.submit_as(self.reserve_request_id(), session_id, text, attach_image, arrived)
    }

    /// A request id for [`Bridge::submit_as`] / [`Bridge::refuse_as`]: a caller that routes a
    /// request's outputs (an action goal) registers the id before anything can be published.
    pub fn reserve_request_id(&self) -> u64 {
        self.inner.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// [`Bridge::submit`] under a reserved id, for a caller that needs an answer to every input:
    /// an empty text gets an error response instead of being ignored.
    pub fn submit_as(&self, id: u64, session_id: &str, text: String, attach_image: bool, arrived: Instant) {
        let inner = &self.inner;
        let config = inner.config.get();
        let request = Request { attach_image, ..inner.new_request(id, session_id, text, arrived) };
        if request.text.trim().is_empty() {
            return inner.reject(request, &config, Ending::Error("the text is empty".into()));
        }
        if let Err(why) = check_input(&request, &config) {
            return inner.reject(request, &config, Ending::Error(why));
        }
        if inner.shutdown.is_cancelled() {
            return inner.reject(request, &config, Ending::Cancelled);
        }
        let limits = Limits {
            max_queue_per_session: config.max_queue_per_session,
            max_sessions: config.max_sessions,
            max_history_turns: config.max_history_turns,
        };
        log::info!("request {} (session '{}'): {} chars in", request.id, request.session_id, request.text.chars().count());
        let session = request.session_id.clone();
        if config.barge_in {
            // The user spoke over the robot: stop its answer (and what waits), answer this next.
            let report = inner.store.cancel(Some(&session));
            if report.cancelled > 0 || !report.dropped.is_empty() {
                log::info!("barge-in on session '{}': request {} interrupts ({} streaming cancelled, {} queued dropped)",
                    printable(&session), request.id, report.cancelled, report.dropped.len());
            }
            for dropped in report.dropped {
                inner.reject(dropped, &config, Ending::Cancelled);
            }
        }
        // A session not in memory (evicted, or not restored at start) continues from its file.
        let saved = match &inner.history_files {
            Some(files) if !inner.store.contains(&session) => files.load(&session, config.max_history_turns),
            _ => Vec::new(),
        };
        match inner.store.admit(request.clone(), limits, saved) {
            Admission::StartWorker => {
                inner.workers.spawn(run_session(inner.clone(), session));
            }
            Admission::Queued => {}
            Admission::Rejected(why) => inner.reject(request, &config, Ending::Error(why)),
        }
    }

    /// Answers an input that cannot be taken (e.g. its bytes were not text) with an error
    /// response naming `why`, without sending it anywhere.
    pub fn refuse(&self, session_id: &str, text: String, why: String, arrived: Instant) {
        self.refuse_as(self.reserve_request_id(), session_id, text, why, arrived)
    }

    /// [`Bridge::refuse`] under a reserved id.
    pub fn refuse_as(&self, id: u64, session_id: &str, text: String, why: String, arrived: Instant) {
        let inner = &self.inner;
        inner.reject(inner.new_request(id, session_id, text, arrived), &inner.config.get(), Ending::Error(why));
    }

    /// Cancels one request (an action goal's): a streaming one ends with `done_reason: cancelled`
    /// (its HTTP stream closed), a waiting one is answered so at once; the history is untouched.
    /// Returns false when the request is not running or waiting (already answered, unknown).
    pub fn cancel_request(&self, session_id: &str, request_id: u64) -> bool {
        let inner = &self.inner;
        let session_id = if session_id.is_empty() { DEFAULT_SESSION } else { session_id };
        match inner.store.withdraw(session_id, request_id) {
            Some(Withdrawn::Running) => true,
            Some(Withdrawn::Queued(request)) => {
                inner.reject(request, &inner.config.get(), Ending::Cancelled);
                true
            }
            None => false,
        }
    }

    /// Requests in flight and waiting, and sessions in memory.
    pub fn activity(&self) -> Activity {
        let inner = &self.inner;
        let (running, queued) = inner.store.load();
        let in_flight = inner.slots.saturating_sub(inner.limiter.available_permits());
        Activity {
            in_flight,
            queued: queued + running.saturating_sub(in_flight),
            sessions: inner.store.len(),
            slots: inner.slots,
        }
    }

    /// The HTTP client of the first server of `ollama_url` (with one server: the server),
    /// with the current timeouts (shared with the requests).
    pub fn client(&self) -> Result<Client, OllamaError> {
        self.fleet().map(|fleet| fleet.first().clone())
    }

    /// Every server of `ollama_url` and what is known about them (shared with the requests).
    pub fn fleet(&self) -> Result<Arc<Fleet>, OllamaError> {
        self.inner.fleet(&self.inner.config.get())
    }

    /// Clears one session (`""` = all). A request of it that is streaming is cancelled and
    /// answered with `done_reason: cancelled`; inputs still waiting are answered the same way.
    pub fn reset(&self, session_id: &str) -> ResetAnswer {
        let inner = &self.inner;
        let target = (!session_id.is_empty()).then_some(session_id);
        let report = inner.store.reset(target);
        let config = inner.config.get();
        for dropped in report.dropped.iter().cloned() {
            inner.reject(dropped, &config, Ending::Cancelled);
        }
        if let Some(files) = &inner.history_files {
            let removed = match target {
                Some(id) => files.remove(id),
                None => files.remove_all(),
            };
            if let Err(e) = removed {
                log::error!("reset: could not delete the saved history: {e}");
            }
        }
        let what = match target {
            Some(id) if report.sessions == 0 => {
                return ResetAnswer { success: true, message: format!("session '{}' is not known: nothing to reset", printable(id)) }
            }
            Some(id) => format!("session '{}' reset", printable(id)),
            None => format!("all {} sessions reset", report.sessions),
        };
        let message = format!("{what} ({} streaming request(s) cancelled, {} queued input(s) dropped)",
            report.cancelled, report.dropped.len());
        log::info!("{message}");
        ResetAnswer { success: true, message }
    }

    /// Stops one session (`""` = all) without forgetting it: its streaming request ends with
    /// `done_reason: cancelled` (entering the history only as far as it was reported spoken),
    /// its waiting inputs are answered the same way. The history stays.
    pub fn cancel(&self, session_id: &str) -> ResetAnswer {
        let inner = &self.inner;
        let target = (!session_id.is_empty()).then_some(session_id);
        let report = inner.store.cancel(target);
        let config = inner.config.get();
        for dropped in report.dropped.iter().cloned() {
            inner.reject(dropped, &config, Ending::Cancelled);
        }
        let what = match target {
            Some(id) if report.sessions == 0 => format!("session '{}' is not known: nothing to cancel", printable(id)),
            Some(id) => format!("session '{}'", printable(id)),
            None => format!("all {} sessions", report.sessions),
        };
        let message = format!("{what}: {} streaming request(s) cancelled, {} queued input(s) dropped; history kept",
            report.cancelled, report.dropped.len());
        log::info!("cancel: {message}");
        ResetAnswer { success: true, message }
    }

    /// Takes a report from the text-to-speech node: `text` is everything it said of `request_id`
    /// so far. Used when that request is cancelled: the history then holds only what was said.
    pub fn spoken(&self, session_id: &str, request_id: u64, text: &str) {
        let session_id = if session_id.is_empty() { DEFAULT_SESSION } else { session_id };
        if !self.inner.store.record_spoken(session_id, request_id, text) {
            log::debug!("spoken report for request {request_id} (session '{}') ignored: it is not streaming",
                printable(session_id));
        }
    }

    /// Asks the servers whether they have `model`: `Ok` when one that answers has it, with a
    /// note naming those that lack it (empty when none do); `Err` says why not, for a person
    /// (see [`Fleet::check_model`]).
    pub async fn check_model(&self, model: &str) -> Result<String, String> {
        let model = model.trim();
        if model.is_empty() {
            return Err("the model name is empty".into());
        }
        let fleet = self.fleet().map_err(|e| e.to_string())?;
        fleet.check_model(model).await
    }

    /// Looks up the current model's context window (`/api/show`) into the cache the requests use,
    /// as the first request would; for `warm_up`, so that the first answer does not wait for it.
    pub async fn look_up_context_window(&self) {
        let config = self.inner.config.get();
        if let Ok(client) = self.client() {
            self.inner.windows.window(&client, &config).await;
        }
    }

    /// Cancels every request (each gets a cancelled response) and waits up to `grace` for them.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        inner.workers.close();
        if tokio::time::timeout(grace, inner.workers.wait()).await.is_err() {
            log::warn!("shutdown: some requests did not finish within {:.1}s", grace.as_secs_f64());
        }
    }
}

impl Inner {
    /// A request with id `id`; an empty session id means [`DEFAULT_SESSION`].
    fn new_request(&self, id: u64, session_id: &str, text: String, arrived: Instant) -> Request {
        let session_id = if session_id.is_empty() { DEFAULT_SESSION } else { session_id };
        Request { id, session_id: session_id.to_string(), text, arrived, attach_image: false }
    }

    /// The fleet for `config`'s servers, API and timeouts (cached).
    fn fleet(&self, config: &Config) -> Result<Arc<Fleet>, OllamaError> {
        self.fleets.get(config, &self.keys)
    }

    /// Answers an input that will not be sent to Ollama.
    fn reject(&self, request: Request, config: &Config, ending: Ending) {
        if let Ending::Error(why) = &ending {
            log::warn!("request {} (session '{}') rejected: {why}", request.id, printable(&request.session_id));
        }
        self.outputs.finished(&FinalResponse {
            session_id: request.session_id,
            request_id: request.id,
            prompt: request.text,
            text: String::new(),
            model: config.model.clone(),
            ending,
            counters: Counters::default(),
            time_to_first_chunk_s: 0.0,
            total_time_s: request.arrived.elapsed().as_secs_f64(),
            chunk_count: 0,
            server: String::new(),
            speech: String::new(),
        });
    }
}

/// Validates an input before it is queued.
fn check_input(request: &Request, config: &Config) -> Result<(), String> {
    let id = &request.session_id;
    if id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(format!("session id is {} characters long; the limit is {MAX_SESSION_ID_CHARS}", id.chars().count()));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("session id '{}' contains control characters", printable(id)));
    }
    let chars = request.text.chars().count();
    if chars > config.max_input_chars {
        return Err(format!("input is {chars} characters long; the limit is {} (max_input_chars)", config.max_input_chars));
    }
    Ok(())
}

/// A session id safe to print in a log line.
fn printable(id: &str) -> String {
    id.chars().take(MAX_SESSION_ID_CHARS).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Works through one session's queue, one job at a time, until it is empty.
async fn run_session(inner: Arc<Inner>, session_id: String) {
    while let Some(job) = inner.store.next_job(&session_id, &inner.shutdown) {
        let config = inner.config.get();
        let permit = tokio::select! {
            biased;
            _ = job.cancel.cancelled() => None,
            permit = inner.limiter.acquire() => permit.ok(),
        };
        let outcome = match permit {
            Some(_permit) => {
                inner.outputs.state(&session_id, job.request.id, SessionState::Thinking);
                let senses = inner.senses.get().map(Arc::as_ref);
                let route = inner.fleet(&config).map(|fleet| fleet.route(&session_id, &config.model));
                exchange::run(route, &config, &job, inner.outputs.as_ref(), senses, &inner.windows).await
            }
            None => {
                inner.reject(job.request.clone(), &config, Ending::Cancelled);
                inner.store.finish(&session_id, job.epoch, None, 0, config.max_history_turns);
                continue;
            }
        };
        let response = &outcome.response;
        log::log!(if response.ending.error().is_empty() { log::Level::Info } else { log::Level::Warn }, "request {} (session '{}'): {} after {:.2}s, {} chars out{}", response.request_id,
            printable(&session_id), response.ending.done_reason(), response.total_time_s, response.text.len(),
            if response.ending.error().is_empty() { String::new() } else { format!(": {}", response.ending.error()) });
        // A cancelled answer enters the history as far as the text-to-speech node said it.
        let turn = match (&response.ending, outcome.turn) {
            (Ending::Cancelled, None) => spoken_turn(&job.request, inner.store.spoken(&session_id, job.request.id)),
            (_, turn) => turn,
        };
        // Commit, then answer: a listener that saw the final can rely on the exchange being saved.
        let outcome_turn = turn.clone();
        if inner.store.finish(&session_id, job.epoch, outcome_turn, outcome.dropped_turns, config.max_history_turns) {
            if let (Some(files), Some(turn)) = (inner.history_files.clone(), turn) {
                // write + fsync on a blocking thread: the other sessions' streams keep flowing
                let (store, session, epoch, max_turns) =
                    (inner.store.clone(), session_id.clone(), job.epoch, config.max_history_turns);
                let saved = tokio::task::spawn_blocking(move || {
                    // checked again under the files' lock: a reset in between must not bring it back
                    files.append_if(&session, &turn, max_turns, || store.is_current(&session, epoch))
                })
                .await;
                match saved {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("could not save the exchange of session '{}': {e}", printable(&session_id)),
                    Err(e) => log::error!("saving the exchange of session '{}' failed: {e}", printable(&session_id)),
                }
            }
        }
        inner.outputs.finished(response);
        let state = if response.ending.error().is_empty() { SessionState::Idle } else { SessionState::Error };
        inner.outputs.state(&session_id, response.request_id, state);
    }
}

/// The exchange of a cancelled request as far as it was spoken (`None` when nothing was).
fn spoken_turn(request: &Request, spoken: String) -> Option<Turn> {
    let spoken = spoken.trim();
    (!spoken.is_empty()).then(|| Turn::new(request.text.clone(), spoken))
}

/// Forgets idle sessions after `session_ttl_s`, checking once a second.
async fn expire_idle_sessions(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(ttl) = inner.config.get().session_ttl {
            for id in inner.store.expire_idle(ttl) {
                log::info!("session '{}' forgotten after {:.0}s idle (session_ttl_s)", printable(&id), ttl.as_secs_f64());
                if let Some(Err(e)) = inner.history_files.as_ref().map(|files| files.remove(&id)) {
                    log::error!("could not delete the history file of session '{}': {e}", printable(&id));
                }
            }
        }
    }
}
