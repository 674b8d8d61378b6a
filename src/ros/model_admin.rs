//! Service `list_models` and action `pull_model`, for operators and task logic.
//!
//! Both are taken off r2r's queues on the spin thread and run as tokio tasks (a pull can take
//! minutes). `pull_model` publishes every `/api/pull` progress line as feedback (`status`,
//! `completed`, `total`), ends SUCCEEDED (`success: true`) or ABORTED with Ollama's error text;
//! a cancel request is always accepted while the pull runs: the HTTP stream is closed, which stops
//! the download in Ollama, and the goal ends CANCELED. At shutdown a running pull is stopped the
//! same way and ABORTED.

use super::StartError;
use crate::bridge::Bridge;
use crate::config::ConfigHandle;
use crate::model_admin::{self, PullOutcome};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use r2r::ollama_bridge_msgs::action::PullModel;
use r2r::ollama_bridge_msgs::srv::ListModels;
use r2r::{ActionServerCancelRequest, ActionServerGoal, QosProfile};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where pull goals run: tracked, and stopped when `stopping` fires (node shutdown).
pub struct PullTasks {
    pub tracker: TaskTracker,
    pub stopping: CancellationToken,
}

/// Creates the service and the action server; returns their loops, to be run on the spin thread.
pub fn serve(
    node: &mut r2r::Node, bridge: Bridge, config: ConfigHandle, tasks: PullTasks, runtime: &tokio::runtime::Handle,
) -> Result<Vec<BoxFuture<'static, ()>>, StartError> {
    let mut lists = node.create_service::<ListModels::Service>("list_models", QosProfile::services_default())?;
    let (b, rt) = (bridge.clone(), runtime.clone());
    let list_loop = async move {
        while let Some(req) = lists.next().await {
            let (fleet, current_model) = (b.fleet(), config.get().model.clone());
            rt.spawn(async move {
                let list = model_admin::list_models(fleet).await;
                let response = ListModels::Response {
                    success: list.success, message: list.message, models: list.models, loaded: list.loaded, current_model,
                };
                if let Err(e) = req.respond(response) {
                    log::error!("could not answer a list_models request: {e}");
                }
            });
        }
    };
    let mut pulls = node.create_action_server::<PullModel::Action>("pull_model")?;
    let rt = runtime.clone();
    let pull_loop = async move {
        while let Some(request) = pulls.next().await {
            let model = request.goal.model.clone();
            match request.accept() {
                Ok((goal, cancels)) => {
                    let pull = run_pull(goal, cancels, bridge.clone(), model, tasks.stopping.clone());
                    tasks.tracker.spawn_on(pull, &rt);
                }
                Err(e) => log::error!("pull_model: could not accept a goal: {e}"),
            }
        }
    };
    Ok(vec![list_loop.boxed(), pull_loop.boxed()])
}

/// Runs one pull goal to its end.
async fn run_pull(
    mut goal: ActionServerGoal<PullModel::Action>,
    mut cancels: impl Stream<Item = ActionServerCancelRequest> + Unpin + Send + 'static, bridge: Bridge,
    model: String, stopping: CancellationToken,
) {
    let outcome = {
        // a clone of the handle (r2r's are Send, not Sync: a borrow could not cross an await)
        let (progress_goal, name) = (goal.clone(), model.clone());
        let feedback = move |p: &crate::ollama::PullProgress| {
            let msg = PullModel::Feedback {
                status: p.status.clone(),
                completed: p.completed.unwrap_or(0),
                total: p.total.unwrap_or(0),
            };
            if let Err(e) = progress_goal.publish_feedback(msg) {
                log::warn!("pull_model '{name}': could not publish feedback: {e}");
            }
        };
        let pull = model_admin::pull(bridge.fleet(), &model, feedback);
        tokio::pin!(pull);
        let mut cancels_open = true;
        loop {
            tokio::select! {
                outcome = &mut pull => break Some(outcome),
                _ = stopping.cancelled() => break Some(PullOutcome::Failed("the node is shutting down".into())),
                cancel = cancels.next(), if cancels_open => match cancel {
                    Some(cancel) => {
                        cancel.accept();
                        break None;
                    }
                    None => cancels_open = false,
                },
            }
        }
        // leaving this block drops the pull: its connection closes and Ollama stops
    };
    let reported = match outcome {
        Some(PullOutcome::Pulled(message)) => goal.succeed(PullModel::Result { success: true, message }),
        Some(PullOutcome::Failed(message)) => goal.abort(PullModel::Result { success: false, message }),
        None => {
            log::info!("pull of '{model}' cancelled");
            let message = format!("pull of '{model}' cancelled");
            goal.cancel(PullModel::Result { success: false, message })
        }
    };
    if let Err(e) = reported {
        log::error!("pull_model '{model}': could not report the result: {e}");
    }
}
