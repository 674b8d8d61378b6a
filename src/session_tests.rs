//! Unit tests of the session store (queues, history bounds, reset, cancel, spoken text, eviction).

use super::*;

const LIMITS: Limits = Limits { max_queue_per_session: 2, max_sessions: 2, max_history_turns: 10 };

fn req(id: u64, session: &str) -> Request {
    Request { id, session_id: session.into(), text: format!("t{id}"), arrived: Instant::now(), attach_image: false }
}
fn turn(n: u32) -> Option<Turn> {
    Some(Turn::new(format!("u{n}"), format!("a{n}")))
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
    assert!(store.finish("a", j1.epoch, turn(1), 0, 10));
    let j2 = store.next_job("a", &root).unwrap();
    assert_eq!((j2.request.id, j2.history.len()), (2, 1));
    store.finish("a", j2.epoch, None, 0, 10);
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

/// Commits `n` exchanges one after another, each dropping the oldest `dropped` first.
fn commit(store: &SessionStore, session: &str, turns: std::ops::Range<u32>, dropped: usize, max_turns: usize) {
    let root = CancellationToken::new();
    for n in turns {
        store.admit(req(n.into(), session), LIMITS, vec![]);
        let job = store.next_job(session, &root).unwrap();
        assert!(store.finish(session, job.epoch, turn(n), dropped, max_turns));
        assert!(store.next_job(session, &root).is_none());
    }
}

fn users(store: &SessionStore, session: &str) -> Vec<String> {
    store.history(session).into_iter().map(|t| t.user).collect()
}

#[test]
fn history_is_trimmed_in_blocks_to_half_the_limit() {
    let store = SessionStore::new();
    let mut lengths = Vec::new();
    for n in 0..16 {
        commit(&store, "a", n..n + 1, 0, 10);
        lengths.push(store.history("a").len());
    }
    // grows to the limit, then drops to half of it at once: the prompt's start changes once per block
    assert_eq!(lengths, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10]);
    assert_eq!(users(&store, "a"), ["u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13", "u14", "u15"], "the newest kept");
    commit(&store, "a", 16..17, 0, 10);
    assert_eq!(users(&store, "a"), ["u12", "u13", "u14", "u15", "u16"]);
    assert_eq!((kept_after_trim(1), kept_after_trim(3), kept_after_trim(0)), (1, 2, 0), "half, rounded up");
    let store = SessionStore::new();
    commit(&store, "one", 0..3, 0, 1);
    assert_eq!(users(&store, "one"), ["u2"], "a limit of 1 keeps the last exchange");
    commit(&store, "none", 0..3, 0, 0);
    assert!(store.history("none").is_empty());
}

#[test]
fn exchanges_left_out_by_the_context_budget_are_forgotten_with_the_commit() {
    let store = SessionStore::new();
    let root = CancellationToken::new();
    commit(&store, "a", 0..6, 0, 20);
    store.admit(req(6, "a"), LIMITS, vec![]);
    let job = store.next_job("a", &root).unwrap();
    assert!(!store.finish("a", job.epoch, None, 4, 20), "a failed request changes nothing");
    assert_eq!(store.history("a").len(), 6);
    store.admit(req(7, "a"), LIMITS, vec![]);
    let job = store.next_job("a", &root).unwrap();
    assert!(store.finish("a", job.epoch, turn(7), 4, 20));
    assert_eq!(users(&store, "a"), ["u4", "u5", "u7"]);
    commit(&store, "b", 0..2, 9, 20);
    assert_eq!(users(&store, "b"), ["u1"], "dropping more than there is empties the history, no more");
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
    assert!(!store.finish("a", job.epoch, turn(1), 0, 10), "a reset session must not get the old turn");
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
    store.finish("old", j.epoch, turn(1), 0, 10);
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
    assert!(store.finish("a", j1.epoch, turn(1), 0, 10));
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
    store.finish("a", job.epoch, None, 0, 10);
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
    store.finish("a", job.epoch, None, 0, 10);
    assert!(store.withdraw("a", 1).is_none(), "a finished request cannot be withdrawn");
    assert!(store.withdraw("b", 3).is_none() && store.withdraw("a", 99).is_none());
    assert_eq!(store.next_job("a", &root).unwrap().request.id, 3, "the rest of the queue keeps its order");
    assert_eq!(store.load(), (1, 0));
}
