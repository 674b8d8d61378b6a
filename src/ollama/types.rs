//! Serde types for `/api/chat` and `/api/show`, with Ollama's exact wire names.
//!
//! Requests carry only what the caller set (`skip_serializing_if` on every optional field).
//! Responses default every field and ignore unknown ones: Ollama omits zero-valued metrics and
//! empty fields, sends `"images": null`, and adds fields between versions.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::params::{Format, KeepAlive, Think};

/// Reads `null` as the type's default (Go encodes nil slices as `null`).
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (the system prompt).
    System,
    /// The person (here: the recognised speech).
    User,
    /// The model's earlier answers.
    #[default]
    Assistant,
    /// The result of a tool call, named by `tool_name`.
    Tool,
}

/// One message of the conversation sent to `/api/chat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text (always sent, even when empty, as Ollama's own client does).
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// A thinking model's reasoning from an earlier turn; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub thinking: String,
    /// Base64-encoded images for vision models; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub images: Vec<String>,
    /// Tool calls the assistant made in an earlier turn; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub tool_calls: Vec<ToolCall>,
    /// For `role: tool`: which tool produced `content`; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub tool_name: String,
    /// For `role: tool` on newer servers: the `id` of the call answered; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub tool_call_id: String,
}

impl Message {
    /// A message with `role` and `content` and nothing else.
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), ..Message::default() }
    }

    /// A system prompt.
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }

    /// A user turn.
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }

    /// An assistant turn (e.g. a completed answer committed to history).
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }

    /// A tool result for the call to `tool_name`.
    pub fn tool(tool_name: impl Into<String>, content: impl Into<String>) -> Message {
        Message { tool_name: tool_name.into(), ..Message::new(Role::Tool, content) }
    }
}

/// A tool call made by the model. It arrives whole in one chunk, not as token deltas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (`"call_xxxxxxxx"`), sent by newer servers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What to call and with which arguments.
    #[serde(default)]
    pub function: ToolCallFunction,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Position of this call among the calls of one answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The tool's name as declared in `tools`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The arguments: a JSON object (not a string, unlike OpenAI's API).
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

impl Default for ToolCallFunction {
    fn default() -> Self {
        ToolCallFunction { index: None, name: String::new(), arguments: empty_object() }
    }
}

/// The body of `POST /api/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name, e.g. `llama3.2` or `qwen3:4b`.
    pub model: String,
    /// The conversation so far, oldest first; empty just loads the model.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tool definitions (`{"type":"function","function":{...}}`) passed through as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// Constrain the answer to JSON or a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Model options (`temperature`, `seed`, `num_ctx`, `num_predict`, `stop`, ...), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// How long the model stays loaded afterwards; `None` = server default (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Thinking on/off/level; `None` lets a thinking model think (tokens go to `thinking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Set by the client method that sends the request (`chat_stream` sets `true`).
    #[serde(default)]
    pub(crate) stream: bool,
}

impl ChatRequest {
    /// A request for `model` with `messages` and every optional field left to the server.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages,
            tools: None,
            format: None,
            options: None,
            keep_alive: None,
            think: None,
            stream: false,
        }
    }

    /// The `stream` flag as it will be (or was) sent.
    pub fn stream(&self) -> bool {
        self.stream
    }
}

/// The `message` of a streamed chunk: a delta to append, not the whole answer so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponseMessage {
    /// Always `assistant` in practice.
    pub role: Role,
    /// Answer text in this chunk (may be empty, e.g. on the final chunk or while thinking).
    #[serde(deserialize_with = "null_default")]
    pub content: String,
    /// Reasoning text in this chunk (thinking models); never meant to be spoken.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub thinking: String,
    /// Complete tool calls (they are never split across chunks).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub tool_calls: Vec<ToolCall>,
    /// Images (normally `null`).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub images: Vec<String>,
}

/// One line of the `/api/chat` stream. Metrics are present only on the final (`done`) chunk,
/// and only when non-zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatChunk {
    /// The model that answered.
    #[serde(deserialize_with = "null_default")]
    pub model: String,
    /// RFC 3339 timestamp with nanoseconds, as sent (not parsed).
    #[serde(deserialize_with = "null_default")]
    pub created_at: String,
    /// The delta; absent on some final chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<ResponseMessage>,
    /// True on the last chunk of the answer.
    pub done: bool,
    /// Why generation ended: `stop`, `length`, `load`, `unload` (final chunk only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Whole request time, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    /// Model load time, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    /// Prompt tokens evaluated (absent when all came from the cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// Prompt evaluation time, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    /// Tokens generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// Generation time, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
}

impl ChatChunk {
    /// The answer text of this chunk (`""` if none).
    pub fn content(&self) -> &str {
        self.message.as_ref().map_or("", |m| m.content.as_str())
    }

    /// The thinking text of this chunk (`""` if none).
    pub fn thinking(&self) -> &str {
        self.message.as_ref().map_or("", |m| m.thinking.as_str())
    }

    /// The tool calls of this chunk.
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.message.as_ref().map_or(&[], |m| m.tool_calls.as_slice())
    }
}

/// Model facts from `details` in `/api/show` and `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelDetails {
    /// The model this one was derived from, if any.
    #[serde(deserialize_with = "null_default")]
    pub parent_model: String,
    /// File format, e.g. `gguf`.
    #[serde(deserialize_with = "null_default")]
    pub format: String,
    /// Architecture family, e.g. `llama`.
    #[serde(deserialize_with = "null_default")]
    pub family: String,
    /// All families (may be `null`).
    #[serde(deserialize_with = "null_default")]
    pub families: Vec<String>,
    /// e.g. `3.2B`.
    #[serde(deserialize_with = "null_default")]
    pub parameter_size: String,
    /// e.g. `Q4_K_M`.
    #[serde(deserialize_with = "null_default")]
    pub quantization_level: String,
}

/// The useful part of `POST /api/show`; everything defaults, unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShowResponse {
    /// What the model can do: `completion`, `tools`, `vision`, `thinking`, `insert`, `embedding`.
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<String>,
    /// Format, family, size and quantisation.
    pub details: ModelDetails,
    /// Architecture facts keyed like `llama.context_length` (a JSON object, or `null`).
    pub model_info: Value,
    /// Modelfile `PARAMETER` lines (text).
    #[serde(deserialize_with = "null_default")]
    pub parameters: String,
    /// The prompt template.
    #[serde(deserialize_with = "null_default")]
    pub template: String,
    /// The model's built-in system prompt.
    #[serde(deserialize_with = "null_default")]
    pub system: String,
    /// Last modification time (RFC 3339), as sent.
    #[serde(deserialize_with = "null_default")]
    pub modified_at: String,
}

impl ShowResponse {
    /// True if `capabilities` lists `name` (e.g. `"tools"`, `"thinking"`, `"vision"`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// The trained context length (`<arch>.context_length` in `model_info`), if reported.
    pub fn context_length(&self) -> Option<u64> {
        let info = self.model_info.as_object()?;
        info.iter().find(|(k, _)| k.ends_with(".context_length")).and_then(|(_, v)| v.as_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn request_uses_exact_wire_names_and_omits_unset_fields() {
        let req = ChatRequest::new("llama3.2", vec![Message::user("why is the sky blue?")]);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
                   "stream": false})
        );
        let mut req = req;
        req.tools = Some(vec![json!({"type": "function", "function": {"name": "get_weather"}})]);
        req.format = Some(Format::Json);
        req.options = Some(json!({"temperature": 0, "seed": 101}).as_object().unwrap().clone());
        req.keep_alive = Some(KeepAlive::For(Duration::from_secs(600)));
        req.think = Some(Think::Bool(false));
        req.messages.push(Message {
            tool_calls: vec![ToolCall {
                id: None,
                function: ToolCallFunction {
                    index: Some(0),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Toronto"}),
                },
            }],
            ..Message::assistant("")
        });
        req.messages.push(Message::tool("get_weather", "11 degrees celsius"));
        let wire = serde_json::to_value(&req).unwrap();
        assert_eq!(wire["format"], "json");
        assert_eq!(wire["options"], json!({"temperature": 0, "seed": 101}));
        assert_eq!(wire["keep_alive"], 600);
        assert_eq!(wire["think"], false);
        assert_eq!(wire["messages"][1],
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Toronto"}}}]}));
        assert_eq!(wire["messages"][2],
            json!({"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}));
        let back: ChatRequest = serde_json::from_value(wire).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn chunk_reads_transcript_shapes() {
        let first: ChatChunk = serde_json::from_str(
            r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false,"future_field":1}"#,
        ).unwrap();
        assert_eq!((first.content(), first.done, first.done_reason.as_deref()), ("The", false, None));
        // Final chunk without `message` (the "with history" transcript) and with omitted metrics.
        let last: ChatChunk = serde_json::from_str(
            r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","done":true,"done_reason":"stop","eval_count":468}"#,
        ).unwrap();
        assert!(last.done && last.message.is_none() && last.content().is_empty());
        assert_eq!((last.eval_count, last.prompt_eval_count), (Some(468), None));
        let tools: ChatChunk = serde_json::from_str(
            r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":false}"#,
        ).unwrap();
        assert_eq!(tools.tool_calls()[0].id.as_deref(), Some("call_1"));
        assert_eq!(tools.tool_calls()[0].function.arguments["city"], "Tokyo");
        let thinking: ChatChunk = serde_json::from_str(
            r#"{"message":{"role":"assistant","content":"","thinking":"Hmm"},"done":false}"#,
        ).unwrap();
        assert_eq!(thinking.thinking(), "Hmm");
    }

    #[test]
    fn show_response_defaults_and_helpers() {
        let show: ShowResponse = serde_json::from_value(json!({
            "license": "...", "template": "{{ .Prompt }}",
            "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": null,
                        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "capabilities": ["completion", "tools"], "modified_at": "2025-01-01T00:00:00Z"
        }))
        .unwrap();
        assert!(show.has_capability("tools") && !show.has_capability("thinking"));
        assert_eq!(show.context_length(), Some(131072));
        assert_eq!(show.details.quantization_level, "Q4_K_M");
        assert_eq!(serde_json::from_value::<ShowResponse>(json!({})).unwrap(), ShowResponse::default());
    }
}
