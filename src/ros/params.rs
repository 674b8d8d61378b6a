//! The node's parameters as ROS parameters, served the way rclcpp serves them: [`ParamStore`]
//! answers the six `rcl_interfaces` parameter services (wired in `param_services`) from the
//! table in `config.rs` and announces every accepted change on `/parameter_events`.
//!
//! Beyond r2r's own handler (r2r 0.9.7 `nodes.rs`, which has no ranges, no read-only and no
//! events): descriptors carry the description, `integer_range` / `floating_point_range` and
//! `read_only`; a set is converted (an integer where seconds are expected), range-checked and
//! validated as a whole `Config` (and a new `model` checked on the server) before it is
//! accepted; read-only parameters are refused with a reason; `ollama_url` is only ever shown
//! with its password redacted.

use crate::config::params::{Kind, Value};
use crate::config::{spec, Config, ConfigHandle, InvalidParam, Params, PARAMS};
use futures::future::BoxFuture;
use r2r::builtin_interfaces::msg::Time;
use r2r::rcl_interfaces::msg::{
    FloatingPointRange, IntegerRange, ListParametersResult, Parameter as ParamMsg, ParameterDescriptor,
    ParameterEvent, ParameterType, ParameterValue as ValueMsg,
};
use std::sync::{Arc, Mutex, OnceLock};

/// Asks the servers whether a model exists: `Ok` with a note naming the servers that lack it
/// (empty when none do), `Err`: why not, for a person.
pub type ModelCheck = Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;
/// Publishes a parameter event (on `/parameter_events`).
pub type EventSink = Box<dyn Fn(ParameterEvent) + Send + Sync>;
/// Told of every accepted change, with the config before and after (e.g. to warm a new model).
pub type ChangeHook = Box<dyn Fn(&Config, &Config) + Send + Sync>;

/// The parameters of the running node and everything a change must update.
pub struct ParamStore {
    values: Mutex<Params>,
    /// Serialises changes (held across a model check; reads never wait for it).
    changing: tokio::sync::Mutex<()>,
    config: ConfigHandle,
    model_check: ModelCheck,
    events: EventSink,
    /// The node's fully qualified name, as parameter events name it.
    node: String,
    /// Set once by [`ParamStore::on_change`].
    on_change: OnceLock<ChangeHook>,
}

impl ParamStore {
    pub fn new(values: Params, config: ConfigHandle, node: String, model_check: ModelCheck, events: EventSink) -> ParamStore {
        let (changing, on_change) = (tokio::sync::Mutex::new(()), OnceLock::new());
        ParamStore { values: Mutex::new(values), changing, config, model_check, events, node, on_change }
    }

    /// Calls `hook` after every accepted change (a second hook is ignored).
    pub fn on_change(&self, hook: ChangeHook) {
        let _ = self.on_change.set(hook);
    }

    /// The values in force now.
    pub fn current(&self) -> Params {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes every parameter as new (what rclcpp does when a node declares its parameters).
    pub fn announce(&self) {
        let values = self.current();
        let params = PARAMS.iter().filter_map(|s| Some(param_msg(s.name, values.exposed(s.name)?))).collect();
        (self.events)(ParameterEvent { stamp: now(), node: self.node.clone(), new_parameters: params, ..Default::default() });
    }

    /// `get_parameters`: the shown values; none at all if a name is unknown (as rclcpp answers).
    pub fn get(&self, names: &[String]) -> Vec<ValueMsg> {
        let values = self.current();
        names.iter().map(|n| values.exposed(n).map(value_msg)).collect::<Option<_>>().unwrap_or_default()
    }

    /// `get_parameter_types`: none at all if a name is unknown.
    pub fn types(&self, names: &[String]) -> Vec<u8> {
        names.iter().map(|n| spec(n).ok().map(|s| type_of(&s.kind))).collect::<Option<_>>().unwrap_or_default()
    }

    /// `describe_parameters`: none at all if a name is unknown.
    pub fn describe(&self, names: &[String]) -> Vec<ParameterDescriptor> {
        names.iter().map(|n| spec(n).ok().map(|s| descriptor(s.name))).collect::<Option<_>>().unwrap_or_default()
    }

    /// `list_parameters`: names are flat (no `.`), so a prefix matches its own name only.
    pub fn list(&self, prefixes: &[String]) -> ListParametersResult {
        let names = PARAMS.iter().map(|s| s.name).filter(|n| prefixes.is_empty() || prefixes.iter().any(|p| p == n));
        ListParametersResult { names: names.map(String::from).collect(), prefixes: Vec::new() }
    }

    /// Sets `changes` all together or not at all (`set_parameters_atomically`; `set_parameters`
    /// calls it once per parameter, as rclcpp does). `Err` is the reason `ros2 param set` prints;
    /// `Ok` has the model check's note (servers that lack a new model; empty when none).
    pub async fn set(&self, changes: &[ParamMsg]) -> Result<String, String> {
        let _one_at_a_time = self.changing.lock().await;
        let current = self.current();
        let mut candidate = current.clone();
        for change in changes {
            let spec = spec(&change.name).map_err(|e| e.to_string())?;
            if spec.read_only {
                return Err(format!("parameter '{}' is read-only: it is read once at start (restart the node with \
                    -p {}:=VALUE, or set it in the params file)", spec.name, spec.name));
            }
            let value = from_msg(&change.value).map_err(|message| InvalidParam { name: spec.name.into(), message }.to_string())?;
            candidate.set(spec.name, value).map_err(|e| e.to_string())?;
        }
        let config = Config::from_params(&candidate).map_err(|e| e.to_string())?;
        let mut note = String::new();
        if candidate.model != current.model {
            note = (self.model_check)(config.model.clone()).await?;
            if !note.is_empty() {
                log::warn!("model '{}': {note}", config.model);
            }
        }
        *self.values.lock().unwrap_or_else(|e| e.into_inner()) = candidate.clone();
        let previous = self.config.get();
        self.config.set(config);
        if let Some(hook) = self.on_change.get() {
            hook(&previous, &self.config.get());
        }
        let mut changed = Vec::new();
        for change in changes {
            if let Some(value) = candidate.exposed(&change.name) {
                log::info!("parameter '{}' set to {value} (applies to the next request)", change.name);
                changed.push(param_msg(&change.name, value));
            }
        }
        (self.events)(ParameterEvent { stamp: now(), node: self.node.clone(), changed_parameters: changed, ..Default::default() });
        Ok(note)
    }
}

/// Applies the start-time overrides (`-p`, `--params-file`, launch) to `values`. Read-only
/// parameters take them too; a name this node does not have is logged and ignored (like rclcpp).
pub fn apply_overrides(values: &mut Params, overrides: Vec<(String, r2r::ParameterValue)>) -> Result<(), InvalidParam> {
    for (name, given) in overrides {
        if spec(&name).is_err() {
            log::warn!("parameter '{name}' given at start is not a parameter of this node: ignored (see --help)");
            continue;
        }
        let value = match given {
            r2r::ParameterValue::Bool(b) => Value::Bool(b),
            r2r::ParameterValue::Integer(i) => Value::Int(i),
            r2r::ParameterValue::Double(x) => Value::Float(x),
            r2r::ParameterValue::String(s) => Value::Text(s),
            other => return Err(InvalidParam { name, message: format!("{} values are not accepted", other.type_name()) }),
        };
        values.set(&name, value)?;
    }
    Config::from_params(values).map(|_| ())
}

// rcl_interfaces/msg/ParameterType (each generated constant has a type of its own)
const NOT_SET: u8 = ParameterType::PARAMETER_NOT_SET as u8;
const BOOL: u8 = ParameterType::PARAMETER_BOOL as u8;
const INTEGER: u8 = ParameterType::PARAMETER_INTEGER as u8;
const DOUBLE: u8 = ParameterType::PARAMETER_DOUBLE as u8;
const STRING: u8 = ParameterType::PARAMETER_STRING as u8;

fn type_of(kind: &Kind) -> u8 {
    match kind {
        Kind::Bool => BOOL,
        Kind::Int { .. } => INTEGER,
        Kind::Float { .. } => DOUBLE,
        Kind::Text | Kind::TextOrNumber | Kind::Choice(_) => STRING,
    }
}

/// The descriptor of a known parameter: type, description, range, read-only.
fn descriptor(name: &str) -> ParameterDescriptor {
    let Ok(spec) = spec(name) else { return ParameterDescriptor::default() };
    let mut d = ParameterDescriptor {
        name: spec.name.to_string(),
        type_: type_of(&spec.kind),
        description: spec.description().to_string(),
        read_only: spec.read_only,
        ..Default::default()
    };
    match spec.kind {
        Kind::Int { min, max } => d.integer_range = vec![IntegerRange { from_value: min, to_value: max, step: 0 }],
        Kind::Float { min, max } => d.floating_point_range = vec![FloatingPointRange { from_value: min, to_value: max, step: 0.0 }],
        Kind::Choice(_) => d.additional_constraints = spec.kind.constraint().unwrap_or_default(),
        Kind::TextOrNumber => d.additional_constraints = "a number is accepted and stored as its text".into(),
        Kind::Bool | Kind::Text => {}
    }
    d
}

fn value_msg(value: Value) -> ValueMsg {
    let mut msg = ValueMsg::default();
    match value {
        Value::Bool(b) => (msg.type_, msg.bool_value) = (BOOL, b),
        Value::Int(i) => (msg.type_, msg.integer_value) = (INTEGER, i),
        Value::Float(x) => (msg.type_, msg.double_value) = (DOUBLE, x),
        Value::Text(s) => (msg.type_, msg.string_value) = (STRING, s),
    }
    msg
}

fn from_msg(msg: &ValueMsg) -> Result<Value, String> {
    Ok(match msg.type_ {
        BOOL => Value::Bool(msg.bool_value),
        INTEGER => Value::Int(msg.integer_value),
        DOUBLE => Value::Float(msg.double_value),
        STRING => Value::Text(msg.string_value.clone()),
        NOT_SET => return Err("the node's parameters cannot be unset (deleted)".into()),
        _ => return Err("array values are not accepted".into()),
    })
}

fn param_msg(name: &str, value: Value) -> ParamMsg {
    ParamMsg { name: name.to_string(), value: value_msg(value) }
}

/// Wall-clock time as a ROS stamp.
pub fn now() -> Time {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Time { sec: i32::try_from(since.as_secs()).unwrap_or(i32::MAX), nanosec: since.subsec_nanos() }
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
