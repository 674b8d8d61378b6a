//! The ROS 2 face of the node: creates the node, its parameters, topics and services, spins it
//! on a thread of its own, and shuts everything down cleanly on SIGINT/SIGTERM. The only code
//! that knows about r2r.
//!
//! Threads: the *spin thread* owns the `Node`; after every `spin_once` it drains r2r's
//! subscription and service queues (capacity 10 each, overflow = silent loss) on a local
//! executor, handing each message to the bridge without waiting, and checks the QoS of the
//! input publishers (`qos_watch`). The tokio runtime runs the requests, `set_model` checks and
//! parameter changes.
//!
//! Modules: `inputs` / `cdr` (subscriptions, raw CDR decoding), `outputs` (publishers),
//! `services` (`reset`, `cancel`, `set_model`), `params` / `param_services` (the ROS parameters and
//! their services and events), `qos_watch` (input publishers whose QoS cannot match),
//! `rcl_args` (the command line as rcl parses it, remapped topic names), `logging` / `rosout`
//! (`log` → console and `/rosout`), `start_error` (why the node could not start, exit codes).
//!
//! Also: the `chat` action (`chat_action`), `list_models` and the `pull_model` action
//! (`model_admin`), `/diagnostics` (`diagnostics`), and the camera and tools (`senses`:
//! `images` subscriptions, `tools` untyped service/action/topic clients, `tool_calls`).

mod cdr;
mod chat_action;
mod diagnostics;
mod images;
mod inputs;
pub mod logging;
mod model_admin;
mod outputs;
mod param_services;
mod params;
mod qos_watch;
mod rcl_args;
mod rosout;
mod senses;
mod services;
mod start_error;
mod tools;

use crate::bridge::Bridge;
use crate::config::{Config, ConfigHandle, Params};
use crate::goals::GoalRouter;
use crate::health::{Counting, Health, Stats};
use crate::warm_up::{unload_at_exit, Reason, WarmUp};
use futures::executor::LocalPool;
use futures::future::BoxFuture;
use futures::task::LocalSpawnExt;
use futures::FutureExt;
use params::{ModelCheck, ParamStore};
use qos_watch::InputWatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use inputs::{BEST_EFFORT_INPUT_QOS, INPUT_QOS};
pub use outputs::{RosOutputs, FINAL_QOS, PARTIAL_QOS};
pub use start_error::StartError;

/// The node's name (remappable with `-r __node:=...`).
pub const NODE_NAME: &str = "ollama_bridge";
/// How long in-flight requests get to publish their cancelled responses at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Then how long the action goals get to send their results (the chat finals are out by then).
const GOAL_RESULTS_GRACE: Duration = Duration::from_millis(800);
/// Upper bound of one `spin_once` wait; it returns as soon as anything arrives, so this only
/// bounds how quickly the spin thread notices shutdown.
const SPIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Runs the node with the command line `argv` until `shutdown` resolves (SIGINT/SIGTERM in `main`).
pub fn run(argv: &[String], shutdown: impl std::future::Future<Output = ()>) -> Result<(), StartError> {
    let ros_args = rcl_args::RosArgs::parse(argv).map_err(StartError::Args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // Poll `shutdown` once before anything is discoverable: that installs the signal handlers, so
    // a SIGINT sent as soon as the node's topics appear stops it cleanly instead of killing it.
    let mut shutdown = Box::pin(shutdown);
    if runtime.block_on(async { futures::poll!(shutdown.as_mut()) }).is_ready() {
        return Ok(());
    }
    let ctx = start_error::create_context()?;
    let mut node = r2r::Node::create(ctx, NODE_NAME, "")?;
    logging::set_ros_logger(node.logger());
    rosout::attach(&mut node)?;

    let mut values = Params::with_defaults();
    let overrides = node.params.lock().unwrap_or_else(|e| e.into_inner()).iter()
        .map(|(name, p)| (name.clone(), p.value.clone())).collect();
    params::apply_overrides(&mut values, overrides)?;
    let config = ConfigHandle::new(Config::from_params(&values)?);
    let input_qos = inputs::input_qos(&values.input_reliability);

    let _entered = runtime.enter();
    // the bridge → routing to chat goals → counters for /diagnostics → the publishers
    let stats = Arc::new(Stats::default());
    let counting = Arc::new(Counting { inner: Arc::new(RosOutputs::create(&mut node)?), stats: stats.clone() });
    let router = Arc::new(GoalRouter::new(counting));
    let bridge = Bridge::start(config.clone(), router.clone());

    // `ros2 param set model X` is checked against the server like set_model.
    let checker = bridge.clone();
    let model_check: ModelCheck = Arc::new(move |model: String| {
        let checker = checker.clone();
        async move { checker.check_model(&model).await }.boxed()
    });
    let events = param_services::event_sink(&mut node)?;
    let store = Arc::new(ParamStore::new(values, config.clone(), node.fully_qualified_name()?, model_check, events));
    // warm_up: the model is loaded now and after every change of model or server, in the background
    let warm_up = Arc::new(WarmUp::new());
    // (on every server, each with its own context-window lookup)
    let lookup = |b: &Bridge| {
        let b = b.clone();
        move |client: crate::ollama::Client| {
            let b = b.clone();
            async move { b.look_up_context_window(&client).await }
        }
    };
    let (warmer, warm_bridge) = (warm_up.clone(), bridge.clone());
    store.on_change(Box::new(move |before: &Config, now: &Config| {
        if before.model != now.model || crate::fleet::rebuilds_fleet(before, now) {
            warmer.start(warm_bridge.fleet(), now, Reason::ModelChange, lookup(&warm_bridge));
        }
    }));

    // every goal's task is tracked, so that each can send its result before the node goes
    let (goal_tasks, stopping) = (tokio_util::task::TaskTracker::new(), tokio_util::sync::CancellationToken::new());

    let (mut drains, local_tasks) = senses::attach(&mut node, &config.get(), &bridge)?;
    drains.extend(inputs::subscribe(&mut node, &bridge, input_qos.clone())?);
    drains.extend(param_services::serve(&mut node, store.clone(), runtime.handle())?);
    let switch = services::ModelSwitch { params: store.clone(), config: config.clone() };
    drains.extend(services::serve(&mut node, switch, bridge.clone(), runtime.handle())?);
    drains.push(chat_action::serve(&mut node, bridge.clone(), router, goal_tasks.clone(), runtime.handle())?);
    let pulls = model_admin::PullTasks { tracker: goal_tasks.clone(), stopping: stopping.clone() };
    drains.extend(model_admin::serve(&mut node, bridge.clone(), config.clone(), pulls, runtime.handle())?);
    let diagnostics = diagnostics::start(&mut node, Health::new(bridge.clone(), config.clone(), stats), runtime.handle())?;
    let watch = InputWatch::new(&node, &ros_args, &inputs::INPUTS, input_qos)?;
    store.announce();
    // only now that everything was created (a bad tools_file stops the node before any load)
    warm_up.start(bridge.fleet(), &config.get(), Reason::Start, lookup(&bridge));

    let snapshot = config.get();
    log::info!("ready: model '{}' at {} (max_concurrent_requests {}, history {} turns)", snapshot.model,
        crate::config::redact_url(&snapshot.ollama_url), snapshot.max_concurrent_requests, snapshot.max_history_turns);

    let running = Arc::new(AtomicBool::new(true));
    let spin_thread = spin_in_thread(node, drains, local_tasks, watch, runtime.handle().clone(), running.clone())?;

    runtime.block_on(shutdown);
    log::info!("shutting down: cancelling in-flight requests");
    diagnostics.stop();
    warm_up.stop();
    let last = config.get();
    runtime.block_on(async {
        tokio::join!(bridge.shutdown(SHUTDOWN_GRACE), unload_at_exit(bridge.fleet(), &last, SHUTDOWN_GRACE))
    });
    stopping.cancel();
    goal_tasks.close();
    if runtime.block_on(tokio::time::timeout(GOAL_RESULTS_GRACE, goal_tasks.wait())).is_err() {
        log::warn!("shutdown: some action goals did not report their result");
    }
    running.store(false, Ordering::Release);
    if spin_thread.join().is_err() {
        log::error!("the spin thread panicked");
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Moves the node to the spin thread: each `spin_once` returns as soon as anything arrived, then
/// the drain loops empty r2r's queues into the bridge. Runs until `running` is cleared.
fn spin_in_thread(
    mut node: r2r::Node, drains: Vec<BoxFuture<'static, ()>>, local_tasks: Vec<tools::LocalTask>, mut watch: InputWatch,
    runtime: tokio::runtime::Handle, running: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("ros-spin".into()).spawn(move || {
        let _entered = runtime.enter();
        let mut pool = LocalPool::new();
        for drain in drains {
            if let Err(e) = pool.spawner().spawn_local(drain) {
                log::error!("could not start a subscription loop: {e}");
            }
        }
        for make in local_tasks {
            if let Err(e) = pool.spawner().spawn_local(make()) {
                log::error!("could not start a spin-thread task: {e}");
            }
        }
        while running.load(Ordering::Acquire) {
            node.spin_once(SPIN_TIMEOUT);
            pool.run_until_stalled();
            watch.check(&node);
        }
        // The node (and its publishers) stay alive until here, after the final responses.
        rosout::detach();
        drop(node);
    })
}
