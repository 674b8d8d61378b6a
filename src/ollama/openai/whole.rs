//! A `POST /v1/chat/completions` with `stream: true` answered by one whole `chat.completion`
//! object instead of events: some OpenAI-compatible servers and proxies ignore `stream` and send
//! the answer as `stream: false` would (`Content-Type: application/json`, compact or
//! pretty-printed over several lines).
//!
//! Which body it is: the first line that is neither blank nor an SSE comment starts with `{`
//! (after blanks). An SSE line starts with a field name or `:`, never with `{`, so this needs no
//! `Content-Type` (a proxy may label either body wrongly). From then on the lines are only
//! collected; the object is read when the body ends (`SseDecoder::end`), into the one final
//! chunk, `done: true` with the whole answer, as Ollama's `stream: false` reply is one object.
//!
//! The object (OpenAI's `chat.completion`, as vLLM, llama.cpp's server, LiteLLM and Ollama's
//! `/v1` send it): `choices[0].message` (`delta` when a server sends one chunk object) with
//! `content` (a string, or a list of `{"type": "text", "text": ..}` parts), `reasoning_content`
//! or `reasoning` → thinking, `tool_calls[]` (JSON-string arguments, as in the events);
//! `choices[0].finish_reason` → `done_reason`; `usage.prompt_tokens` / `completion_tokens` →
//! `prompt_eval_count` / `eval_count`. The durations the decoder measures: `total_duration`
//! only (no first piece to measure the others from).
//!
//! Errors: an `{"error": ..}` object → [`OllamaError::Server`] (as the error event);
//! a body that ends inside the object → [`OllamaError::Truncated`] (0 chunks: nothing was
//! handed out yet); a complete body that is not JSON, or an object without `choices` →
//! [`OllamaError::Protocol`]; more than [`MAX_LINE_BYTES`] → [`OllamaError::Protocol`].

use serde_json::Value;

use crate::ollama::error::OllamaError;
use crate::ollama::send::error_text;
use crate::ollama::stream::excerpt;
use crate::ollama::MAX_LINE_BYTES;

/// What a whole answer says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Whole {
    /// `message.content`.
    pub content: String,
    /// `message.reasoning_content` and `message.reasoning`.
    pub thinking: String,
    /// `message.tool_calls`, as sent (the decoder assembles them as it does pieces).
    pub calls: Vec<Value>,
    /// `finish_reason`.
    pub finish: Option<String>,
    /// `usage`: prompt and completion tokens.
    pub usage: (Option<u64>, Option<u64>),
}

/// True if a body whose first line (neither blank nor a comment) is `line` is one JSON object.
pub(super) fn starts_object(line: &[u8]) -> bool {
    line.trim_ascii_start().first() == Some(&b'{')
}

/// Adds one line of the body to `body` (lines joined with `\n`, none after the last: a body cut
/// inside a string then ends there, not with a control character in it).
pub(super) fn push(body: &mut String, line: &[u8]) -> Result<(), OllamaError> {
    if body.len() + line.len() + 1 > MAX_LINE_BYTES {
        return Err(OllamaError::Protocol(format!(
            "a JSON answer longer than {MAX_LINE_BYTES} bytes (the stream was ignored; the body is one object)"
        )));
    }
    if !body.is_empty() {
        body.push('\n');
    }
    body.push_str(&String::from_utf8_lossy(line));
    Ok(())
}

/// The whole body, read; see the module doc for the fields and the errors.
pub(super) fn read(body: &str) -> Result<Whole, OllamaError> {
    let payload: Value = serde_json::from_str(body).map_err(|e| {
        if e.is_eof() {
            OllamaError::Truncated { chunks: 0, detail: "the JSON answer ended before its closing brace".into() }
        } else {
            OllamaError::Protocol(format!("a JSON answer that is not JSON ({e}): {}", excerpt(body.trim(), 120)))
        }
    })?;
    if let Some(error) = payload.get("error").filter(|e| !e.is_null()) {
        let text = error_text(&payload).unwrap_or_else(|| excerpt(&error.to_string(), 500));
        return Err(OllamaError::Server(text));
    }
    let not_an_answer = || {
        OllamaError::Protocol(format!(
            "a JSON answer that is not a chat.completion (no choices[0].message): {}",
            excerpt(body.trim(), 120)
        ))
    };
    let choice = payload.get("choices").and_then(Value::as_array).and_then(|c| c.first()).ok_or_else(not_an_answer)?;
    let message = choice.get("message").or_else(|| choice.get("delta")).filter(|m| m.is_object());
    let message = message.ok_or_else(not_an_answer)?;
    let text = |key: &str| message.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let usage = payload.get("usage");
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    Ok(Whole {
        content: content_text(message.get("content")),
        thinking: [text("reasoning_content"), text("reasoning")].concat(),
        calls: message.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default(),
        finish: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        usage: (count("prompt_tokens"), count("completion_tokens")),
    })
}

/// `content`: a string, or the `text` of its `{"type": "text"}` parts; empty for `null`.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str).is_none_or(|t| t == "text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}
