//! Unit tests of [`ParamStore`](super::ParamStore): no ROS graph, the events captured in memory.

use super::*;
use futures::executor::block_on;
use futures::FutureExt;

fn text(s: &str) -> ValueMsg {
    value_msg(Value::Text(s.into()))
}

fn set(name: &str, value: ValueMsg) -> ParamMsg {
    ParamMsg { name: name.into(), value }
}

/// A store whose model check knows `llama3.2` and `qwen3`, and the events it published.
fn store() -> (ParamStore, Arc<Mutex<Vec<ParameterEvent>>>) {
    let params = Params::with_defaults();
    let config = ConfigHandle::new(Config::from_params(&params).unwrap());
    let check: ModelCheck = Arc::new(|m: String| {
        async move { if m == "qwen3" { Ok(String::new()) } else { Err(format!("model '{m}' not found")) } }.boxed()
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let store = ParamStore::new(params, config, "/ns/ollama_bridge".into(), check, Box::new(move |e| sink.lock().unwrap().push(e)));
    (store, events)
}

#[test]
fn read_only_parameters_are_refused_with_a_reason() {
    let (store, events) = store();
    let err = block_on(store.set(&[set("max_concurrent_requests", value_msg(Value::Int(8)))])).unwrap_err();
    assert!(err.contains("read-only") && err.contains("restart"), "{err}");
    let err = block_on(store.set(&[set("history_dir", text("/tmp/h"))])).unwrap_err();
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(store.current().max_concurrent_requests, 4);
    assert!(events.lock().unwrap().is_empty());
}

#[test]
fn integers_for_seconds_and_numbers_for_keep_alive() {
    let (store, events) = store();
    block_on(store.set(&[set("request_timeout_s", value_msg(Value::Int(120)))])).unwrap();
    block_on(store.set(&[set("keep_alive", value_msg(Value::Int(-1)))])).unwrap();
    assert_eq!(store.get(&["request_timeout_s".into(), "keep_alive".into()]),
        vec![value_msg(Value::Float(120.0)), text("-1")]);
    assert_eq!(store.config.get().request_timeout, std::time::Duration::from_secs(120));
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].node, "/ns/ollama_bridge");
    assert_eq!(events[0].changed_parameters, vec![set("request_timeout_s", value_msg(Value::Float(120.0)))]);
}

#[test]
fn a_refused_change_keeps_everything() {
    let (store, _) = store();
    let err = block_on(store.set(&[set("max_retries", value_msg(Value::Int(-1)))])).unwrap_err();
    assert!(err.contains("out of range: allowed 0 to 100"), "{err}");
    let err = block_on(store.set(&[set("model", text("missing"))])).unwrap_err();
    assert!(err.contains("not found"), "{err}");
    // atomically: a good value with a bad one is not applied either
    let err = block_on(store.set(&[set("think", value_msg(Value::Bool(true))), set("format", text("yaml"))])).unwrap_err();
    assert!(err.contains("format"), "{err}");
    let now = store.current();
    assert_eq!((now.max_retries, now.model.as_str(), now.think), (2, "llama3.2", false));
    block_on(store.set(&[set("model", text("qwen3"))])).unwrap();
    assert_eq!(store.config.get().model, "qwen3");
}

#[test]
fn the_url_password_is_shown_nowhere() {
    let (store, events) = store();
    let url = "http://robot:s3cret@127.0.0.1:9/x";
    block_on(store.set(&[set("ollama_url", text(url))])).unwrap();
    block_on(store.set(&[set("ollama_url", text("http://robot:***@127.0.0.1:9/x"))])).unwrap();
    assert_eq!(store.config.get().ollama_url, url, "the redacted value written back keeps the password");
    assert_eq!(store.get(&["ollama_url".into()]), vec![text("http://robot:***@127.0.0.1:9/x")]);
    store.announce();
    let shown = format!("{:?}", events.lock().unwrap());
    assert!(!shown.contains("s3cret") && shown.contains("robot:***@"), "{shown}");
}

#[test]
fn unknown_names_get_nothing_as_in_rclcpp() {
    let (store, _) = store();
    assert!(store.get(&["model".into(), "nope".into()]).is_empty());
    assert!(store.types(&["nope".into()]).is_empty());
    assert!(store.describe(&["nope".into()]).is_empty());
    let err = block_on(store.set(&[set("nope", text("x"))])).unwrap_err();
    assert!(err.contains("no such parameter"), "{err}");
    assert_eq!(store.list(&[]).names.len(), PARAMS.len());
    assert_eq!(store.list(&["model".into()]).names, vec!["model".to_string()]);
}

#[test]
fn descriptors_carry_ranges_read_only_and_descriptions() {
    let (store, _) = store();
    let d = store.describe(&["max_retries".into(), "request_timeout_s".into(), "history_dir".into()]);
    assert_eq!(d[0].integer_range, vec![IntegerRange { from_value: 0, to_value: 100, step: 0 }]);
    assert_eq!(d[1].floating_point_range[0].from_value, 0.001);
    assert_eq!(d[1].type_, DOUBLE);
    assert!(d[2].read_only && !d[0].read_only);
    assert!(d.iter().all(|d| !d.description.is_empty()));
}

#[test]
fn overrides_apply_to_read_only_too_and_are_checked() {
    let mut values = Params::with_defaults();
    let given = vec![
        ("max_concurrent_requests".to_string(), r2r::ParameterValue::Integer(8)),
        ("connect_timeout_s".to_string(), r2r::ParameterValue::Integer(3)),
        ("typo_s".to_string(), r2r::ParameterValue::Integer(3)),
    ];
    apply_overrides(&mut values, given).unwrap();
    assert_eq!((values.max_concurrent_requests, values.connect_timeout_s), (8, 3.0));
    let err = apply_overrides(&mut values, vec![("max_retries".into(), r2r::ParameterValue::String("x".into()))]).unwrap_err();
    assert_eq!(err.name, "max_retries");
}
