use super::*;

/// A description in the installed files' shape: a goal with every kind of field.
const GOAL: &str = r#"{"type_description_msg": {
  "type_description": {"type_name": "demo_msgs/action/Move_Goal", "fields": [
    {"name": "target", "type": {"type_id": 1, "capacity": 0, "string_capacity": 0, "nested_type_name": "geometry_msgs/msg/Point"}, "default_value": ""},
    {"name": "speed", "type": {"type_id": 11, "capacity": 0, "string_capacity": 0, "nested_type_name": ""}, "default_value": "0.5"},
    {"name": "mode", "type": {"type_id": 3, "capacity": 0, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""},
    {"name": "label", "type": {"type_id": 21, "capacity": 0, "string_capacity": 8, "nested_type_name": ""}, "default_value": ""},
    {"name": "covariance", "type": {"type_id": 59, "capacity": 3, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""},
    {"name": "waypoints", "type": {"type_id": 145, "capacity": 0, "string_capacity": 0, "nested_type_name": "geometry_msgs/msg/Point"}, "default_value": ""},
    {"name": "tags", "type": {"type_id": 113, "capacity": 2, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""},
    {"name": "urgent", "type": {"type_id": 15, "capacity": 0, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""}]},
  "referenced_type_descriptions": [
    {"type_name": "geometry_msgs/msg/Point", "fields": [
      {"name": "x", "type": {"type_id": 11, "capacity": 0, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""},
      {"name": "y", "type": {"type_id": 11, "capacity": 0, "string_capacity": 0, "nested_type_name": ""}, "default_value": ""}]}]}}"#;

fn goal() -> Shape {
    shape_from_description(GOAL, "demo_msgs/action/Move_Goal").unwrap()
}

#[test]
fn schema_has_objects_arrays_numbers_booleans_strings() {
    let schema = goal().schema();
    let props = &schema["properties"];
    assert_eq!(schema["type"], "object");
    assert_eq!(props["target"]["type"], "object");
    assert_eq!(props["target"]["description"], "geometry_msgs/msg/Point");
    assert_eq!(props["target"]["properties"]["x"], json!({"type": "number"}));
    assert_eq!(props["mode"], json!({"type": "integer", "minimum": 0, "maximum": 255}));
    assert_eq!(props["label"], json!({"type": "string", "maxLength": 8}));
    assert_eq!(props["covariance"], json!({"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}));
    assert_eq!(props["waypoints"]["items"]["properties"]["y"]["type"], "number");
    assert_eq!(props["tags"], json!({"type": "array", "items": {"type": "string"}, "maxItems": 2}));
    assert_eq!(props["urgent"], json!({"type": "boolean"}));
    // a field with a default in the interface is not required
    assert_eq!(schema["required"], json!(["target", "mode", "label", "covariance", "waypoints", "tags", "urgent"]));
    // the model is told that fields the type lacks are refused (as `check` refuses them)
    assert_eq!((&schema["additionalProperties"], &props["target"]["additionalProperties"]), (&json!(false), &json!(false)));
}

#[test]
fn the_derived_schema_is_a_json_schema_that_agrees_with_the_check() {
    let shape = goal();
    let schema = crate::tools::Parameters::compile(shape.schema()).unwrap();
    let fits = json!({"target": {"x": 1, "y": 2.5}, "mode": 3, "label": "a", "covariance": [0, 0, 1],
                      "waypoints": [], "tags": [], "urgent": false});
    assert_eq!((schema.check(&fits), shape.check(&fits)), (Ok(()), Ok(())));
    let mut extra = fits.clone();
    extra["target"]["w"] = json!(1);
    assert!(schema.check(&extra).unwrap_err().starts_with("target: Additional properties are not allowed ('w' was unexpected)"));
    assert!(shape.check(&extra).is_err());
}

#[test]
fn arguments_that_fit_pass_and_missing_fields_take_defaults() {
    let shape = goal();
    shape.check(&json!({"target": {"x": 1, "y": 2.5}, "mode": 255, "covariance": [0, 0.1, 1e3],
                        "waypoints": [{"x": 1}], "tags": ["a"], "urgent": true, "label": "kitchen"})).unwrap();
    shape.check(&json!({})).unwrap();
}

#[test]
fn each_misfit_is_named_with_its_path() {
    let shape = goal();
    let cases = [
        (json!([1]), "expected an object (demo_msgs/action/Move_Goal), got [1]"),
        (json!({"sped": 1}), "demo_msgs/action/Move_Goal has no field 'sped' (its fields: target, speed, mode, label, covariance, waypoints, tags, urgent)"),
        (json!({"mode": 256}), "mode: 256 is out of range for uint8 (0..255)"),
        (json!({"mode": -1}), "mode: -1 is out of range for uint8 (0..255)"),
        (json!({"mode": 1.5}), "mode: expected an integer (uint8), got 1.5"),
        (json!({"speed": "fast"}), "speed: expected a number, got \"fast\""),
        (json!({"urgent": "yes"}), "urgent: expected true or false, got \"yes\""),
        (json!({"label": "living room"}), "label: the text is 11 bytes long; at most 8 fit"),
        (json!({"label": 3}), "label: expected a string, got 3"),
        (json!({"covariance": [1, 2]}), "covariance: expected exactly 3 elements, got 2"),
        (json!({"tags": ["a", "b", "c"]}), "tags: expected at most 2 elements, got 3"),
        (json!({"waypoints": {"x": 1}}), "waypoints: expected an array, got {\"x\":1}"),
        (json!({"waypoints": [{"x": 1}, {"z": 1}]}), "waypoints[1]: geometry_msgs/msg/Point has no field 'z' (its fields: x, y)"),
        (json!({"target": {"x": true}}), "target.x: expected a number, got true"),
    ];
    for (value, expected) in cases {
        assert_eq!(shape.check(&value).unwrap_err(), expected, "{value}");
    }
}

#[test]
fn broken_descriptions_are_errors() {
    assert!(shape_from_description("{}", "x").unwrap_err().contains("not a ROS type description"));
    assert_eq!(shape_from_description(GOAL, "demo_msgs/action/Other_Goal").unwrap_err(), "type demo_msgs/action/Other_Goal is not described");
    let bad_id = GOAL.replace("\"type_id\": 15", "\"type_id\": 200");
    assert_eq!(shape_from_description(&bad_id, "demo_msgs/action/Move_Goal").unwrap_err(), "unknown field type id 200");
}

#[test]
fn installed_interfaces_resolve_through_ament_prefix_path() {
    // The build and test environment (scripts/env.sh) always has the ROS prefixes.
    let library = TypeLibrary::from_env();
    let set_bool = library.input_shape("std_srvs/srv/SetBool").unwrap();
    assert_eq!(set_bool.schema()["properties"], json!({"data": {"type": "boolean"}}));
    let twist = library.input_shape("geometry_msgs/msg/Twist").unwrap();
    assert_eq!(twist.schema()["properties"]["angular"]["properties"]["z"], json!({"type": "number"}));
    let goal = library.input_shape("ollama_bridge_msgs/action/PullModel").unwrap();
    assert_eq!(goal.schema()["properties"], json!({"model": {"type": "string"}}));
    let trigger = library.input_shape("std_srvs/srv/Trigger").unwrap();
    assert_eq!(trigger.schema()["properties"], json!({}), "an empty request has no fields");
    let missing = library.input_shape("no_such_msgs/srv/Nothing").unwrap_err();
    assert!(missing.contains("share/no_such_msgs/srv/Nothing.json is in none of the AMENT_PREFIX_PATH prefixes"), "{missing}");
    assert!(library.input_shape("std_srvs/SetBool").unwrap_err().contains("not an interface name"));
    assert!(library.input_shape("std_srvs/srvs/SetBool").unwrap_err().contains("msg, srv or action"));
}
