//! The round loop against a stand-in for the ROS layer (the real one is tested end to end in
//! tests/test_tools.py).

use super::*;
use crate::ollama::ToolCallFunction;
use crate::tools::{Binding, Field, Shape, Tool, ToolSpec};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Answers every call after `delay` with `{"success": data}`, or fails it when `data` is false;
/// records the audit records, counts calls, and notes when a call was abandoned.
#[derive(Default)]
struct Stand {
    calls: AtomicUsize,
    abandoned: Arc<AtomicBool>,
    records: Mutex<Vec<ToolCallRecord>>,
    delay: Duration,
}

struct OnDrop(Arc<AtomicBool>, bool);
impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl ToolExecutor for Stand {
    fn execute(&self, _name: &str, arguments: Value) -> BoxFuture<'static, Result<Value, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (delay, abandoned) = (self.delay, self.abandoned.clone());
        Box::pin(async move {
            let mut guard = OnDrop(abandoned, false);
            tokio::time::sleep(delay).await;
            guard.1 = true;
            match arguments["data"].as_bool() {
                Some(false) => Err("service /led/set answered success=false".into()),
                _ => Ok(json!({"success": true, "message": "on"})),
            }
        })
    }
    fn audit(&self, record: &ToolCallRecord) {
        self.records.lock().unwrap().push(record.clone());
    }
}

fn tools() -> Arc<ToolSet> {
    tools_with(None)
}

/// `set_led`, with `parameters` if given.
fn tools_with(parameters: Option<Value>) -> Arc<ToolSet> {
    let parameters = parameters.map(|p| crate::tools::Parameters::compile(p).unwrap());
    let spec = ToolSpec { name: "set_led".into(), description: "LED".into(), binding: Binding::Service, target: "/led/set".into(),
                          type_name: "std_srvs/srv/SetBool".into(), timeout: Duration::from_secs(5), parameters };
    let input = Shape::Message { type_name: "std_srvs/srv/SetBool_Request".into(),
                                 fields: vec![Field { name: "data".into(), shape: Shape::Bool, has_default: false }] };
    Arc::new(ToolSet::new(vec![Tool::new(spec, input)]))
}

fn call(name: &str, arguments: Value, id: Option<&str>) -> ToolCall {
    ToolCall { id: id.map(String::from), function: ToolCallFunction { index: Some(0), name: name.into(), arguments } }
}

fn setup(stand: Stand, max_rounds: u32, dry_run: bool) -> (Arc<Stand>, ToolRounds, ChatRequest) {
    let stand = Arc::new(stand);
    let rounds = ToolRounds::new(tools(), stand.clone(), max_rounds, dry_run, "kitchen", 7);
    let mut chat = ChatRequest::new("m", vec![Message::user("light on")]);
    chat.tools = Some(tools().definitions());
    (stand, rounds, chat)
}

fn results(chat: &ChatRequest) -> Vec<Value> {
    chat.messages.iter().filter(|m| m.role == Role::Tool).map(|m| serde_json::from_str(&m.content).unwrap()).collect()
}

#[tokio::test]
async fn a_call_runs_and_the_chat_continues_with_its_result() {
    let (stand, mut rounds, mut chat) = setup(Stand::default(), 4, false);
    let cancel = CancellationToken::new();
    assert!(!rounds.after_answer(&mut chat, "", vec![], &cancel).await.unwrap(), "no calls: final");
    let more = rounds.after_answer(&mut chat, "One moment.", vec![call("set_led", json!({"data": true}), Some("call_1"))], &cancel).await;
    assert_eq!(more, Ok(true));
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    assert_eq!((chat.messages[1].content.as_str(), chat.messages[1].tool_calls.len()), ("One moment.", 1));
    assert_eq!((chat.messages[2].tool_name.as_str(), chat.messages[2].tool_call_id.as_str()), ("set_led", "call_1"));
    assert_eq!(results(&chat), [json!({"success": true, "message": "on"})]);
    let records = stand.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!((r.session_id.as_str(), r.request_id, r.round, r.name.as_str(), r.error.as_str(), r.dry_run),
               ("kitchen", 7, 0, "set_led", "", false));
    assert_eq!((r.arguments_json.as_str(), r.result_json.as_str()), ("{\"data\":true}", "{\"message\":\"on\",\"success\":true}"));
    assert!(chat.tools.is_some() && rounds.rounds() == 1);
}

#[tokio::test]
async fn every_failure_becomes_an_error_result_and_the_round_goes_on() {
    let (stand, mut rounds, mut chat) = setup(Stand::default(), 4, false);
    let calls = vec![
        call("open_door", json!({}), None),
        call("set_led", json!({"data": "yes"}), None),
        call("set_led", json!({"dta": true}), None),
        call("set_led", json!({"data": false}), None),
    ];
    assert_eq!(rounds.after_answer(&mut chat, "", calls, &CancellationToken::new()).await, Ok(true));
    let errors: Vec<String> = results(&chat).iter().map(|r| r["error"].as_str().unwrap().to_string()).collect();
    assert_eq!(errors, [
        "unknown tool 'open_door'; the tools are: set_led",
        "the arguments do not fit the std_srvs/srv/SetBool request: data: expected true or false, got \"yes\"",
        "the arguments do not fit the std_srvs/srv/SetBool request: std_srvs/srv/SetBool_Request has no field 'dta' (its fields: data)",
        "service /led/set answered success=false",
    ]);
    assert_eq!(stand.calls.load(Ordering::SeqCst), 1, "only the call that fits reached the executor");
    let audited: Vec<String> = stand.records.lock().unwrap().iter().map(|r| r.error.clone()).collect();
    assert_eq!(audited, errors);
}

#[tokio::test]
async fn a_call_that_breaks_the_parameters_schema_is_refused_executed_or_dry_run() {
    // the team allows only switching the LED on, whatever SetBool allows
    let on_only = tools_with(Some(json!({"type": "object", "required": ["data"], "properties": {"data": {"const": true}}})));
    let expected = ["the arguments break the parameters schema of tool 'set_led': data: true was expected",
                    "the arguments break the parameters schema of tool 'set_led': \"data\" is a required property"];
    for dry_run in [false, true] {
        let stand = Arc::new(Stand::default());
        let mut rounds = ToolRounds::new(on_only.clone(), stand.clone(), 4, dry_run, "kitchen", 7);
        let mut chat = ChatRequest::new("m", vec![Message::user("light on")]);
        chat.tools = Some(on_only.definitions());
        let calls = vec![call("set_led", json!({"data": false}), None), call("set_led", json!({}), None),
                         call("set_led", json!({"data": true}), None)];
        assert_eq!(rounds.after_answer(&mut chat, "", calls, &CancellationToken::new()).await, Ok(true));
        let told = results(&chat);
        assert_eq!([told[0]["error"].as_str(), told[1]["error"].as_str()], expected.map(Some), "dry_run {dry_run}");
        assert!(told[2].get("error").is_none(), "the call that keeps the rules goes on: {}", told[2]);
        assert_eq!(stand.calls.load(Ordering::SeqCst), if dry_run { 0 } else { 1 });
        let audited: Vec<String> = stand.records.lock().unwrap().iter().map(|r| r.error.clone()).collect();
        assert_eq!(audited, [expected[0], expected[1], ""]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_abandons_the_call() {
    let (stand, mut rounds, mut chat) = setup(Stand { delay: Duration::from_secs(60), ..Stand::default() }, 4, false);
    let more = rounds.after_answer(&mut chat, "", vec![call("set_led", json!({"data": true}), None)], &CancellationToken::new()).await;
    assert_eq!(more, Ok(true));
    assert_eq!(results(&chat), [json!({"error": "no result within 5.0s (timeout_s of tool 'set_led')"})]);
    assert!(stand.abandoned.load(Ordering::SeqCst), "the executor's future was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_stops_the_round_and_abandons_the_call() {
    let (stand, mut rounds, mut chat) = setup(Stand { delay: Duration::from_secs(3), ..Stand::default() }, 4, false);
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        canceller.cancel();
    });
    let more = rounds.after_answer(&mut chat, "", vec![call("set_led", json!({"data": true}), None)], &cancel).await;
    assert_eq!(more, Err(Cancelled));
    assert!(stand.abandoned.load(Ordering::SeqCst));
    assert_eq!(stand.records.lock().unwrap()[0].error, "cancelled");
}

#[tokio::test]
async fn dry_run_records_without_executing_and_tells_the_model() {
    let (stand, mut rounds, mut chat) = setup(Stand::default(), 4, true);
    rounds.after_answer(&mut chat, "", vec![call("set_led", json!({"data": true}), None)], &CancellationToken::new()).await.unwrap();
    assert_eq!(stand.calls.load(Ordering::SeqCst), 0);
    let result = &results(&chat)[0];
    assert_eq!(result["dry_run"], true);
    assert!(result["note"].as_str().unwrap().contains("not executed"));
    assert!(stand.records.lock().unwrap()[0].dry_run);
}

#[tokio::test]
async fn after_max_tool_rounds_the_tools_are_withdrawn() {
    let (stand, mut rounds, mut chat) = setup(Stand::default(), 2, false);
    let cancel = CancellationToken::new();
    let on = || vec![call("set_led", json!({"data": true}), None)];
    assert_eq!(rounds.after_answer(&mut chat, "", on(), &cancel).await, Ok(true));
    assert!(chat.tools.is_some());
    assert_eq!(rounds.after_answer(&mut chat, "", on(), &cancel).await, Ok(true));
    assert!(chat.tools.is_none(), "the next request asks for words");
    assert_eq!(rounds.after_answer(&mut chat, "Done.", on(), &cancel).await, Ok(false), "calls without tools are not run");
    assert_eq!(stand.calls.load(Ordering::SeqCst), 2);
    let rounds_seen: Vec<u32> = stand.records.lock().unwrap().iter().map(|r| r.round).collect();
    assert_eq!(rounds_seen, [0, 1]);
}
