//! The response side of `/api/chat`: [`ChatChunk`] (one NDJSON line) and its message delta.
//!
//! Every field defaults and unknown fields are ignored: Ollama omits zero-valued metrics and
//! empty fields, sends `"images": null`, and adds fields between versions.

use serde::{Deserialize, Serialize};

use super::types::{null_default, Role, ToolCall};

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
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub thinking: String,
    /// Complete tool calls (they are never split across chunks).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// Images (normally `null`).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
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
        self.message
            .as_ref()
            .map_or(&[], |m| m.tool_calls.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_reads_transcript_shapes() {
        let first: ChatChunk = serde_json::from_str(
            r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false,"future_field":1}"#,
        ).unwrap();
        assert_eq!(
            (first.content(), first.done, first.done_reason.as_deref()),
            ("The", false, None)
        );
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
        )
        .unwrap();
        assert_eq!(thinking.thinking(), "Hmm");
    }
}
