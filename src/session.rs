//! Conversation sessions: completed history, the queue of inputs waiting, and the cancel handle
//! of the request streaming now.
//!
//! [`SessionStore`] is a cheap-clone handle around a `std::sync::Mutex`: no operation awaits while
//! holding it, so a plain mutex is both correct and faster than an async one. History only ever
//! receives *completed* exchanges, and only if the session was not reset meanwhile (the `epoch`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One completed exchange: what the user said and the whole answer, with the tokens each takes
/// in a prompt when the server counted them (see [`crate::context`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
    /// Tokens the user message added to the prompt, chat-template framing included (None: never
    /// counted, e.g. restored from an older file or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_tokens: Option<u32>,
    /// Tokens of the answer (Ollama's `eval_count`; None: never counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant_tokens: Option<u32>,
}

impl Turn {
    /// An exchange whose tokens were never counted.
    pub fn new(user: impl Into<String>, assistant: impl Into<String>) -> Turn {
        Turn { user: user.into(), assistant: assistant.into(), user_tokens: None, assistant_tokens: None }
    }

    /// The same exchange with its token counts.
    pub fn with_tokens(self, user_tokens: Option<u32>, assistant_tokens: Option<u32>) -> Turn {
        Turn { user_tokens, assistant_tokens, ..self }
    }
}

/// One input waiting to be answered.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique per node run; shared by the request's partials and its final response.
    pub id: u64,
    pub session_id: String,
    pub text: String,
    /// When the input reached the node: the bridge's latencies are measured from here.
    pub arrived: Instant,
    /// The input asked for the latest camera frame (`Utterance.attach_image`).
    pub attach_image: bool,
}

/// A request taken off a session's queue, with what it needs to run.
#[derive(Debug)]
pub struct Job {
    pub request: Request,
    /// The session's completed turns at the moment the job started.
    pub history: Vec<Turn>,
    /// Session generation: a reset bumps it, so a job that finishes afterwards cannot commit.
    pub epoch: u64,
    /// Fires on reset of this session or on node shutdown.
    pub cancel: CancellationToken,
}

/// What happened to a submitted input.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Queued in a session with no worker: the caller must start one.
    StartWorker,
    /// Queued behind the session's running request.
    Queued,
    /// Not queued; the reason is for the error response.
    Rejected(String),
}

/// What a reset or a cancel did.
#[derive(Debug, Default)]
pub struct ResetReport {
    /// Sessions that existed and were cleared (reset) or stopped (cancel).
    pub sessions: usize,
    /// Streaming requests that were cancelled (each publishes its own cancelled response).
    pub cancelled: usize,
    /// Queued requests dropped: the caller answers each with a cancelled response.
    pub dropped: Vec<Request>,
}

/// What [`SessionStore::withdraw`] did with one request.
#[derive(Debug)]
pub enum Withdrawn {
    /// It was streaming: its cancel handle fired (it publishes its own cancelled response).
    Running,
    /// It was waiting: taken off the queue; the caller answers it.
    Queued(Request),
}

/// Limits applied when admitting an input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_queue_per_session: usize,
    pub max_sessions: usize,
    pub max_history_turns: usize,
}

/// The request a session is streaming now.
struct Running {
    request_id: u64,
    cancel: CancellationToken,
    /// What the text-to-speech node reported as spoken of this request so far (`spoken` topic).
    spoken: String,
}

#[derive(Default)]
struct Session {
    history: VecDeque<Turn>,
    queue: VecDeque<Request>,
    /// The job streaming now.
    running: Option<Running>,
    /// A worker task owns this session's queue until it finds it empty.
    worker_active: bool,
    last_used: Option<Instant>,
    epoch: u64,
}

impl Session {
    fn is_idle(&self) -> bool {
        !self.worker_active && self.queue.is_empty()
    }
}

/// The last `max_turns` of `turns`, as a history.
fn last_turns(turns: Vec<Turn>, max_turns: usize) -> VecDeque<Turn> {
    let skip = turns.len().saturating_sub(max_turns);
    turns.into_iter().skip(skip).collect()
}

/// Exchanges kept when a history grows past `max_turns`: half of it, rounded up. Trimming in blocks
/// keeps the start of the prompt the same for the next requests, so the server's prompt (KV) cache
/// serves them; dropping one exchange per request would change it every time.
pub fn kept_after_trim(max_turns: usize) -> usize {
    max_turns - max_turns / 2
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    evicted_total: u64,
}

/// Every session of the node. Clones share the same sessions.
#[derive(Clone, Default)]
pub struct SessionStore {
    inner: Arc<Mutex<Inner>>,
}

impl SessionStore {
    pub fn new() -> SessionStore {
        SessionStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take every conversation down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `request` in its session, creating the session (and evicting the least recently
    /// used idle one when `max_sessions` is reached). A session created here starts with
    /// `saved` (its history read back from disk, if any).
    pub fn admit(&self, request: Request, limits: Limits, saved: Vec<Turn>) -> Admission {
        let mut inner = self.lock();
        if !inner.sessions.contains_key(&request.session_id) && inner.sessions.len() >= limits.max_sessions {
            let lru = inner
                .sessions
                .iter()
                .filter(|(_, s)| s.is_idle())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone());
            match lru {
                Some(id) => {
                    inner.sessions.remove(&id);
                    inner.evicted_total += 1;
                    log::warn!("session limit {} reached: evicted least recently used session '{id}' (evictions so far: {})",
                        limits.max_sessions, inner.evicted_total);
                }
                None => {
                    return Admission::Rejected(format!(
                        "too many sessions: all {} are busy (raise max_sessions)", limits.max_sessions))
                }
            }
        }
        let session = inner.sessions.entry(request.session_id.clone()).or_insert_with(|| Session {
            history: last_turns(saved, limits.max_history_turns),
            ..Session::default()
        });
        session.last_used = Some(Instant::now());
        if session.worker_active {
            if session.queue.len() >= limits.max_queue_per_session {
                return Admission::Rejected(format!(
                    "session '{}' already has {} inputs waiting (max_queue_per_session)",
                    request.session_id, session.queue.len()));
            }
            session.queue.push_back(request);
            Admission::Queued
        } else {
            session.queue.push_back(request);
            session.worker_active = true;
            Admission::StartWorker
        }
    }

    /// Takes the next queued request of `session_id`, or ends the worker's ownership when the
    /// queue is empty (returns `None`).
    pub fn next_job(&self, session_id: &str, parent: &CancellationToken) -> Option<Job> {
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(session_id)?;
        match session.queue.pop_front() {
            Some(request) => {
                let cancel = parent.child_token();
                session.running = Some(Running { request_id: request.id, cancel: cancel.clone(), spoken: String::new() });
                Some(Job { request, history: session.history.iter().cloned().collect(), epoch: session.epoch, cancel })
            }
            None => {
                session.worker_active = false;
                session.running = None;
                None
            }
        }
    }

    /// Ends the running job of `session_id`; a completed `turn` joins the history unless the
    /// session was reset since the job started. With it, the `dropped` oldest exchanges the job
    /// left out (context budget) are forgotten, and a history longer than `max_turns` is trimmed
    /// to [`kept_after_trim`]. Returns whether it was committed.
    pub fn finish(&self, session_id: &str, epoch: u64, turn: Option<Turn>, dropped: usize, max_turns: usize) -> bool {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(session_id) else { return false };
        session.running = None;
        session.last_used = Some(Instant::now());
        match turn {
            Some(turn) if session.epoch == epoch => {
                let dropped = dropped.min(session.history.len());
                session.history.drain(..dropped);
                session.history.push_back(turn);
                if session.history.len() > max_turns {
                    let excess = session.history.len() - kept_after_trim(max_turns);
                    session.history.drain(..excess);
                }
                true
            }
            _ => false,
        }
    }

    /// Clears one session (`Some(id)`) or all (`None`): cancels what streams, drops what waits.
    pub fn reset(&self, session_id: Option<&str>) -> ResetReport {
        let mut inner = self.lock();
        let ids: Vec<String> = match session_id {
            Some(id) if inner.sessions.contains_key(id) => vec![id.to_string()],
            Some(_) => vec![],
            None => inner.sessions.keys().cloned().collect(),
        };
        let mut report = ResetReport::default();
        for id in ids {
            let Some(session) = inner.sessions.get_mut(&id) else { continue };
            report.sessions += 1;
            session.epoch += 1;
            session.history.clear();
            report.dropped.extend(session.queue.drain(..));
            if let Some(running) = session.running.take() {
                running.cancel.cancel();
                report.cancelled += 1;
            }
            if !session.worker_active {
                inner.sessions.remove(&id);
            }
        }
        report
    }

    /// Stops one session (`Some(id)`) or all (`None`) without forgetting them: cancels what
    /// streams (its exchange may still enter the history as far as it was spoken, see
    /// [`SessionStore::spoken`]) and drops what waits. The history stays.
    pub fn cancel(&self, session_id: Option<&str>) -> ResetReport {
        let mut inner = self.lock();
        let mut report = ResetReport::default();
        let targets = inner.sessions.iter_mut().filter(|(id, _)| session_id.map_or(true, |want| want == id.as_str()));
        for (_, session) in targets {
            report.sessions += 1;
            report.dropped.extend(session.queue.drain(..));
            if let Some(running) = &session.running {
                if !running.cancel.is_cancelled() {
                    running.cancel.cancel();
                    report.cancelled += 1;
                }
            }
        }
        report
    }

    /// Records what the text-to-speech node said of `request_id` so far. Returns false when that
    /// request is not the one the session is streaming (finished, unknown, or another session).
    pub fn record_spoken(&self, session_id: &str, request_id: u64, text: &str) -> bool {
        let mut inner = self.lock();
        match inner.sessions.get_mut(session_id).and_then(|s| s.running.as_mut()) {
            Some(running) if running.request_id == request_id => {
                running.spoken = text.to_string();
                true
            }
            _ => false,
        }
    }

    /// What was reported spoken of the running `request_id` ("" when nothing or another request).
    pub fn spoken(&self, session_id: &str, request_id: u64) -> String {
        let inner = self.lock();
        match inner.sessions.get(session_id).and_then(|s| s.running.as_ref()) {
            Some(running) if running.request_id == request_id => running.spoken.clone(),
            _ => String::new(),
        }
    }

    /// Cancels one request of `session_id` (the history stays): the streaming one's cancel handle
    /// fires, a waiting one is taken off the queue. `None` when it is neither (finished, unknown).
    pub fn withdraw(&self, session_id: &str, request_id: u64) -> Option<Withdrawn> {
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(session_id)?;
        if let Some(running) = session.running.as_ref().filter(|r| r.request_id == request_id) {
            running.cancel.cancel();
            return Some(Withdrawn::Running);
        }
        let position = session.queue.iter().position(|r| r.id == request_id)?;
        session.queue.remove(position).map(Withdrawn::Queued)
    }

    /// (running, queued) over every session: jobs taken off a queue and not finished (streaming
    /// or waiting for a free slot), and inputs waiting in the queues.
    pub fn load(&self) -> (usize, usize) {
        let inner = self.lock();
        inner.sessions.values().fold((0, 0), |(running, queued), s| {
            (running + usize::from(s.running.is_some()), queued + s.queue.len())
        })
    }

    /// Forgets sessions idle for longer than `ttl`; returns their ids.
    pub fn expire_idle(&self, ttl: Duration) -> Vec<String> {
        let mut inner = self.lock();
        let now = Instant::now();
        let expired: Vec<String> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.is_idle() && s.last_used.is_some_and(|t| now.duration_since(t) > ttl))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            inner.sessions.remove(id);
        }
        expired
    }

    /// Installs restored history for a session (at start-up, from persisted files).
    pub fn restore(&self, session_id: &str, turns: Vec<Turn>, max_turns: usize) {
        let mut inner = self.lock();
        let session = inner.sessions.entry(session_id.to_string()).or_default();
        session.last_used = Some(Instant::now());
        session.history = last_turns(turns, max_turns);
    }

    /// Whether `session_id` is in memory.
    pub fn contains(&self, session_id: &str) -> bool {
        self.lock().sessions.contains_key(session_id)
    }

    /// Whether a job started at `epoch` still belongs to the session (no reset since).
    pub fn is_current(&self, session_id: &str, epoch: u64) -> bool {
        self.lock().sessions.get(session_id).is_some_and(|s| s.epoch == epoch)
    }

    /// The completed turns of a session (empty when unknown).
    pub fn history(&self, session_id: &str) -> Vec<Turn> {
        self.lock().sessions.get(session_id).map(|s| s.history.iter().cloned().collect()).unwrap_or_default()
    }

    /// Number of sessions in memory.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions evicted by the `max_sessions` limit since start.
    pub fn evicted_total(&self) -> u64 {
        self.lock().evicted_total
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
