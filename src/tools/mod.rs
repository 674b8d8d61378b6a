//! Tools the model can call, each served by a real ROS service, action or topic. No ROS here:
//! the ROS layer (`ros::tools`) implements [`ToolExecutor`].
//!
//! * `file`: the `tools_file` YAML → [`ToolSpec`]s (name, description, binding, type, timeout,
//!   optional `parameters`).
//! * `types`: the interface's installed type description → [`Shape`]: the JSON schema the model
//!   sees (unless the entry gives `parameters`) and the check of its arguments.
//! * `schema`: an entry's own `parameters` JSON schema ([`Parameters`]): refused at load when it
//!   is not a valid schema, enforced on every call's arguments (besides the type check).
//! * `rounds`: [`ToolRounds`], the tool round loop of one request: run each call of the model's
//!   answer (or refuse it with `{"error": ...}` so the model can recover), answer with `role: tool`
//!   messages, at most `max_tool_rounds` rounds, an audit [`ToolCallRecord`] per call,
//!   `tools_dry_run`.
//!
//! Ollama's tool shapes (`tools`, `tool_calls`, `role: tool` + `tool_name`) are in
//! `crate::ollama::types`; a model is offered tools only if `/api/show` lists the `tools`
//! capability (see `crate::senses`).

mod file;
mod rounds;
mod schema;
mod types;

pub use file::{parse_tools, Binding, ToolSpec, DEFAULT_TIMEOUT};
pub use rounds::{Cancelled, ToolCallRecord, ToolExecutor, ToolRounds};
pub use schema::Parameters;
pub use types::{shape_from_description, Field, Length, Shape, TypeLibrary};

use serde_json::{json, Value};
use std::path::Path;

/// One tool: its entry, the shape of what it sends, and its definition for `/api/chat`.
#[derive(Debug, Clone)]
pub struct Tool {
    pub spec: ToolSpec,
    /// The request (service), goal (action) or message (topic) the arguments become.
    pub input: Shape,
    /// `{"type": "function", "function": {"name", "description", "parameters"}}`.
    pub definition: Value,
}

impl Tool {
    /// `spec` with the type shape `input` (see [`TypeLibrary::input_shape`]).
    pub fn new(spec: ToolSpec, input: Shape) -> Tool {
        let parameters = spec.parameters.as_ref().map_or_else(|| input.schema(), |p| p.schema().clone());
        let definition = json!({"type": "function", "function": {
            "name": spec.name, "description": spec.description, "parameters": parameters}});
        Tool { spec, input, definition }
    }

    /// Checks the model's arguments against the entry's `parameters` schema (the rules the model
    /// was shown), if it gives one, then against the interface type.
    pub fn check_arguments(&self, arguments: &Value) -> Result<(), String> {
        if let Some(parameters) = &self.spec.parameters {
            parameters.check(arguments).map_err(|e| format!("the arguments break the parameters schema of tool '{}': {e}", self.spec.name))?;
        }
        let what = match self.spec.binding {
            Binding::Service => "request",
            Binding::Action => "goal",
            Binding::Topic => "message",
        };
        self.input.check(arguments).map_err(|e| format!("the arguments do not fit the {} {what}: {e}", self.spec.type_name))
    }
}

/// The tools of the `tools_file`, in file order.
#[derive(Debug, Clone, Default)]
pub struct ToolSet {
    tools: Vec<Tool>,
}

impl ToolSet {
    pub fn new(tools: Vec<Tool>) -> ToolSet {
        ToolSet { tools }
    }

    /// Reads and checks `path`, deriving every tool's schema from `library`. `Err` names the
    /// file, the entry and what is wrong (the node then refuses to start).
    pub fn load(path: &Path, library: &TypeLibrary) -> Result<ToolSet, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("tools_file '{}': {e}", path.display()))?;
        let specs = parse_tools(&text).map_err(|e| format!("tools_file '{}': {e}", path.display()))?;
        let tools = specs
            .into_iter()
            .map(|spec| match library.input_shape(&spec.type_name) {
                Ok(shape) => Ok(Tool::new(spec, shape)),
                Err(e) => Err(format!("tools_file '{}': tool '{}': {e}", path.display(), spec.name)),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ToolSet { tools })
    }

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.spec.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The `tools` of a chat request.
    pub fn definitions(&self) -> Vec<Value> {
        self.tools.iter().map(|t| t.definition.clone()).collect()
    }

    /// The names, comma-separated (for "unknown tool" answers).
    pub fn names(&self) -> String {
        self.tools.iter().map(|t| t.spec.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_loads_with_derived_and_given_schemas() {
        let dir = std::env::temp_dir().join(format!("ob-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tools.yaml");
        std::fs::write(&path, "tools:\n  - {name: set_led, service: /led/set, type: std_srvs/srv/SetBool}\n  - name: show\n    topic: /face/text\n    type: std_msgs/msg/String\n    parameters: {type: object, properties: {data: {type: string}}}\n").unwrap();
        let set = ToolSet::load(&path, &TypeLibrary::from_env()).unwrap();
        assert_eq!(set.names(), "set_led, show");
        let defs = set.definitions();
        assert_eq!(defs[0]["function"]["parameters"]["properties"]["data"], json!({"type": "boolean"}));
        assert_eq!(defs[0]["function"]["description"], "Calls the ROS service /led/set (std_srvs/srv/SetBool).");
        assert_eq!(defs[1]["function"]["parameters"], json!({"type": "object", "properties": {"data": {"type": "string"}}}));
        // the given schema is what the model sees and is enforced; the arguments are still checked against the type
        let show = set.get("show").unwrap();
        assert_eq!(show.check_arguments(&json!({"data": 1})).unwrap_err(),
            "the arguments break the parameters schema of tool 'show': data: 1 is not of type \"string\"");
        assert!(show.check_arguments(&json!({"data": "hi", "size": 3})).unwrap_err()
            .starts_with("the arguments do not fit the std_msgs/msg/String message: std_msgs/msg/String has no field 'size'"));
        assert_eq!(show.check_arguments(&json!({"data": "hi"})), Ok(()));
        std::fs::write(&path, "tools:\n  - {name: show, topic: /t, type: std_msgs/msg/String, parameters: {type: object, properties: {data: {minLength: -1}}}}\n").unwrap();
        let err = ToolSet::load(&path, &TypeLibrary::from_env()).unwrap_err();
        assert!(err.starts_with(&format!("tools_file '{}': tools[0]: 'show': parameters: not a valid JSON schema: /properties/data/minLength: -1 ",
            path.display())), "{err}");
        std::fs::write(&path, "tools:\n  - {name: x, service: /x, type: nope_msgs/srv/X}\n").unwrap();
        let err = ToolSet::load(&path, &TypeLibrary::from_env()).unwrap_err();
        assert!(err.contains("tool 'x': no type description of nope_msgs/srv/X"), "{err}");
        assert!(ToolSet::load(&dir.join("missing.yaml"), &TypeLibrary::from_env()).unwrap_err().contains("missing.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
