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

/// One completed exchange: what the user said and the whole answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
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

/// What a reset did.
#[derive(Debug, Default)]
pub struct ResetReport {
    /// Sessions that existed and were cleared.
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

#[derive(Default)]
struct Session {
    history: VecDeque<Turn>,
    queue: VecDeque<Request>,
    /// Cancel handle of the job streaming now.
    running: Option<CancellationToken>,
    /// Request id of that job.
    running_request: Option<u64>,
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
                session.running = Some(cancel.clone());
                session.running_request = Some(request.id);
                Some(Job { request, history: session.history.iter().cloned().collect(), epoch: session.epoch, cancel })
            }
            None => {
                session.worker_active = false;
                session.running = None;
                session.running_request = None;
                None
            }
        }
    }

    /// Ends the running job of `session_id`; a completed `turn` joins the history unless the
    /// session was reset since the job started. Returns whether it was committed.
    pub fn finish(&self, session_id: &str, epoch: u64, turn: Option<Turn>, max_turns: usize) -> bool {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(session_id) else { return false };
        session.running = None;
        session.running_request = None;
        session.last_used = Some(Instant::now());
        match turn {
            Some(turn) if session.epoch == epoch => {
                session.history.push_back(turn);
                while session.history.len() > max_turns {
                    session.history.pop_front();
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
            if let Some(cancel) = session.running.take() {
                cancel.cancel();
                report.cancelled += 1;
            }
            if !session.worker_active {
                inner.sessions.remove(&id);
            }
        }
        report
    }

    /// Cancels one request of `session_id` (the history stays): the streaming one's cancel handle
    /// fires, a waiting one is taken off the queue. `None` when it is neither (finished, unknown).
    pub fn withdraw(&self, session_id: &str, request_id: u64) -> Option<Withdrawn> {
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(session_id)?;
        if session.running_request == Some(request_id) {
            session.running.as_ref()?.cancel();
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
            (running + usize::from(s.running_request.is_some()), queued + s.queue.len())
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
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_queue_per_session: 2, max_sessions: 2, max_history_turns: 10 };

    fn req(id: u64, session: &str) -> Request {
        Request { id, session_id: session.into(), text: format!("t{id}"), arrived: Instant::now() }
    }
    fn turn(n: u32) -> Option<Turn> {
        Some(Turn { user: format!("u{n}"), assistant: format!("a{n}") })
    }

    #[test]
    fn one_worker_per_session_in_arrival_order() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        assert_eq!(store.admit(req(1, "a"), LIMITS, vec![]), Admission::StartWorker);
        assert_eq!(store.admit(req(2, "a"), LIMITS, vec![]), Admission::Queued);
        assert_eq!(store.admit(req(3, "b"), LIMITS, vec![]), Admission::StartWorker);
        let j1 = store.next_job("a", &root).unwrap();
        assert_eq!(j1.request.id, 1);
        assert!(store.finish("a", j1.epoch, turn(1), 10));
        let j2 = store.next_job("a", &root).unwrap();
        assert_eq!((j2.request.id, j2.history.len()), (2, 1));
        store.finish("a", j2.epoch, None, 10);
        assert!(store.next_job("a", &root).is_none());
        assert_eq!(store.admit(req(4, "a"), LIMITS, vec![]), Admission::StartWorker, "worker ended with the queue");
    }

    #[test]
    fn queue_limit_rejects_with_a_reason() {
        let store = SessionStore::new();
        store.admit(req(1, "a"), LIMITS, vec![]);
        store.admit(req(2, "a"), LIMITS, vec![]);
        store.admit(req(3, "a"), LIMITS, vec![]);
        match store.admit(req(4, "a"), LIMITS, vec![]) {
            Admission::Rejected(why) => assert!(why.contains("max_queue_per_session")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_is_bounded_oldest_first() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        for n in 0..5 {
            store.admit(req(n.into(), "a"), LIMITS, vec![]);
            let job = store.next_job("a", &root).unwrap();
            store.finish("a", job.epoch, turn(n), 3);
            assert!(store.next_job("a", &root).is_none());
        }
        let users: Vec<_> = store.history("a").into_iter().map(|t| t.user).collect();
        assert_eq!(users, ["u2", "u3", "u4"]);
    }

    #[test]
    fn reset_cancels_running_drops_queued_and_blocks_late_commit() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        store.admit(req(1, "a"), LIMITS, vec![]);
        store.admit(req(2, "a"), LIMITS, vec![]);
        store.admit(req(9, "b"), LIMITS, vec![]);
        let job = store.next_job("a", &root).unwrap();
        let report = store.reset(Some("a"));
        assert_eq!((report.sessions, report.cancelled, report.dropped.len()), (1, 1, 1));
        assert!(job.cancel.is_cancelled());
        assert!(!store.finish("a", job.epoch, turn(1), 10), "a reset session must not get the old turn");
        assert!(store.history("a").is_empty());
        assert_eq!(store.reset(Some("nope")).sessions, 0);
        assert_eq!(store.reset(None).sessions, 2);
    }

    #[test]
    fn lru_idle_session_is_evicted_busy_ones_never() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        store.admit(req(1, "old"), LIMITS, vec![]);
        let j = store.next_job("old", &root).unwrap();
        store.finish("old", j.epoch, turn(1), 10);
        store.next_job("old", &root);
        store.admit(req(2, "busy"), LIMITS, vec![]);
        assert_eq!(store.admit(req(3, "new"), LIMITS, vec![]), Admission::StartWorker);
        assert_eq!(store.evicted_total(), 1);
        assert!(store.history("old").is_empty());
        assert!(matches!(store.admit(req(4, "another"), LIMITS, vec![]), Admission::Rejected(_)));
    }

    #[test]
    fn a_new_session_starts_from_its_saved_history_and_a_reset_outdates_jobs() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        let saved: Vec<Turn> = (0..12).map(|n| turn(n).unwrap()).collect();
        store.admit(req(1, "a"), LIMITS, saved);
        assert_eq!(store.history("a").len(), 10, "bounded by max_history_turns");
        assert_eq!(store.history("a")[0].user, "u2");
        let job = store.next_job("a", &root).unwrap();
        assert!(store.is_current("a", job.epoch));
        store.reset(Some("a"));
        assert!(!store.is_current("a", job.epoch));
    }

    #[test]
    fn withdraw_cancels_the_running_request_or_unqueues_a_waiting_one() {
        let store = SessionStore::new();
        let root = CancellationToken::new();
        let limits = Limits { max_queue_per_session: 3, ..LIMITS };
        for id in 1..=3 {
            store.admit(req(id, "a"), limits, vec![]);
        }
        let job = store.next_job("a", &root).unwrap();
        assert_eq!(store.load(), (1, 2));
        match store.withdraw("a", 2) {
            Some(Withdrawn::Queued(r)) => assert_eq!(r.id, 2),
            other => panic!("{other:?}"),
        }
        assert!(!job.cancel.is_cancelled(), "another request's cancel leaves the running one alone");
        assert!(matches!(store.withdraw("a", 1), Some(Withdrawn::Running)));
        assert!(job.cancel.is_cancelled());
        store.finish("a", job.epoch, None, 10);
        assert!(store.withdraw("a", 1).is_none(), "a finished request cannot be withdrawn");
        assert!(store.withdraw("b", 3).is_none() && store.withdraw("a", 99).is_none());
        assert_eq!(store.next_job("a", &root).unwrap().request.id, 3, "the rest of the queue keeps its order");
        assert_eq!(store.load(), (1, 0));
    }

    #[test]
    fn idle_sessions_expire() {
        let store = SessionStore::new();
        store.restore("a", vec![turn(1).unwrap()], 10);
        assert!(store.expire_idle(Duration::from_secs(60)).is_empty());
        assert_eq!(store.expire_idle(Duration::ZERO), vec!["a".to_string()]);
        assert!(store.is_empty());
    }
}
