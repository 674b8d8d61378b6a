//! The node's parameters as ROS parameters: [`Params`] (the table in `config.rs`) registered
//! with r2r, each `ros2 param set` validated (and a new `model` checked on the server) before
//! it is accepted, so a bad value gets `successful: false` with a reason and never reaches a
//! request.

use crate::config::params::Value;
use crate::config::{Config, InvalidParam, Params, PARAMS};
use indexmap::IndexMap;
use r2r::{Parameter, ParameterValue, RosParams};

/// Checks that a model exists before `ros2 param set model` accepts it.
pub type ModelCheck = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// [`Params`] as registered with r2r.
pub struct LiveParams {
    pub values: Params,
    pub model_check: Option<ModelCheck>,
}

/// A plain value as a ROS parameter value.
pub fn to_ros(value: Value) -> ParameterValue {
    match value {
        Value::Bool(b) => ParameterValue::Bool(b),
        Value::Int(i) => ParameterValue::Integer(i),
        Value::Float(x) => ParameterValue::Double(x),
        Value::Text(s) => ParameterValue::String(s),
    }
}

/// A ROS parameter value as a plain value; `Err` names what cannot be a parameter of this node.
pub fn from_ros(value: &ParameterValue) -> Result<Value, String> {
    Ok(match value {
        ParameterValue::Bool(b) => Value::Bool(*b),
        ParameterValue::Integer(i) => Value::Int(*i),
        ParameterValue::Double(x) => Value::Float(*x),
        ParameterValue::String(s) => Value::Text(s.clone()),
        other => return Err(format!("{} values are not accepted", other.type_name())),
    })
}

fn to_r2r_error(e: InvalidParam) -> r2r::Error {
    r2r::Error::ParameterValueConv { name: e.name, msg: e.message }
}

impl LiveParams {
    fn validate_change(&self, name: &str, value: &ParameterValue) -> r2r::Result<Params> {
        let mut candidate = self.values.clone();
        let value = from_ros(value).map_err(|msg| r2r::Error::ParameterValueConv { name: name.into(), msg })?;
        candidate.set(name, value).map_err(to_r2r_error)?;
        Config::from_params(&candidate).map_err(to_r2r_error)?;
        if name == "model" && candidate.model.trim() != self.values.model {
            if let Some(check) = &self.model_check {
                check(candidate.model.trim()).map_err(|msg| r2r::Error::ParameterValueConv { name: "model".into(), msg })?;
            }
        }
        Ok(candidate)
    }
}

impl RosParams for LiveParams {
    fn register_parameters(
        &mut self, _prefix: &str, _param: Option<Parameter>, params: &mut IndexMap<String, Parameter>,
    ) -> r2r::Result<()> {
        for spec in PARAMS {
            if let Some(given) = params.shift_remove(spec.name) {
                let value = from_ros(&given.value).map_err(|msg| r2r::Error::ParameterValueConv { name: spec.name.into(), msg })?;
                self.values.set(spec.name, value).map_err(to_r2r_error)?;
            }
            if let Some(value) = self.values.exposed(spec.name) {
                params.insert(spec.name.to_string(), Parameter { value: to_ros(value), description: spec.description() });
            }
        }
        Config::from_params(&self.values).map(|_| ()).map_err(to_r2r_error)
    }
    fn get_parameter(&mut self, name: &str) -> r2r::Result<ParameterValue> {
        self.values.exposed(name).map(to_ros).ok_or(r2r::Error::InvalidParameterName { name: name.into() })
    }
    fn set_parameter(&mut self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.values = self.validate_change(name, value)?;
        Ok(())
    }
    fn check_parameter(&self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.validate_change(name, value).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_params_veto_bad_sets_and_keep_the_old_value() {
        let mut live = LiveParams { values: Params::with_defaults(), model_check: None };
        let err = live.set_parameter("options_json", &ParameterValue::String("[]".into()));
        assert!(err.is_err());
        assert_eq!(live.values.options_json, "{}");
        live.set_parameter("options_json", &ParameterValue::String("{\"seed\":3}".into())).unwrap();
        assert_eq!(live.values.options_json, "{\"seed\":3}");
        live.model_check = Some(Box::new(|m: &str| if m == "ok" { Ok(()) } else { Err(format!("no model {m}")) }));
        assert!(live.set_parameter("model", &ParameterValue::String("missing".into())).is_err());
        assert_eq!(live.values.model, "llama3.2");
        live.set_parameter("model", &ParameterValue::String("ok".into())).unwrap();
        assert_eq!(live.values.model, "ok");
    }
}
