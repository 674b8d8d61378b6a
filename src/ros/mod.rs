//! The ROS 2 face of the node: creates the node, its parameters, topics and services, spins it
//! on a thread of its own, and shuts everything down cleanly on SIGINT/SIGTERM. With
//! `config.rs`, the only code that knows about r2r.
//!
//! Threads: the *spin thread* owns the `Node`; after every `spin_once` it drains r2r's
//! subscription and service queues (capacity 10 each, overflow = silent loss) on a local
//! executor, handing each message to the bridge without waiting. The tokio runtime runs the
//! requests, `set_model` checks and the parameter services.

mod cdr;
mod images;
mod inputs;
mod outputs;
mod senses;
mod services;
mod tools;

use crate::bridge::Bridge;
use crate::config::{Config, ConfigHandle, InvalidParam, LiveParams, Params};
use futures::executor::LocalPool;
use futures::future::BoxFuture;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use inputs::INPUT_QOS;
pub use outputs::{RosOutputs, FINAL_QOS, PARTIAL_QOS};

/// The node's name (remappable with `-r __node:=...`).
pub const NODE_NAME: &str = "ollama_bridge";
/// How long in-flight requests get to publish their cancelled responses at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Upper bound of one `spin_once` wait; it returns as soon as anything arrives, so this only
/// bounds how quickly the spin thread notices shutdown.
const SPIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Why the node could not start.
#[derive(Debug)]
pub enum StartError {
    Ros(r2r::Error),
    Param(InvalidParam),
    Io(std::io::Error),
    /// A start-time setting is unusable (e.g. `tools_file`); the text says why and what to do.
    Config(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Ros(e) => write!(f, "ROS error: {e}"),
            StartError::Param(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "{e}"),
            StartError::Config(e) => write!(f, "{e}"),
        }
    }
}
impl std::error::Error for StartError {}
impl From<r2r::Error> for StartError {
    fn from(e: r2r::Error) -> Self {
        StartError::Ros(e)
    }
}
impl From<InvalidParam> for StartError {
    fn from(e: InvalidParam) -> Self {
        StartError::Param(e)
    }
}
impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Runs the node until `shutdown` resolves (SIGINT/SIGTERM in `main`).
pub fn run(shutdown: impl std::future::Future<Output = ()>) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // Poll `shutdown` once before anything is discoverable: that installs the signal handlers, so
    // a SIGINT sent as soon as the node's topics appear stops it cleanly instead of killing it.
    let mut shutdown = Box::pin(shutdown);
    if runtime.block_on(async { futures::poll!(shutdown.as_mut()) }).is_ready() {
        return Ok(());
    }
    let ctx = r2r::Context::create()?;
    let mut node = r2r::Node::create(ctx, NODE_NAME, "")?;
    crate::logging::set_ros_logger(node.logger());

    let params = Arc::new(Mutex::new(LiveParams { values: Params::with_defaults(), model_check: None }));
    let (param_service, param_events) = node.make_derived_parameter_handler(params.clone())?;
    let config = ConfigHandle::new(Config::from_params(&params.lock().unwrap_or_else(|e| e.into_inner()).values)?);

    let _entered = runtime.enter();
    let outputs = Arc::new(RosOutputs::create(&mut node)?);
    let bridge = Bridge::start(config.clone(), outputs);

    let (mut drains, local_tasks) = senses::attach(&mut node, &config.get(), &bridge)?;
    drains.extend(inputs::subscribe(&mut node, &bridge)?);
    let switch = services::ModelSwitch { bridge: bridge.clone(), params: params.clone(), config: config.clone() };
    drains.extend(services::serve(&mut node, switch, runtime.handle())?);

    // `ros2 param set model X` is checked against the server like set_model. r2r calls the
    // check inside its parameter service task, so it may block that task (never the spin thread).
    let (checker, handle) = (bridge.clone(), runtime.handle().clone());
    params.lock().unwrap_or_else(|e| e.into_inner()).model_check = Some(Box::new(move |model: &str| {
        tokio::task::block_in_place(|| handle.block_on(checker.check_model(model)))
    }));
    runtime.spawn(param_service);
    runtime.spawn(apply_parameter_changes(param_events, params, config.clone()));

    let snapshot = config.get();
    log::info!("ready: model '{}' at {} (max_concurrent_requests {}, history {} turns)", snapshot.model,
        snapshot.ollama_url, snapshot.max_concurrent_requests, snapshot.max_history_turns);

    let running = Arc::new(AtomicBool::new(true));
    let spin_thread = spin_in_thread(node, drains, local_tasks, runtime.handle().clone(), running.clone())?;

    runtime.block_on(shutdown);
    log::info!("shutting down: cancelling in-flight requests");
    runtime.block_on(bridge.shutdown(SHUTDOWN_GRACE));
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
    mut node: r2r::Node, drains: Vec<BoxFuture<'static, ()>>, local_tasks: Vec<tools::LocalTask>,
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
        }
        // The node (and its publishers) stay alive until here, after the final responses.
        drop(node);
    })
}

/// Rebuilds the config after each accepted `ros2 param set`: the next request uses it.
async fn apply_parameter_changes(
    mut events: impl futures::Stream<Item = (String, r2r::ParameterValue)> + Unpin,
    params: Arc<Mutex<LiveParams>>, config: ConfigHandle,
) {
    while let Some((name, value)) = events.next().await {
        let values = params.lock().unwrap_or_else(|e| e.into_inner()).values.clone();
        match Config::from_params(&values) {
            Ok(new_config) => {
                log::info!("parameter '{name}' set to {value:?}; applies to the next request");
                config.set(new_config);
            }
            Err(e) => log::error!("parameter change left an invalid config ({e}); keeping the previous one"),
        }
    }
}
