//! Unit tests of the session store (queues, history bounds, reset, cancel, spoken text, eviction).

use super::*;

const LIMITS: Limits = Limits { max_queue_per_session: 2, max_sessions: 2, max_history_turns: 10 };

fn req(id: u64, session: &str) -> Request {
    Request { id, session_id: session.into(), text: format!("t{id}"), arrived: Instant::now(), attach_image: false }
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
fn idle_sessions_expire() {
    let store = SessionStore::new();
    store.restore("a", vec![turn(1).unwrap()], 10);
    assert!(store.expire_idle(Duration::from_secs(60)).is_empty());
    assert_eq!(store.expire_idle(Duration::ZERO), vec!["a".to_string()]);
    assert!(store.is_empty());
}

#[test]
fn cancel_stops_running_and_queued_but_keeps_history() {
    let store = SessionStore::new();
    let root = CancellationToken::new();
    store.admit(req(1, "a"), LIMITS, vec![]);
    let j1 = store.next_job("a", &root).unwrap();
    assert!(store.finish("a", j1.epoch, turn(1), 10));
    store.admit(req(2, "a"), LIMITS, vec![]);
    let j2 = store.next_job("a", &root).unwrap();
    store.admit(req(3, "a"), LIMITS, vec![]);
    let report = store.cancel(Some("a"));
    assert_eq!((report.sessions, report.cancelled, report.dropped.len()), (1, 1, 1));
    assert!(j2.cancel.is_cancelled());
    assert_eq!(store.history("a").len(), 1, "cancel keeps the history");
    assert!(store.is_current("a", j2.epoch), "cancel is not a reset: the spoken part may still commit");
    assert_eq!(store.cancel(Some("a")).cancelled, 0, "a request is cancelled once");
    assert_eq!(store.cancel(Some("nope")).sessions, 0);
}

#[test]
fn spoken_text_belongs_to_the_running_request_only() {
    let store = SessionStore::new();
    let root = CancellationToken::new();
    store.admit(req(7, "a"), LIMITS, vec![]);
    assert!(!store.record_spoken("a", 7, "queued, not running yet"));
    let job = store.next_job("a", &root).unwrap();
    assert!(!store.record_spoken("a", 6, "an older request"));
    assert!(!store.record_spoken("b", 7, "another session"));
    assert!(store.record_spoken("a", 7, "Hello."));
    assert!(store.record_spoken("a", 7, "Hello. I am a robot."));
    assert_eq!(store.spoken("a", 7), "Hello. I am a robot.");
    assert_eq!(store.spoken("a", 8), "");
    store.finish("a", job.epoch, None, 10);
    assert_eq!(store.spoken("a", 7), "", "gone once the request ended");
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
