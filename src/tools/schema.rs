//! The `parameters` JSON schema a tools-file entry may give: what the model is shown instead of
//! the schema derived from the ROS type, and a rule the node enforces.
//!
//! A team writes one to narrow what the type allows (`linear.x` within ±0.5, a colour out of an
//! `enum`, `required` fields, a `pattern`): the schema is checked against its draft's meta-schema
//! when the tools file is read (a schema that is not one stops the node), and every call's
//! arguments are validated against it before anything is sent, besides the ROS type check
//! ([`super::Shape::check`]). Validation is the `jsonschema` crate's (drafts 4, 6, 7, 2019-09,
//! 2020-12 by `$schema`, 2020-12 when absent; built without its HTTP/file resolvers, so a remote
//! `$ref` is refused at load, never fetched); `format` is enforced, not just an annotation.

use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// At most this many violations are named in one error (the rest are counted).
const MAX_NAMED: usize = 5;

/// A compiled `parameters` schema.
#[derive(Clone)]
pub struct Parameters {
    schema: Value,
    validator: Validator,
}

impl Parameters {
    /// Compiles `schema`. `Err` says what is wrong and where in the schema (a JSON pointer), e.g.
    /// `/properties/speed/minimum: "a" is not of type "number"`.
    pub fn compile(schema: Value) -> Result<Parameters, String> {
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err("must be a JSON schema with type: object (the arguments are an object)".to_string());
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("not a valid JSON schema: {}", schema_error(&e)))?;
        Ok(Parameters { schema, validator })
    }

    /// The schema as written in the file (what the model is shown).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Validates the model's `arguments`. `Err` names each violated rule with the argument's path
    /// (`linear.x: 0.9 is greater than the maximum of 0.5`), at most [`MAX_NAMED`] of them.
    pub fn check(&self, arguments: &Value) -> Result<(), String> {
        let errors: Vec<String> = self.validator.iter_errors(arguments).map(|e| violation(&e)).collect();
        match errors.len() {
            0 => Ok(()),
            n if n <= MAX_NAMED => Err(errors.join("; ")),
            n => Err(format!("{}; and {} more", errors[..MAX_NAMED].join("; "), n - MAX_NAMED)),
        }
    }
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Parameters) -> bool {
        self.schema == other.schema
    }
}

impl std::fmt::Debug for Parameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Parameters").field(&self.schema).finish()
    }
}

/// A schema's own fault: where in the schema (JSON pointer) and what.
fn schema_error(e: &ValidationError<'_>) -> String {
    // The meta-schema allows `type` as a name or a list of names (an `anyOf`), so a misspelt name
    // is reported as matching neither: say which names there are.
    let hint = if e.instance_path().as_str().ends_with("/type") {
        " (a type is one of: string, number, integer, boolean, object, array, null, or a list of them)"
    } else {
        ""
    };
    match e.instance_path().as_str() {
        "" => format!("{e}{hint}"),
        at => format!("{at}: {e}{hint}"),
    }
}

/// One argument's fault, its path written as [`super::Shape::check`] writes them (`a.b[0]`).
fn violation(e: &ValidationError<'_>) -> String {
    match argument_path(e.instance_path()) {
        path if path.is_empty() => e.to_string(),
        path => format!("{path}: {e}"),
    }
}

fn argument_path(location: &Location) -> String {
    let mut path = String::new();
    for segment in location.segments() {
        match segment {
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
            LocationSegment::Property(name) if path.is_empty() => path.push_str(&name),
            LocationSegment::Property(name) => {
                path.push('.');
                path.push_str(&name);
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drive() -> Parameters {
        Parameters::compile(json!({"type": "object", "required": ["linear"], "properties": {
            "linear": {"type": "object", "properties": {"x": {"type": "number", "minimum": -0.5, "maximum": 0.5}}},
            "colour": {"enum": ["red", "green"]},
            "label": {"type": "string", "pattern": "^[a-z]+[0-9]$"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
            "contact": {"type": "string", "format": "email"}}}))
        .unwrap()
    }

    #[test]
    fn schemas_that_are_not_json_schemas_are_refused_with_the_place() {
        let cases = [
            (json!({"type": "object", "properties": {"x": {"type": "strin"}}}), "/properties/x/type: "),
            (json!({"type": "object", "properties": {"x": {"type": "strin"}}}), "a type is one of: string, number"),
            (json!({"type": "object", "properties": {"x": {"minimum": "a"}}}), "/properties/x/minimum: \"a\" is not of type \"number\""),
            (json!({"type": "object", "required": "x"}), "/required: \"x\" is not of type \"array\""),
            (json!({"type": "object", "properties": {"x": {"pattern": "(unclosed"}}}), "/properties/x/pattern: "),
            (json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}), "not a valid JSON schema"),
            (json!({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}), "not a valid JSON schema"),
            (json!({"type": "object", "$schema": "https://example.com/my-draft"}), "not a valid JSON schema"),
            (json!({"type": "string"}), "must be a JSON schema with type: object"),
            (json!([1]), "must be a JSON schema with type: object"),
        ];
        for (schema, expected) in cases {
            let err = Parameters::compile(schema.clone()).unwrap_err();
            assert!(err.contains(expected), "{schema}: {err}");
        }
    }

    #[test]
    fn each_rule_is_enforced_with_the_argument_path() {
        let p = drive();
        let cases = [
            (json!({"linear": {"x": 0.9}}), "linear.x: 0.9 is greater than the maximum of 0.5"),
            (json!({"linear": {"x": -2}}), "linear.x: -2 is less than the minimum of -0.5"),
            (json!({"linear": {"x": "fast"}}), "linear.x: \"fast\" is not of type \"number\""),
            (json!({}), "\"linear\" is a required property"),
            (json!({"linear": {}, "colour": "blue"}), "colour: \"blue\" is not one of \"red\" or \"green\""),
            (json!({"linear": {}, "label": "Dock"}), "label: \"Dock\" does not match \"^[a-z]+[0-9]$\""),
            (json!({"linear": {}, "tags": ["ok", "long"]}), "tags[1]: \"long\" is longer than 3 characters"),
            (json!({"linear": {}, "contact": "nobody"}), "contact: \"nobody\" is not a \"email\""),
        ];
        for (arguments, expected) in cases {
            assert_eq!(p.check(&arguments).unwrap_err(), expected, "{arguments}");
        }
    }

    #[test]
    fn all_violations_are_named_up_to_a_limit() {
        let p = drive();
        let err = p.check(&json!({"linear": {"x": 1}, "colour": "blue"})).unwrap_err();
        assert!(err.contains("linear.x: 1 is greater") && err.contains("colour: \"blue\""), "{err}");
        let many = json!({"linear": {}, "tags": ["long1", "long2", "long3", "long4", "long5", "long6", "long7"]});
        assert!(p.check(&many).unwrap_err().ends_with("; and 2 more"));
    }

    #[test]
    fn arguments_that_keep_the_rules_pass() {
        let p = drive();
        for ok in [json!({"linear": {"x": 0.5}}), json!({"linear": {"x": -0.5}, "colour": "red", "label": "dock1",
                                                          "tags": ["a"], "contact": "ops@example.com"})] {
            assert_eq!(p.check(&ok), Ok(()), "{ok}");
        }
        assert_eq!(p.schema()["properties"]["colour"], json!({"enum": ["red", "green"]}));
    }

    #[test]
    fn an_older_draft_is_honoured() {
        // draft 4: exclusiveMaximum is a boolean beside maximum
        let p = Parameters::compile(json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
            "properties": {"x": {"type": "number", "maximum": 1, "exclusiveMaximum": true}}})).unwrap();
        assert!(p.check(&json!({"x": 1})).unwrap_err().starts_with("x: 1 is greater than or equal to the maximum of 1"));
        assert_eq!(p.check(&json!({"x": 0.5})), Ok(()));
    }
}
