//! The request side of `/api/chat`: [`ChatRequest`], [`Message`], [`Role`], [`ToolCall`],
//! with Ollama's exact wire names.
//!
//! Requests carry only what the caller set (`skip_serializing_if` on every optional field);
//! messages also read back leniently (`null` lists), as they appear in responses and history.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::keep_alive::KeepAlive;
use super::params::{Format, Think};

/// Reads `null` as the type's default (Go encodes nil slices as `null`).
pub(super) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
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
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub thinking: String,
    /// Base64-encoded images for vision models; omitted when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub images: Vec<String>,
    /// Tool calls the assistant made in an earlier turn; omitted when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For `role: tool`: which tool produced `content`; omitted when empty.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub tool_name: String,
    /// For `role: tool` on newer servers: the `id` of the call answered; omitted when empty.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub tool_call_id: String,
}

impl Message {
    /// A message with `role` and `content` and nothing else.
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            ..Message::default()
        }
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
        Message {
            tool_name: tool_name.into(),
            ..Message::new(Role::Tool, content)
        }
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
        ToolCallFunction {
            index: None,
            name: String::new(),
            arguments: empty_object(),
        }
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
        req.tools = Some(vec![
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ]);
        req.format = Some(Format::Json);
        req.options = Some(
            json!({"temperature": 0, "seed": 101})
                .as_object()
                .unwrap()
                .clone(),
        );
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
        req.messages
            .push(Message::tool("get_weather", "11 degrees celsius"));
        let wire = serde_json::to_value(&req).unwrap();
        assert_eq!(wire["format"], "json");
        assert_eq!(wire["options"], json!({"temperature": 0, "seed": 101}));
        assert_eq!(wire["keep_alive"], 600);
        assert_eq!(wire["think"], false);
        assert_eq!(
            wire["messages"][1],
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Toronto"}}}]})
        );
        assert_eq!(
            wire["messages"][2],
            json!({"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"})
        );
        let back: ChatRequest = serde_json::from_value(wire).unwrap();
        assert_eq!(back, req);
    }
}
