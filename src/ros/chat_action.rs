//! Action `chat` (`ollama_bridge_msgs/action/Chat`): one utterance as a goal, for behaviour
//! trees and task executors.
//!
//! Goal requests are taken off r2r's queue on the spin thread and accepted; each gets a request
//! id routed to it ([`GoalRouter`]) and then joins its session's queue exactly like a topic input
//! ([`Bridge::submit_as`]: same order, limits and history; its outputs are also published on the
//! topics). A tokio task per goal turns the request's partials into feedback (`partial`, `seq`)
//! and its final into the result `response`: SUCCEEDED with the answer; CANCELED after a cancel
//! request it accepted (the request is withdrawn: its HTTP stream closed, or taken off the queue;
//! `done_reason: cancelled`); ABORTED with the error Response on failure or bad input (empty text,
//! bad session id, full queue), or when a `reset` or shutdown cancelled it.
//!
//! r2r 0.9.7 (`action_servers.rs`): the answer to a cancel request leaves at the next
//! `spin_once`; once a cancel is accepted r2r forgets the goal's handle, so the goal must end with
//! `cancel()` (`succeed`/`abort` would fail) whatever the request's ending.

use super::outputs::response_msg;
use super::StartError;
use crate::bridge::Bridge;
use crate::goals::{GoalEvent, GoalRouter};
use crate::outputs::{Ending, FinalResponse};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use r2r::ollama_bridge_msgs::action::Chat;
use r2r::{ActionServerCancelRequest, ActionServerGoal};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::task::TaskTracker;

/// Creates the action server; returns its goal loop, to be run on the spin thread. Each goal's
/// task runs on `runtime`, tracked by `tasks` (so shutdown can wait for the results to go out).
pub fn serve(
    node: &mut r2r::Node, bridge: Bridge, router: Arc<GoalRouter>, tasks: TaskTracker, runtime: &tokio::runtime::Handle,
) -> Result<BoxFuture<'static, ()>, StartError> {
    let mut requests = node.create_action_server::<Chat::Action>("chat")?;
    let runtime = runtime.clone();
    let goal_loop = async move {
        while let Some(request) = requests.next().await {
            let arrived = Instant::now();
            let Chat::Goal { session_id, text, attach_image } = request.goal.clone();
            let (goal, cancels) = match request.accept() {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::error!("chat: could not accept a goal: {e}");
                    continue;
                }
            };
            let id = bridge.reserve_request_id();
            let events = router.register(id);
            let task = GoalTask { bridge: bridge.clone(), router: router.clone(), session_id: session_id.clone(), id };
            tasks.spawn_on(task.run(goal, cancels, events), &runtime);
            bridge.submit_as(id, &session_id, text, attach_image, arrived);
        }
    };
    Ok(goal_loop.boxed())
}

/// One accepted goal and the request behind it.
struct GoalTask {
    bridge: Bridge,
    router: Arc<GoalRouter>,
    session_id: String,
    id: u64,
}

impl GoalTask {
    /// Feedback for every partial, cancel requests answered, then the result.
    async fn run(
        self, mut goal: ActionServerGoal<Chat::Action>,
        mut cancels: impl Stream<Item = ActionServerCancelRequest> + Unpin + Send + 'static,
        mut events: UnboundedReceiver<GoalEvent>,
    ) {
        let mut cancel_accepted = false;
        let mut cancels_open = true;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(GoalEvent::Partial { seq, text }) => {
                        if let Err(e) = goal.publish_feedback(Chat::Feedback { partial: text, seq }) {
                            log::warn!("chat goal of request {}: could not publish feedback: {e}", self.id);
                        }
                    }
                    Some(GoalEvent::Finished(response)) => return self.finish(&mut goal, &response, cancel_accepted),
                    None => {
                        log::error!("chat goal of request {}: its outputs stopped before a final response", self.id);
                        return;
                    }
                },
                cancel = cancels.next(), if cancels_open => match cancel {
                    Some(cancel) if self.bridge.cancel_request(&self.session_id, self.id) => {
                        log::info!("chat goal of request {}: cancel requested; withdrawing the request", self.id);
                        cancel.accept();
                        cancel_accepted = true;
                    }
                    // already answered: the final is on its way
                    Some(cancel) => cancel.reject(),
                    None => cancels_open = false,
                },
            }
        }
    }

    /// Ends the goal with the request's final response.
    fn finish(&self, goal: &mut ActionServerGoal<Chat::Action>, response: &FinalResponse, cancel_accepted: bool) {
        let result = Chat::Result { response: response_msg(response) };
        let (ending, reported) = if cancel_accepted {
            ("CANCELED", goal.cancel(result))
        } else if matches!(response.ending, Ending::Done(_)) {
            ("SUCCEEDED", goal.succeed(result))
        } else {
            ("ABORTED", goal.abort(result))
        };
        match reported {
            Ok(()) => log::debug!("chat goal of request {}: {ending} ({})", self.id, response.ending.done_reason()),
            Err(e) => log::error!("chat goal of request {}: could not report {ending}: {e}", self.id),
        }
    }
}

impl Drop for GoalTask {
    /// A task that ends early (runtime shutdown) must not leave its route behind.
    fn drop(&mut self) {
        self.router.forget(self.id);
    }
}
