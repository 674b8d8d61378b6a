//! The response side of `/api/chat`: [`ChatChunk`] (one NDJSON line), its message delta, and
//! [`parse_line`], which reads a line as Ollama's Go client does.
//!
//! Decoding follows Go's `encoding/json` into `api.ChatResponse` (`api/types.go`; rules in
//! `go_json`): keys match case-insensitively, the last of a repeated key wins, `null` leaves a
//! field as it was, unknown fields are ignored, and a missing `done` is `false`. Ollama omits
//! zero-valued metrics and empty fields, sends `"images": null`, and adds fields between versions.

use serde::de::{Deserialize, Deserializer};
use serde::Serialize;

use super::error::OllamaError;
use super::go_json::{go_struct, GoDecode};
use super::types::{ToolCall, ToolCallFunction};
use super::wire::parse_wire_line;

/// The `message` of a streamed chunk: a delta to append, not the whole answer so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// `assistant` in practice; any text is kept as sent (Go's `Message.Role` is a string).
    pub role: String,
    /// Answer text in this chunk (may be empty, e.g. on the final chunk or while thinking).
    pub content: String,
    /// Reasoning text in this chunk (thinking models); never meant to be spoken.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Complete tool calls (they are never split across chunks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Images (normally `null`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// One line of the `/api/chat` stream. Metrics are present only on the final (`done`) chunk,
/// and only when non-zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatChunk {
    /// The model that answered.
    pub model: String,
    /// RFC 3339 timestamp with nanoseconds, as sent (not parsed).
    pub created_at: String,
    /// The delta; absent (or `null`) on some final chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<ResponseMessage>,
    /// True on the last chunk of the answer.
    pub done: bool,
    /// Why generation ended: `stop`, `length`, `load`, `unload` (final chunk only), or
    /// [`DONE_REASON_END_OF_STREAM`] on the final chunk this client adds itself.
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

/// `done_reason` of the final chunk [`ChatStream`](super::ChatStream) adds when the server
/// ended the body cleanly after at least one line but without a `done: true` line. Ollama's Go
/// client treats that as a finished answer (its `stream()` returns `nil` at EOF); this reason
/// tells the user it ended that way rather than with Ollama's own `stop`.
pub const DONE_REASON_END_OF_STREAM: &str = "end_of_stream";

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
        self.message
            .as_ref()
            .map_or(&[], |m| m.tool_calls.as_slice())
    }
}

// Go's `Message` is a struct value: `null` leaves it, an object merges into it (see the
// `GoDecode` of `Option<ResponseMessage>` below).
go_struct!(
    ResponseMessage { role, content, thinking, tool_calls, images },
    ChatChunk {
        model, created_at, message, done, done_reason, total_duration, load_duration,
        prompt_eval_count, prompt_eval_duration, eval_count, eval_duration,
    },
    ToolCall { id, function },
    ToolCallFunction { index, name, arguments },
);

/// `Option<ResponseMessage>`: `null` leaves it; an object is merged into the message so far.
impl GoDecode for Option<ResponseMessage> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        let had = self.is_some();
        let mut message = self.take().unwrap_or_default();
        message.go_decode(d)?;
        *self = (had || message != ResponseMessage::default()).then_some(message);
        Ok(())
    }
}

/// Reads a chunk with Go's rules (see the module doc); `serde_json::from_str::<ChatChunk>`
/// therefore behaves as `json.Unmarshal` into `api.ChatResponse` on valid UTF-8.
impl<'de> Deserialize<'de> for ChatChunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut chunk = ChatChunk::default();
        chunk.go_decode(d)?;
        Ok(chunk)
    }
}

/// Parses one NDJSON line of a chat stream as Ollama's Go client does (`api/client.go`
/// `stream()` then `Chat()`): see [`parse_wire_line`]. `null`, `{}` or a line of unknown fields
/// is an empty, not-done chunk, as in Go.
pub(crate) fn parse_line(line: &[u8]) -> Result<ChatChunk, OllamaError> {
    parse_wire_line(line, "chat chunk")
}
