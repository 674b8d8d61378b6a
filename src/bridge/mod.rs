//! The bridge: turns inputs into per-session jobs, runs them with bounded concurrency, commits
//! completed exchanges, and answers reset / model checks. No ROS here: the ROS layer calls
//! [`Bridge::submit`] from its subscription loops (it never waits) and implements [`Outputs`].

use crate::config::{ApiKeys, Config, ConfigHandle};
use crate::context::ContextWindows;
use crate::fleet::{Fleet, FleetCache};
use crate::history_files::HistoryFiles;
use crate::ollama::{Client, OllamaError};
use crate::outputs::{Counters, Ending, FinalResponse, Outputs};
use crate::session::{Admission, Limits, Request, SessionStore, Withdrawn};
use crate::senses::Senses;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod input;
mod worker;

pub use input::MAX_SESSION_ID_CHARS;
use input::{check_input, printable};

use worker::{expire_idle_sessions, run_session};

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

/// Answer of a reset or a cancel.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetAnswer {
    pub success: bool,
    pub message: String,
}

/// How [`Bridge::stop`] stops the sessions it names.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Cancel, then forget the history (memory and saved file).
    Reset,
    /// Cancel, keep the history.
    Cancel,
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

    /// Every server of `ollama_url` and what is known about them (shared with the requests).
    pub fn fleet(&self) -> Result<Arc<Fleet>, OllamaError> {
        self.inner.fleet(&self.inner.config.get())
    }

    /// Clears one session (`""` = all). A request of it that is streaming is cancelled and
    /// answered with `done_reason: cancelled`; inputs still waiting are answered the same way.
    pub fn reset(&self, session_id: &str) -> ResetAnswer {
        self.stop(session_id, Stop::Reset)
    }

    /// Stops one session (`""` = all) without forgetting it: its streaming request ends with
    /// `done_reason: cancelled` (entering the history only as far as it was reported spoken),
    /// its waiting inputs are answered the same way. The history stays.
    pub fn cancel(&self, session_id: &str) -> ResetAnswer {
        self.stop(session_id, Stop::Cancel)
    }

    /// [`Bridge::reset`] or [`Bridge::cancel`]: the answer says what was stopped
    /// (`session 'a' reset: 1 streaming request(s) cancelled, 0 queued input(s) dropped`), and
    /// is logged at INFO.
    fn stop(&self, session_id: &str, how: Stop) -> ResetAnswer {
        let inner = &self.inner;
        let target = (!session_id.is_empty()).then_some(session_id);
        let report = match how {
            Stop::Reset => inner.store.reset(target),
            Stop::Cancel => inner.store.cancel(target),
        };
        let config = inner.config.get();
        for dropped in report.dropped.iter().cloned() {
            inner.reject(dropped, &config, Ending::Cancelled);
        }
        if let (Stop::Reset, Some(files)) = (how, &inner.history_files) {
            let removed = match target {
                Some(id) => files.remove(id),
                None => files.remove_all(),
            };
            if let Err(e) = removed {
                log::error!("reset: could not delete the saved history: {e}");
            }
        }
        let (verb, done, kept) = match how {
            Stop::Reset => ("reset", "reset", ""),
            Stop::Cancel => ("cancel", "cancelled", "; history kept"),
        };
        let stopped = format!("{} streaming request(s) cancelled, {} queued input(s) dropped{kept}",
            report.cancelled, report.dropped.len());
        let message = match target {
            Some(id) if report.sessions == 0 => format!("session '{}' is not known: nothing to {verb}", printable(id)),
            Some(id) => format!("session '{}' {done}: {stopped}", printable(id)),
            None => format!("all {} sessions {done}: {stopped}", report.sessions),
        };
        log::info!("{message}");
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

    /// Looks up the current model's context window on `client`'s server (`/api/show`) into the
    /// cache the requests routed there use, as their first would; for `warm_up` (every server),
    /// so that the first answer does not wait for it.
    pub async fn look_up_context_window(&self, client: &Client) {
        self.inner.windows.window(client, &self.inner.config.get()).await;
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

