//! The `tools_file`: YAML entries, each a tool bound to one ROS service, action or topic.
//!
//! ```yaml
//! tools:
//!   - name: set_led                     # [A-Za-z0-9_-]{1,64}, unique
//!     description: Switch the robot's LED on or off.
//!     service: /led/set                 # or action: /navigate, or topic: /face/text
//!     type: std_srvs/srv/SetBool        # srv for a service, action for an action, msg for a topic
//!     timeout_s: 5                      # optional, default 10
//!     parameters: {type: object, ...}   # optional JSON schema shown instead of the derived one
//! ```                                   # (and enforced on every call: see `super::schema`)

use super::schema::Parameters;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A call's time limit when the entry gives no `timeout_s`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a tool is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Service,
    Action,
    Topic,
}

impl Binding {
    /// The YAML key and the word in messages: `service`, `action`, `topic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Service => "service",
            Binding::Action => "action",
            Binding::Topic => "topic",
        }
    }

    /// The middle part of the interface name it needs: `srv`, `action`, `msg`.
    pub fn interface_kind(self) -> &'static str {
        match self {
            Binding::Service => "srv",
            Binding::Action => "action",
            Binding::Topic => "msg",
        }
    }
}

/// One validated entry of the tools file.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub binding: Binding,
    /// The service, action or topic name (relative names resolve in the node's namespace).
    pub target: String,
    /// The interface type, e.g. `std_srvs/srv/SetBool`.
    pub type_name: String,
    pub timeout: Duration,
    /// A JSON schema given in the file, shown to the model instead of the derived one and
    /// enforced on its arguments.
    pub parameters: Option<Parameters>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    tools: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    description: String,
    service: Option<String>,
    action: Option<String>,
    topic: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    timeout_s: Option<f64>,
    parameters: Option<Value>,
}

/// Parses and validates the text of a tools file. `Err` names the entry and the problem.
pub fn parse_tools(yaml: &str) -> Result<Vec<ToolSpec>, String> {
    let doc: FileDoc = serde_yaml_ng::from_str(yaml).map_err(|e| format!("not a tools file ({e})"))?;
    let mut specs: Vec<ToolSpec> = Vec::with_capacity(doc.tools.len());
    for (index, entry) in doc.tools.into_iter().enumerate() {
        let spec = validate(entry).map_err(|e| format!("tools[{index}]: {e}"))?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(format!("tools[{index}]: the name '{}' is used twice", spec.name));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn validate(e: Entry) -> Result<ToolSpec, String> {
    let name = e.name.trim().to_string();
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
        return Err(format!("name '{}' must be 1 to 64 letters, digits, '_' or '-'", e.name));
    }
    let bound: Vec<(Binding, String)> = [(Binding::Service, e.service), (Binding::Action, e.action), (Binding::Topic, e.topic)]
        .into_iter()
        .filter_map(|(b, target)| target.map(|t| (b, t.trim().to_string())))
        .collect();
    let (binding, target) = match &bound[..] {
        [(b, t)] if !t.is_empty() => (*b, t.clone()),
        [(b, _)] => return Err(format!("'{name}': the {} name is empty", b.as_str())),
        _ => return Err(format!("'{name}' needs exactly one of service, action or topic")),
    };
    let type_name = e.type_name.trim().to_string();
    let kind = type_name.split('/').nth(1).unwrap_or_default();
    if type_name.split('/').count() != 3 || kind != binding.interface_kind() {
        return Err(format!("'{name}': type '{type_name}' must look like pkg/{}/Name for {} tools", binding.interface_kind(), binding.as_str()));
    }
    let timeout = match e.timeout_s {
        None => DEFAULT_TIMEOUT,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
        Some(s) => return Err(format!("'{name}': timeout_s {s} must be a number of seconds above 0 (at most a day)")),
    };
    let parameters = match e.parameters {
        None => None,
        Some(schema) => Some(Parameters::compile(schema).map_err(|e| format!("'{name}': parameters: {e}"))?),
    };
    let description = match e.description.trim() {
        "" => format!("Calls the ROS {} {target} ({type_name}).", binding.as_str()),
        text => text.to_string(),
    };
    Ok(ToolSpec { name, description, binding, target, type_name, timeout, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example of issue 14 and the README.
    const EXAMPLE: &str = "
tools:
  - name: set_led
    description: Switch the robot's LED on or off.
    service: /led/set
    type: std_srvs/srv/SetBool
    timeout_s: 5
  - name: go_to
    description: Drive to a named place.
    action: /navigate
    type: your_msgs/action/GoTo
  - name: say_on_screen
    topic: /face/text
    type: std_msgs/msg/String
    parameters: {type: object, properties: {data: {type: string, description: The text}}, required: [data]}
";

    #[test]
    fn the_example_parses() {
        let specs = parse_tools(EXAMPLE).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!((specs[0].binding, specs[0].target.as_str(), specs[0].timeout), (Binding::Service, "/led/set", Duration::from_secs(5)));
        assert_eq!((specs[1].binding, specs[1].timeout), (Binding::Action, DEFAULT_TIMEOUT));
        assert_eq!(specs[2].description, "Calls the ROS topic /face/text (std_msgs/msg/String).");
        assert_eq!(specs[2].parameters.as_ref().unwrap().schema()["properties"]["data"]["description"], json!("The text"));
    }

    #[test]
    fn each_mistake_is_named() {
        let entry = |body: &str| format!("tools:\n  - name: t\n{body}");
        let cases = [
            ("tools: 3".to_string(), "not a tools file"),
            ("tools: []\nextra: 1".to_string(), "unknown field `extra`"),
            (entry("    service: /s\n    type: std_srvs/srv/SetBool\n    timout_s: 1\n"), "unknown field `timout_s`"),
            (entry("    type: std_srvs/srv/SetBool\n"), "tools[0]: 't' needs exactly one of service, action or topic"),
            (entry("    service: /s\n    topic: /t\n    type: std_srvs/srv/SetBool\n"), "needs exactly one of"),
            (entry("    service: ' '\n    type: std_srvs/srv/SetBool\n"), "the service name is empty"),
            (entry("    service: /s\n    type: std_msgs/msg/String\n"), "type 'std_msgs/msg/String' must look like pkg/srv/Name for service tools"),
            (entry("    action: /a\n    type: SetBool\n"), "must look like pkg/action/Name for action tools"),
            (entry("    topic: /t\n    type: std_msgs/msg/String\n    timeout_s: 0\n"), "timeout_s 0 must be a number of seconds above 0"),
            (entry("    topic: /t\n    type: std_msgs/msg/String\n    parameters: {type: string}\n"),
             "tools[0]: 't': parameters: must be a JSON schema with type: object"),
            (entry("    topic: /t\n    type: std_msgs/msg/String\n    parameters: {type: object, properties: {data: {type: strin}}}\n"),
             "tools[0]: 't': parameters: not a valid JSON schema: /properties/data/type: "),
            (entry("    topic: /t\n    type: std_msgs/msg/String\n    parameters: {type: object, properties: {data: {maxLength: a}}}\n"),
             "'t': parameters: not a valid JSON schema: /properties/data/maxLength: \"a\" is not of type \"integer\""),
            ("tools:\n  - name: 'a b'\n    topic: /t\n    type: std_msgs/msg/String\n".to_string(), "name 'a b' must be 1 to 64 letters"),
            ("tools:\n  - {name: a, topic: /t, type: std_msgs/msg/String}\n  - {name: a, topic: /u, type: std_msgs/msg/String}\n".to_string(),
             "tools[1]: the name 'a' is used twice"),
        ];
        for (text, expected) in cases {
            let err = parse_tools(&text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
