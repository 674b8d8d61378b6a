//! Tests of the OpenAI wire: the request body, the model list calls and their errors against
//! the fake server. The event stream is tested in `sse_tests`.

use std::time::Duration;

use serde_json::json;

use super::request::body;
use crate::ollama::send::error_text;
use crate::ollama::fake_server::{json_reply, FakeServer, Step};
use crate::ollama::{
    Api, ChatRequest, Client, ClientConfig, Format, Message, OllamaError, Think, ThinkLevel, ToolCall, ToolCallFunction,
};

/// A client of the OpenAI API at `url`, with short timeouts and a key.
pub(super) fn openai_client(url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: url.to_owned(),
        connect_timeout: Duration::from_millis(500),
        load_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        api_key: Some("sk-test".into()),
        api: Api::OpenAi,
    })
    .expect("client")
}

fn call(id: Option<&str>, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall { id: id.map(Into::into), function: ToolCallFunction { index: None, name: name.into(), arguments } }
}

#[test]
fn messages_images_and_tool_calls_in_openai_shape() {
    let jpeg = "/9j/4AAQSkZJRg==";
    let png = "iVBORw0KGgoAAAANSUhEUg==";
    let mut user = Message::user("what is this?");
    user.images = vec![jpeg.into(), png.into()];
    let mut thinking = Message::assistant("it is a cup");
    thinking.thinking = "hmm".into();
    let asked = Message {
        tool_calls: vec![call(None, "set_led", json!({"data": true})), call(Some("call_9"), "say", json!({}))],
        ..Message::assistant("")
    };
    let messages = vec![Message::system("be brief"), user, thinking, asked, Message::tool("say", "said"),
                        Message::tool("set_led", "{\"success\":true}")];
    let wire = body(&ChatRequest::new("m", messages));
    assert_eq!(wire["messages"], json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{jpeg}")}},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}}]},
        {"role": "assistant", "content": "it is a cup"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_3_0", "type": "function", "function": {"name": "set_led", "arguments": "{\"data\":true}"}},
            {"id": "call_9", "type": "function", "function": {"name": "say", "arguments": "{}"}}]},
        // results are paired with their calls by name when they carry no id
        {"role": "tool", "content": "said", "tool_call_id": "call_9"},
        {"role": "tool", "content": "{\"success\":true}", "tool_call_id": "call_3_0"},
    ]));
    let mut answered = Message::tool("say", "x");
    answered.tool_call_id = "call_b".into();
    let asked = Message { tool_calls: vec![call(Some("call_a"), "say", json!({})), call(Some("call_b"), "say", json!({}))],
                          ..Message::assistant("") };
    let wire = body(&ChatRequest::new("m", vec![asked, answered, Message::tool("say", "y")]));
    assert_eq!((&wire["messages"][1]["tool_call_id"], &wire["messages"][2]["tool_call_id"]), (&json!("call_b"), &json!("call_a")),
        "an id given wins; the rest pair in order");
}

#[test]
fn options_format_and_think_mapped() {
    let mut req = ChatRequest::new("qwen3", vec![Message::user("hi")]);
    req.options = json!({"temperature": 0, "top_p": 0.9, "seed": 42, "stop": ["\n"], "num_predict": 64, "top_k": 40,
                         "num_ctx": 2048, "frequency_penalty": 0.5, "model": "other", "stream": false})
        .as_object().cloned();
    req.format = Some(Format::Schema(json!({"type": "object"}).as_object().cloned().unwrap_or_default()));
    req.think = Some(Think::Level(ThinkLevel::Low));
    let wire = body(&req);
    assert_eq!(wire, json!({
        "model": "qwen3", "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}, "temperature": 0, "top_p": 0.9, "seed": 42, "stop": ["\n"],
        "max_tokens": 64, "top_k": 40, "num_ctx": 2048, "frequency_penalty": 0.5,
        "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}},
        "reasoning_effort": "low"}));
    req.format = Some(Format::Json);
    req.think = Some(Think::Bool(false));
    req.options = json!({"num_predict": -1}).as_object().cloned();
    let wire = body(&req);
    assert_eq!(wire["response_format"], json!({"type": "json_object"}));
    assert!(wire.get("max_tokens").is_none() && wire.get("reasoning_effort").is_none() && wire.get("think").is_none(), "{wire}");
}

const MODELS: &str = r#"{"object":"list","data":[
  {"id":"meta-llama/Llama-3.2-1B-Instruct","object":"model","max_model_len":8192},
  {"id":"smollm2:135m","aliases":["smol"],"object":"model","architecture":{"input_modalities":["text"]},
   "meta":{"n_ctx":2048,"n_ctx_train":8192}}]}"#;

#[tokio::test]
async fn model_list_answers_tags_ps_show_version_and_load() {
    let list: serde_json::Value = serde_json::from_str(MODELS).unwrap_or_default();
    let scripts = (0..6).map(|_| vec![json_reply(200, "OK", &list)]).collect();
    let mut server = FakeServer::start(scripts).await;
    let client = openai_client(&server.url);
    assert_eq!(client.tags().await.unwrap(), ["meta-llama/Llama-3.2-1B-Instruct", "smollm2:135m"]);
    let got = server.request().await;
    assert_eq!((got.method.as_str(), got.path.as_str(), got.header("authorization")), ("GET", "/v1/models", Some("Bearer sk-test")));
    let ps = client.ps().await.unwrap();
    assert_eq!((ps[0].name.as_str(), ps[0].context_length, ps[1].context_length), ("meta-llama/Llama-3.2-1B-Instruct", 8192, 2048));
    let vllm = client.show("meta-llama/llama-3.2-1b-instruct").await.unwrap();
    assert_eq!((vllm.context_length(), vllm.capabilities.clone()), (Some(8192), vec!["completion".into(), "tools".into(), "vision".into()]));
    let smol = client.show("smol").await.unwrap();
    assert_eq!((smol.context_length(), smol.has_capability("vision")), (Some(2048), false), "text-only input modalities");
    let err = client.show("llama3.2").await.unwrap_err();
    assert!(err.is_model_not_found(), "{err:?}");
    assert!(err.to_string().contains("GET /v1/models lists meta-llama/Llama-3.2-1B-Instruct, smollm2:135m"), "{err}");
    let loaded = client.load("smollm2:135m", None).await.unwrap();
    assert_eq!((loaded.done, loaded.done_reason.as_deref()), (true, Some("load")));
}

#[tokio::test]
async fn version_is_openai_and_an_empty_list_is_no_model() {
    let scripts = vec![vec![json_reply(200, "OK", &json!({"object": "list", "data": null}))],
                       vec![json_reply(200, "OK", &json!({"object": "list", "data": []}))]];
    let server = FakeServer::start(scripts).await;
    let client = openai_client(&server.url);
    assert_eq!(client.version().await.unwrap(), "openai");
    assert!(client.show("x").await.unwrap_err().to_string().contains("lists no model"));
}

#[tokio::test]
async fn error_bodies_of_the_openai_shape_give_their_message() {
    let scripts = vec![
        vec![json_reply(400, "Bad Request", &json!({"error": {"code": 400, "message": "Expected 'messages' to be an array",
                                                              "type": "invalid_request_error"}}))],
        vec![json_reply(404, "Not Found", &json!({"object": "error", "message": "The model `x` does not exist.",
                                                  "type": "NotFoundError", "code": 404}))],
        vec![json_reply(503, "Service Unavailable", &json!({"error": {"message": "server busy", "type": "api_error"}}))],
    ];
    let server = FakeServer::start(scripts).await;
    let client = openai_client(&server.url);
    let req = ChatRequest::new("x", vec![Message::user("hi")]);
    let first = client.chat_stream(&req).await.unwrap_err();
    assert_eq!(first, OllamaError::Status { code: 400, message: "Expected 'messages' to be an array".into() });
    let second = client.chat_stream(&req).await.unwrap_err();
    assert!(second.is_model_not_found(), "{second:?}");
    let third = client.chat_stream(&req).await.unwrap_err();
    assert!(third.is_retryable_before_output() && third.to_string().contains("server busy"), "{third}");
}

#[tokio::test]
async fn pull_and_unload_are_not_part_of_the_api() {
    let client = openai_client("http://127.0.0.1:9");
    let pull = client.pull("x").await.unwrap_err();
    assert!(matches!(&pull, OllamaError::Unsupported(t) if t.contains("pulling a model") && t.contains("api: openai")), "{pull}");
    let unload = client.unload("x").await.unwrap_err();
    assert_eq!(unload.kind(), "unsupported");
}

#[tokio::test]
async fn ping_asks_the_model_list() {
    let mut server = FakeServer::start(vec![vec![json_reply(200, "OK", &json!({"data": []}))], vec![Step::Reset]]).await;
    let client = openai_client(&server.url);
    client.ping().await.unwrap();
    assert_eq!(server.request().await.path, "/v1/models");
    assert!(client.ping().await.is_err());
}

#[test]
fn error_text_reads_every_server_shape() {
    let cases = [
        (json!({"error": "model 'x' not found"}), Some("model 'x' not found")),
        (json!({"error": {"message": "bad messages", "type": "invalid_request_error", "code": 400}}), Some("bad messages")),
        (json!({"object": "error", "message": "The model `x` does not exist.", "code": 404}), Some("The model `x` does not exist.")),
        (json!({"detail": "Not Found"}), Some("Not Found")),
        (json!({"error": "  "}), None),
        (json!({"error": {"code": 500}}), None),
        (json!({"status": "ok"}), None),
        (json!(["error"]), None),
    ];
    for (body, want) in cases {
        assert_eq!(error_text(&body).as_deref(), want, "{body}");
    }
    assert!(OllamaError::Status { code: 404, message: "The model `x` does not exist.".into() }.is_model_not_found());
}
