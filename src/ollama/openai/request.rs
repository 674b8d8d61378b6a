//! A [`ChatRequest`] as the body of `POST /v1/chat/completions` ([`body`]).
//!
//! * Messages: `system`, `user`, `assistant`, `tool` with `content`. A user message with images
//!   gets the content parts `[{"type": "text"}, {"type": "image_url", "image_url": {"url":
//!   "data:image/jpeg;base64,..."}}]` (the type read from the image's first bytes). An assistant
//!   message's tool calls get `type: function` and their arguments as a JSON string; a call
//!   without an id (Ollama's older servers send none) gets `call_<message>_<n>`, and each tool
//!   result names the call it answers in `tool_call_id` (its own, else the next unanswered call
//!   of the same name, else the next unanswered call). Reasoning of earlier turns is not sent.
//! * Options: `temperature`, `top_p`, `seed`, `stop`, `frequency_penalty`, `presence_penalty`
//!   keep their names; `num_predict` > 0 becomes `max_tokens` (-1, unlimited, is left out);
//!   every other option goes into the body as it is (`top_k`, `min_p`, `repeat_penalty`, ...:
//!   the extensions vLLM, llama.cpp's server and others read; servers ignore what they do not
//!   know), except a name the body itself uses.
//! * `format`: `"json"` → `response_format: {"type": "json_object"}`, a schema →
//!   `{"type": "json_schema", "json_schema": {"name": "response", "schema": ..}}`.
//! * `think`: a level becomes `reasoning_effort`; `true`/`false` is not sent (the API has no
//!   switch for it; what a reasoning model sends apart is kept apart, as `thinking`).
//!   `keep_alive` has no equivalent and is not sent.
//! * `stream: true` with `stream_options: {"include_usage": true}` for the token counts.

use serde_json::{json, Map, Value};

use crate::ollama::params::{Format, Think};
use crate::ollama::types::{ChatRequest, Message, Role};

/// Keys the body sets itself: an option of that name is not copied.
const BODY_KEYS: [&str; 9] =
    ["model", "messages", "stream", "stream_options", "tools", "response_format", "max_tokens", "n", "reasoning_effort"];

/// The JSON body for `req` (see the module doc).
pub(crate) fn body(req: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages(&req.messages)));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    if let Some(tools) = &req.tools {
        body.insert("tools".into(), Value::Array(tools.clone()));
    }
    if let Some(options) = &req.options {
        for (key, value) in options {
            match key.as_str() {
                "num_predict" => {
                    if let Some(n) = value.as_i64().filter(|n| *n > 0) {
                        body.insert("max_tokens".into(), json!(n));
                    }
                }
                _ if BODY_KEYS.contains(&key.as_str()) => {
                    log::debug!("option '{key}' is not sent on the OpenAI API: the request body uses that name");
                }
                // temperature, top_p, seed, stop, ... and the engines' extensions
                _ => {
                    body.insert(key.clone(), value.clone());
                }
            }
        }
    }
    match &req.format {
        Some(Format::Json) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(Format::Schema(schema)) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}),
            );
        }
        None => {}
    }
    if let Some(Think::Level(level)) = req.think {
        body.insert("reasoning_effort".into(), json!(level.as_str()));
    }
    Value::Object(body)
}

/// The conversation as OpenAI messages, with tool-call ids paired up.
fn messages(messages: &[Message]) -> Vec<Value> {
    // ids of the latest assistant turn's calls not answered yet: (id, name)
    let mut open: Vec<(String, String)> = Vec::new();
    messages
        .iter()
        .enumerate()
        .map(|(at, message)| match message.role {
            Role::System => json!({"role": "system", "content": message.content}),
            Role::User => user(message),
            Role::Assistant => {
                let mut out = json!({"role": "assistant", "content": message.content});
                if !message.tool_calls.is_empty() {
                    open.clear();
                    let calls: Vec<Value> = message
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(n, call)| {
                            let id = call.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{at}_{n}"));
                            open.push((id.clone(), call.function.name.clone()));
                            json!({"id": id, "type": "function", "function": {
                                "name": call.function.name, "arguments": call.function.arguments.to_string()}})
                        })
                        .collect();
                    out["tool_calls"] = Value::Array(calls);
                }
                out
            }
            Role::Tool => {
                let id = answered_call(&mut open, message);
                json!({"role": "tool", "content": message.content, "tool_call_id": id})
            }
        })
        .collect()
}

/// The id of the call a tool result answers, taken off the open calls (see the module doc).
fn answered_call(open: &mut Vec<(String, String)>, result: &Message) -> String {
    let position = open
        .iter()
        .position(|(id, _)| !result.tool_call_id.is_empty() && *id == result.tool_call_id)
        .or_else(|| open.iter().position(|(_, name)| !result.tool_name.is_empty() && *name == result.tool_name))
        .or(if open.is_empty() { None } else { Some(0) });
    match position {
        Some(i) => open.remove(i).0,
        None => result.tool_call_id.clone(),
    }
}

/// A user message: text, or text and image parts.
fn user(message: &Message) -> Value {
    if message.images.is_empty() {
        return json!({"role": "user", "content": message.content});
    }
    let mut parts = vec![json!({"type": "text", "text": message.content})];
    parts.extend(message.images.iter().map(|image| {
        json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{image}", media_type(image))}})
    }));
    json!({"role": "user", "content": parts})
}

/// The media type of a base64 image, from its first bytes (the node sends JPEG or PNG; a
/// camera's compressed frames pass through as they are).
fn media_type(base64: &str) -> &'static str {
    const KNOWN: [(&str, &str); 4] =
        [("/9j/", "image/jpeg"), ("iVBORw0KGgo", "image/png"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp")];
    KNOWN.iter().find(|(prefix, _)| base64.starts_with(prefix)).map_or("image/jpeg", |(_, media)| media)
}
