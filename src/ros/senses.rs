//! Gives the bridge its camera and tools at start: the camera subscriptions, the `tools_file`
//! loaded and checked (a bad file or a type that is not built in stops the node with the
//! reason), and the ROS clients that run the tools.

use super::images;
use super::tools::{self, LocalTask};
use super::StartError;
use crate::bridge::Bridge;
use crate::config::Config;
use crate::images::FrameStore;
use crate::senses::Senses;
use crate::tools::{ToolExecutor, ToolSet, TypeLibrary};
use futures::future::BoxFuture;
use std::sync::Arc;

/// Creates the camera subscriptions and the tools' clients and hands them to `bridge`. Returns
/// the drain loops and the spin-thread tasks to run.
pub fn attach(node: &mut r2r::Node, config: &Config, bridge: &Bridge)
              -> Result<(Vec<BoxFuture<'static, ()>>, Vec<LocalTask>), StartError> {
    let camera = Arc::new(FrameStore::new(&[&config.image_topic, &config.compressed_image_topic]));
    let drains = images::subscribe(node, config, &camera)?;
    let mut local = Vec::new();
    let tools = match &config.tools_file {
        None => None,
        Some(path) => {
            let set = ToolSet::load(path, &TypeLibrary::from_env()).map_err(StartError::Config)?;
            let (executor, runner) = tools::create(node, &set)?;
            local.push(runner);
            let names: Vec<String> = set.iter().map(|t| format!("{} ({} {})", t.spec.name, t.spec.binding.as_str(), t.spec.target)).collect();
            log::info!("tools from {}: {}", path.display(), names.join(", "));
            let executor: Arc<dyn ToolExecutor> = Arc::new(executor);
            Some((Arc::new(set), executor))
        }
    };
    bridge.set_senses(Arc::new(Senses::new(camera, tools)));
    Ok((drains, local))
}
