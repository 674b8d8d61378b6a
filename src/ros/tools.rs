//! The ROS side of the tools: one untyped r2r client, action client or publisher per tool of
//! the `tools_file`, and the `tool_calls` audit publisher. Implements [`ToolExecutor`].
//!
//! r2r's untyped clients take and give `serde_json::Value`, but only for interface packages
//! whose bindings were generated at build time (`IDL_PACKAGE_FILTER`, see README "Tools"); a
//! tools file naming another type stops the node at start with a message saying how to add it.
//!
//! Services and topics are called from the request's tokio task. Action goals run on the spin
//! thread (r2r's action futures are not `Send`): [`RosTools::execute`] hands the goal to the
//! `action_runner` loop and waits for its reply; when the request stops waiting (timeout,
//! cancel, reset, barge-in, shutdown) the reply channel closes and the runner cancels the goal.

use super::StartError;
use crate::tools::{Binding, ToolCallRecord, ToolExecutor, ToolSet};
use futures::channel::{mpsc, oneshot};
use futures::future::{BoxFuture, FutureExt, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use r2r::ollama_bridge_msgs::msg::ToolCall;
use r2r::{ActionClientUntyped, ClientUntyped, GoalStatus, Publisher, PublisherUntyped, QosProfile};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Audit records: reliable, deep enough for bursts of calls.
pub const TOOL_CALLS_QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);
/// A server not discovered within this long (or half the tool's `timeout_s`, if shorter) is absent.
pub const SERVER_WAIT: Duration = Duration::from_secs(2);
/// The packages r2r generated bindings for in this build.
const BUILT_IN: &str = match option_env!("IDL_PACKAGE_FILTER") {
    Some(list) => list,
    None => "(not recorded)",
};

enum Handle {
    Service(Arc<ClientUntyped>),
    /// The client (kept here, `Sync` behind a mutex) and the queue of the action runner.
    Action(Mutex<ActionClientUntyped>, mpsc::UnboundedSender<Goal>),
    Topic(Arc<Mutex<PublisherUntyped>>),
}

struct Bound {
    handle: Handle,
    target: String,
    server_wait: Duration,
}

/// A goal for the action runner, with where its outcome goes.
struct Goal {
    client: ActionClientUntyped,
    target: String,
    goal: Value,
    server_wait: Duration,
    reply: oneshot::Sender<Result<Value, String>>,
}

/// A loop that must run on the spin thread (it holds r2r futures that are not `Send`): the
/// closure is sent there and called to make it.
pub type LocalTask = Box<dyn FnOnce() -> LocalBoxFuture<'static, ()> + Send>;

/// [`ToolExecutor`] over ROS.
pub struct RosTools {
    bound: HashMap<String, Bound>,
    audit: Mutex<Publisher<ToolCall>>,
}

/// Creates every tool's client or publisher and the `tool_calls` publisher; returns the executor
/// and the action runner (to run on the spin thread). Fails if a type is not built in.
pub fn create(node: &mut r2r::Node, tools: &ToolSet) -> Result<(RosTools, LocalTask), StartError> {
    let (goals, goal_queue) = mpsc::unbounded::<Goal>();
    let mut bound = HashMap::new();
    for tool in tools.iter() {
        let spec = &tool.spec;
        let failed = |e: r2r::Error| match e {
            r2r::Error::InvalidMessageType { .. } => StartError::Config(format!(
                "tool '{}': type {} is not built into this node; r2r generated bindings only for: {BUILT_IN}. \
                 Rebuild with its package added, e.g. OLLAMA_BRIDGE_INTERFACES='{}' ./scripts/setup (README: Tools)",
                spec.name, spec.type_name, spec.type_name.split('/').next().unwrap_or_default())),
            other => StartError::Config(format!("tool '{}': cannot create the {} client of {}: {other}",
                spec.name, spec.binding.as_str(), spec.target)),
        };
        let handle = match spec.binding {
            Binding::Service => Handle::Service(Arc::new(
                node.create_client_untyped(&spec.target, &spec.type_name, QosProfile::services_default()).map_err(failed)?)),
            Binding::Action => Handle::Action(
                Mutex::new(node.create_action_client_untyped(&spec.target, &spec.type_name).map_err(failed)?), goals.clone()),
            Binding::Topic => Handle::Topic(Arc::new(Mutex::new(
                node.create_publisher_untyped(&spec.target, &spec.type_name, QosProfile::default().reliable()).map_err(failed)?))),
        };
        let server_wait = SERVER_WAIT.min(spec.timeout / 2);
        bound.insert(spec.name.clone(), Bound { handle, target: spec.target.clone(), server_wait });
    }
    let audit = Mutex::new(node.create_publisher::<ToolCall>("tool_calls", TOOL_CALLS_QOS)?);
    let runner: LocalTask = Box::new(move || action_runner(goal_queue).boxed_local());
    Ok((RosTools { bound, audit }, runner))
}

impl ToolExecutor for RosTools {
    fn execute(&self, name: &str, arguments: Value) -> BoxFuture<'static, Result<Value, String>> {
        let Some(bound) = self.bound.get(name) else {
            let name = name.to_string();
            return async move { Err(format!("tool '{name}' has no ROS binding")) }.boxed();
        };
        let (target, server_wait) = (bound.target.clone(), bound.server_wait);
        match &bound.handle {
            Handle::Service(client) => call_service(client.clone(), target, arguments, server_wait).boxed(),
            Handle::Topic(publisher) => publish_on_topic(publisher.clone(), target, arguments, server_wait).boxed(),
            Handle::Action(client, goals) => {
                let client = client.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (reply, outcome) = oneshot::channel();
                let queued = goals.unbounded_send(Goal { client, target: target.clone(), goal: arguments, server_wait, reply });
                async move {
                    queued.map_err(|_| "the node is shutting down".to_string())?;
                    outcome.await.unwrap_or_else(|_| Err(format!("the action client of {target} went away")))
                }
                .boxed()
            }
        }
    }

    fn audit(&self, record: &ToolCallRecord) {
        let msg = ToolCall {
            session_id: record.session_id.clone(),
            request_id: record.request_id,
            round: record.round,
            name: record.name.clone(),
            arguments_json: record.arguments_json.clone(),
            result_json: record.result_json.clone(),
            error: record.error.clone(),
            duration_s: record.duration_s,
            dry_run: record.dry_run,
        };
        if let Err(e) = self.audit.lock().unwrap_or_else(|e| e.into_inner()).publish(&msg) {
            log::error!("could not publish tool_calls: {e}");
        }
    }
}

/// Waits until the server of `what` is discovered, at most `wait`.
async fn wait_for_server(available: r2r::Result<impl Future<Output = r2r::Result<()>>>, what: &str, wait: Duration)
                         -> Result<(), String> {
    let available = available.map_err(|e| format!("cannot watch for the {what}: {e}"))?;
    match tokio::time::timeout(wait, available).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot watch for the {what}: {e}")),
        Err(_) => Err(format!("the {what} is not available (no server found within {:.1}s)", wait.as_secs_f64())),
    }
}

/// Publishes `message` once the publisher has matched a subscription, waiting at most `wait`:
/// the topic is volatile, so a message published before a subscriber's reader is matched (a
/// display node started with the robot, discovery still under way) reaches no one. With no
/// subscriber after the wait it is published all the same. Result: `{"published": true,
/// "topic": <target>, "subscribers": <matched subscriptions when published>}`.
async fn publish_on_topic(publisher: Arc<Mutex<PublisherUntyped>>, target: String, message: Value, wait: Duration)
                          -> Result<Value, String> {
    let lock = || publisher.lock().unwrap_or_else(|e| e.into_inner());
    let subscribers = |p: &PublisherUntyped| p.get_inter_process_subscription_count()
        .map_err(|e| format!("cannot count the subscribers of {target}: {e}"));
    let matched = {
        let publisher = lock();
        if subscribers(&publisher)? == 0 { publisher.wait_for_inter_process_subscribers().ok() } else { None }
    };
    if let Some(matched) = matched {
        let _ = tokio::time::timeout(wait, matched).await;
    }
    let publisher = lock();
    let subscribers = subscribers(&publisher)?;
    publisher.publish(message).map_err(|e| format!("could not publish on {target}: {e}"))?;
    Ok(json!({"published": true, "topic": target, "subscribers": subscribers}))
}

/// Sends the request and waits for the response (as JSON).
async fn call_service(client: Arc<ClientUntyped>, target: String, request: Value, wait: Duration) -> Result<Value, String> {
    wait_for_server(r2r::Node::is_available(client.as_ref()), &format!("service {target}"), wait).await?;
    let response = client.request(request).map_err(|e| format!("could not send the request to {target}: {e}"))?;
    match response.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("the response of {target} could not be read: {e}")),
        Err(e) => Err(format!("service {target} gave no response: {e}")),
    }
}

/// Runs every queued goal concurrently, on the spin thread, until the queue closes.
async fn action_runner(mut goals: mpsc::UnboundedReceiver<Goal>) {
    let mut running = FuturesUnordered::new();
    loop {
        futures::select! {
            goal = goals.next() => match goal {
                Some(goal) => running.push(run_goal(goal)),
                None => break,
            },
            () = running.select_next_some() => {}
        }
    }
}

/// One goal: wait for the server, send it, drain its feedback, reply with its result. If the
/// caller stops waiting (its reply channel closes), the goal is cancelled.
async fn run_goal(goal: Goal) {
    let Goal { client, target, goal, server_wait, mut reply } = goal;
    let accepted = {
        let accept = async {
            wait_for_server(r2r::Node::is_available(&client), &format!("action server {target}"), server_wait).await?;
            let sent = client.send_goal_request(goal).map_err(|e| format!("could not send the goal to {target}: {e}"))?;
            sent.await.map_err(|e| match e {
                r2r::Error::RCL_RET_ACTION_GOAL_REJECTED => format!("the action server {target} rejected the goal"),
                other => format!("the goal was not accepted by {target}: {other}"),
            })
        }
        .fuse();
        futures::pin_mut!(accept);
        futures::select! {
            accepted = accept => accepted,
            () = reply.cancellation().fuse() => return,
        }
    };
    let (handle, result, feedback) = match accepted {
        Ok(accepted) => accepted,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let result = result.fuse();
    futures::pin_mut!(result);
    let mut feedback = feedback.fuse();
    let outcome = loop {
        futures::select! {
            done = result => break goal_outcome(&target, done),
            _ = feedback.next() => {}
            () = reply.cancellation().fuse() => {
                cancel_goal(&handle, &target).await;
                return;
            }
        }
    };
    let _ = reply.send(outcome);
}

/// The model's view of a finished goal: `{"status": "succeeded", "result": {...}}`, or an error.
fn goal_outcome(target: &str, done: r2r::Result<(GoalStatus, r2r::Result<Value>)>) -> Result<Value, String> {
    match done {
        Ok((GoalStatus::Succeeded, Ok(result))) => Ok(json!({"status": "succeeded", "result": result})),
        Ok((status, Ok(result))) => Err(format!("the action {target} ended with status {status:?} (result: {result})")),
        Ok((_, Err(e))) => Err(format!("the result of {target} could not be read: {e}")),
        Err(e) => Err(format!("the action {target} gave no result: {e}")),
    }
}

/// Asks the action server to cancel a goal the request no longer waits for.
async fn cancel_goal(handle: &r2r::ActionClientGoalUntyped, target: &str) {
    let answered = match handle.cancel() {
        Ok(answer) => tokio::time::timeout(SERVER_WAIT, answer).await,
        Err(e) => return log::warn!("could not cancel the goal of {target}: {e}"),
    };
    match answered {
        Ok(Ok(())) => log::info!("goal of {target} cancelled (the request stopped waiting for it)"),
        Ok(Err(e)) => log::warn!("cancelling the goal of {target}: {e}"),
        Err(_) => log::warn!("cancelling the goal of {target}: no answer within {:.0}s", SERVER_WAIT.as_secs_f64()),
    }
}
