//! Routing one request's outputs to whoever waits for it (a `chat` action goal), besides the
//! topics.
//!
//! [`GoalRouter`] wraps the node's [`Outputs`]: every partial and final is still published as
//! usual; in addition, those of a request registered with [`GoalRouter::register`] are sent to
//! that registration's channel, which the ROS layer turns into action feedback and a result.
//! The id is reserved before the input is submitted ([`crate::bridge::Bridge::reserve_request_id`]),
//! so not even an input refused at once can answer before its route exists.

use crate::outputs::{pass_on_speech_outputs, FinalResponse, Outputs, Partial};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What a registered request produced, in publishing order: partials, then exactly one final.
#[derive(Debug, Clone)]
pub enum GoalEvent {
    /// One streamed piece (the `response_partial` message's `seq` and `text`).
    Partial { seq: u32, text: String },
    /// The final response (also on `response_final`); nothing follows it.
    Finished(FinalResponse),
}

/// [`Outputs`] that also hands registered requests' outputs to their goals.
pub struct GoalRouter {
    inner: Arc<dyn Outputs>,
    /// Registered request id → its goal's channel; removed with the final.
    routes: Mutex<HashMap<u64, mpsc::UnboundedSender<GoalEvent>>>,
    /// `routes.len()`, read without the lock: topic-only traffic never touches the mutex.
    registered: AtomicUsize,
}

impl GoalRouter {
    /// Wraps `inner` (the publishers).
    pub fn new(inner: Arc<dyn Outputs>) -> GoalRouter {
        GoalRouter { inner, routes: Mutex::new(HashMap::new()), registered: AtomicUsize::new(0) }
    }

    /// Routes the outputs of request `request_id` (from now on) to the returned receiver.
    pub fn register(&self, request_id: u64) -> mpsc::UnboundedReceiver<GoalEvent> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut routes = self.lock();
        if routes.insert(request_id, sender).is_none() {
            self.registered.fetch_add(1, Ordering::Release);
        }
        receiver
    }

    /// Drops a route whose goal went away before the final (its request still runs and publishes).
    pub fn forget(&self, request_id: u64) {
        self.take(request_id);
    }

    /// Requests with a route now.
    pub fn len(&self) -> usize {
        self.registered.load(Ordering::Acquire)
    }

    /// Whether no request has a route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<GoalEvent>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, request_id: u64) -> Option<mpsc::UnboundedSender<GoalEvent>> {
        let removed = self.lock().remove(&request_id);
        if removed.is_some() {
            self.registered.fetch_sub(1, Ordering::Release);
        }
        removed
    }
}

impl Outputs for GoalRouter {
    fn partial(&self, partial: &Partial<'_>) {
        self.inner.partial(partial);
        if self.is_empty() {
            return;
        }
        if let Some(route) = self.lock().get(&partial.request_id) {
            // A closed channel means the goal is gone; the final removes the route.
            let _ = route.send(GoalEvent::Partial { seq: partial.seq, text: partial.text.to_string() });
        }
    }

    fn finished(&self, response: &FinalResponse) {
        self.inner.finished(response);
        if self.is_empty() {
            return;
        }
        if let Some(route) = self.take(response.request_id) {
            let _ = route.send(GoalEvent::Finished(response.clone()));
        }
    }
    pass_on_speech_outputs!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{Counters, Ending, SentenceOut, SessionState};

    /// Counts what reaches the wrapped publishers.
    #[derive(Default)]
    struct Published(Mutex<(usize, usize)>);
    impl Outputs for Published {
        fn partial(&self, _: &Partial<'_>) {
            self.0.lock().unwrap().0 += 1;
        }
        fn finished(&self, _: &FinalResponse) {
            self.0.lock().unwrap().1 += 1;
        }
        fn thinking(&self, _: &Partial<'_>) {}
        fn sentence(&self, _: &SentenceOut<'_>) {}
        fn state(&self, _: &str, _: u64, _: SessionState) {}
    }

    fn final_of(request_id: u64) -> FinalResponse {
        FinalResponse {
            session_id: "s".into(), request_id, prompt: "p".into(), text: "ab".into(), model: "m".into(),
            ending: Ending::Done("stop".into()), counters: Counters::default(), time_to_first_chunk_s: 0.1,
            total_time_s: 0.2, chunk_count: 2, server: "http://h".into(), speech: "ab".into(),
        }
    }

    fn piece(request_id: u64, seq: u32, text: &str) -> Partial<'_> {
        Partial { session_id: "s", request_id, seq, text }
    }

    #[test]
    fn registered_requests_get_their_events_and_everything_is_still_published() {
        let published = Arc::new(Published::default());
        let router = GoalRouter::new(published.clone());
        let mut goal = router.register(7);
        router.partial(&piece(6, 0, "other"));
        router.partial(&piece(7, 0, "a"));
        router.partial(&piece(7, 1, "b"));
        router.finished(&final_of(6));
        router.finished(&final_of(7));
        assert_eq!(*published.0.lock().unwrap(), (3, 2), "the topics get every output");
        assert!(matches!(goal.try_recv(), Ok(GoalEvent::Partial { seq: 0, ref text }) if text == "a"));
        assert!(matches!(goal.try_recv(), Ok(GoalEvent::Partial { seq: 1, ref text }) if text == "b"));
        assert!(matches!(goal.try_recv(), Ok(GoalEvent::Finished(ref r)) if r.request_id == 7));
        assert!(goal.try_recv().is_err(), "nothing after the final, and no other request's events");
        assert!(router.is_empty(), "the final removes the route");
    }

    #[test]
    fn a_forgotten_or_dropped_goal_does_not_disturb_publishing() {
        let published = Arc::new(Published::default());
        let router = GoalRouter::new(published.clone());
        drop(router.register(1));
        let _kept = router.register(2);
        router.forget(2);
        router.partial(&piece(1, 0, "x"));
        router.finished(&final_of(1));
        router.finished(&final_of(2));
        assert_eq!(*published.0.lock().unwrap(), (1, 2));
        assert!(router.is_empty());
    }
}
