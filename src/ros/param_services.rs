//! The six parameter services of the node (`<node>/get_parameters`, `get_parameter_types`,
//! `describe_parameters`, `list_parameters`, `set_parameters`, `set_parameters_atomically`;
//! names and QoS as rclcpp's `ParameterService`) and its `/parameter_events` publisher, over a
//! [`ParamStore`]. Reads are answered on the spin thread; sets run on the tokio runtime (a new
//! `model` is checked on the server first).

use super::params::{EventSink, ParamStore};
use super::StartError;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::rcl_interfaces::msg::{ParameterEvent, SetParametersResult};
use r2r::rcl_interfaces::srv::{
    DescribeParameters, GetParameterTypes, GetParameters, ListParameters, SetParameters, SetParametersAtomically,
};
use r2r::QosProfile;
use std::sync::{Arc, Mutex};

/// The `/parameter_events` publisher as an [`EventSink`] (QoS as rclcpp's: reliable, depth 1000).
pub fn event_sink(node: &mut r2r::Node) -> Result<EventSink, StartError> {
    let publisher = Mutex::new(node.create_publisher::<ParameterEvent>("/parameter_events", QosProfile::parameter_events())?);
    Ok(Box::new(move |event| {
        if let Err(e) = publisher.lock().unwrap_or_else(|e| e.into_inner()).publish(&event) {
            log::error!("could not publish on /parameter_events: {e}");
        }
    }))
}

fn answer<T: r2r::WrappedServiceTypeSupport + 'static>(req: r2r::ServiceRequest<T>, response: T::Response, what: &str) {
    if let Err(e) = req.respond(response) {
        log::error!("could not answer a {what} request: {e}");
    }
}

/// The service `<name>/<service>`, each request answered at once by `respond` (a read of the
/// store); returns its request loop.
fn reads<T>(
    node: &mut r2r::Node, name: &str, service: &'static str, store: &Arc<ParamStore>,
    respond: fn(&ParamStore, &T::Request) -> T::Response,
) -> Result<BoxFuture<'static, ()>, StartError>
where
    T: r2r::WrappedServiceTypeSupport + Send + 'static,
    T::Request: Send,
    T::Response: Send,
{
    let mut requests = node.create_service::<T>(&format!("{name}/{service}"), QosProfile::parameters())?;
    let store = store.clone();
    Ok(async move {
        while let Some(req) = requests.next().await {
            let response = respond(&store, &req.message);
            answer(req, response, service);
        }
    }
    .boxed())
}

/// Creates the services; returns their request loops, to be run on the spin thread.
pub fn serve(
    node: &mut r2r::Node, store: Arc<ParamStore>, runtime: &tokio::runtime::Handle,
) -> Result<Vec<BoxFuture<'static, ()>>, StartError> {
    let name = node.name()?;
    let qos = QosProfile::parameters;
    let mut loops = Vec::new();

    loops.push(reads::<GetParameters::Service>(node, &name, "get_parameters", &store, |s, req| {
        GetParameters::Response { values: s.get(&req.names) }
    })?);
    loops.push(reads::<GetParameterTypes::Service>(node, &name, "get_parameter_types", &store, |s, req| {
        GetParameterTypes::Response { types: s.types(&req.names) }
    })?);
    loops.push(reads::<DescribeParameters::Service>(node, &name, "describe_parameters", &store, |s, req| {
        DescribeParameters::Response { descriptors: s.describe(&req.names) }
    })?);
    loops.push(reads::<ListParameters::Service>(node, &name, "list_parameters", &store, |s, req| {
        ListParameters::Response { result: s.list(&req.prefixes) }
    })?);

    let mut requests = node.create_service::<SetParameters::Service>(&format!("{name}/set_parameters"), qos())?;
    let (s, rt) = (store.clone(), runtime.clone());
    loops.push(async move {
        while let Some(req) = requests.next().await {
            let s = s.clone();
            rt.spawn(async move {
                let mut results = Vec::new();
                for p in &req.message.parameters {
                    results.push(outcome(s.set(std::slice::from_ref(p)).await));
                }
                answer(req, SetParameters::Response { results }, "set_parameters");
            });
        }
    }.boxed());

    let mut requests =
        node.create_service::<SetParametersAtomically::Service>(&format!("{name}/set_parameters_atomically"), qos())?;
    let (s, rt) = (store, runtime.clone());
    loops.push(async move {
        while let Some(req) = requests.next().await {
            let s = s.clone();
            rt.spawn(async move {
                let result = outcome(s.set(&req.message.parameters).await);
                answer(req, SetParametersAtomically::Response { result }, "set_parameters_atomically");
            });
        }
    }.boxed());
    Ok(loops)
}

fn outcome(result: Result<String, String>) -> SetParametersResult {
    match result {
        Ok(_) => SetParametersResult { successful: true, reason: String::new() },
        Err(reason) => {
            log::warn!("parameter change refused: {reason}");
            SetParametersResult { successful: false, reason }
        }
    }
}
