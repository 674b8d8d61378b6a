//! [`SseDecoder`]: the server-sent events of a streamed `POST /v1/chat/completions` as the
//! [`ChatChunk`]s an Ollama stream would give.
//!
//! Framing (WHATWG HTML, "Server-sent events", *interpreting an event stream*): the `data:` lines
//! of one event are joined with `\n`, a blank line ends the event, `event:` names it, a line that
//! starts with `:` is a comment, `id:` and `retry:` mean nothing here. llama.cpp's server has
//! also sent errors as an `error: {...}` field line; that is read as an error event.
//!
//! Payloads (OpenAI's `chat.completion.chunk`, as vLLM, SGLang, TGI, llama.cpp's server, LiteLLM
//! and Ollama's `/v1` send them):
//! * `choices[0].delta.content` → `message.content`; `delta.reasoning_content` (vLLM, llama.cpp,
//!   DeepSeek) or `delta.reasoning` (Ollama, OpenRouter) → `message.thinking`;
//! * `delta.tool_calls[]` come in pieces by `index` (`id` and `function.name` once,
//!   `function.arguments` a JSON string cut anywhere); the whole calls, arguments parsed, go
//!   into the final chunk, as Ollama sends a call whole;
//! * `finish_reason` → `done_reason` (`stop`, `length`, `tool_calls`, ...); `usage`
//!   (`prompt_tokens`, `completion_tokens`, asked for with `stream_options.include_usage` and
//!   sent in a chunk with `choices: []` after the finish) → `prompt_eval_count`, `eval_count`;
//! * `data: [DONE]` ends the answer: the final chunk (`done: true`) is made then. The OpenAI API
//!   has no durations, so they are measured here: `total_duration` from sending the request to
//!   `[DONE]`, `prompt_eval_duration` until the first piece, `eval_duration` from the first piece
//!   to `[DONE]` (no `load_duration`);
//! * an event with an `error` (`{"error": {"message": ..}}`) fails the answer with
//!   [`OllamaError::Server`]. Events with nothing to say (the role-only first delta, the usage
//!   chunk) give no chunk.
//!
//! A body that is one `chat.completion` object instead of events (a server or proxy that
//! ignored `stream: true`) is read by `whole` when it ends, into one final chunk; one event whose
//! choice has a whole `message` instead of a `delta` is read as a delta.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::ollama::chunk::{ChatChunk, ResponseMessage};
use crate::ollama::error::OllamaError;
use crate::ollama::send::error_text;
use crate::ollama::stream::excerpt;
use crate::ollama::types::{ToolCall, ToolCallFunction};

use super::whole;

/// A tool call being assembled from its pieces.
#[derive(Debug, Default)]
struct CallParts {
    id: String,
    name: String,
    arguments: String,
}

/// Turns the lines of one event stream into chunks; see the module doc.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    /// The requested model (engines often name it otherwise, e.g. by its file path).
    model: String,
    /// `data` of the event being read (lines joined with `\n`).
    data: String,
    /// `event` of the event being read.
    event: String,
    /// Tool calls by their `index`.
    calls: BTreeMap<u64, CallParts>,
    /// The last `finish_reason`.
    finish: Option<String>,
    /// `usage`: prompt and completion tokens.
    usage: (Option<u64>, Option<u64>),
    /// When the request was sent, and when the first piece came.
    sent_at: Instant,
    first_at: Option<Instant>,
    /// Set once the final chunk was made.
    done: bool,
    /// A line other than a blank or a comment was read.
    started: bool,
    /// The body is one JSON object, not events (see `whole`): its lines so far.
    whole: Option<String>,
}

impl SseDecoder {
    /// A decoder for the answer to a request for `model` sent at `sent_at`.
    pub(crate) fn new(model: &str, sent_at: Instant) -> SseDecoder {
        SseDecoder {
            model: model.to_owned(),
            data: String::new(),
            event: String::new(),
            calls: BTreeMap::new(),
            finish: None,
            usage: (None, None),
            sent_at,
            first_at: None,
            done: false,
            started: false,
            whole: None,
        }
    }

    /// One line (without its terminator; empty = the end of an event). `Ok(Some)` when the line
    /// completed an event that says something.
    pub(crate) fn line(&mut self, line: &[u8]) -> Result<Option<ChatChunk>, OllamaError> {
        if let Some(body) = &mut self.whole {
            return whole::push(body, line).map(|()| None);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(b":") {
            return Ok(None);
        }
        if !std::mem::replace(&mut self.started, true) && whole::starts_object(line) {
            log::debug!("the answer for {} is one JSON object, not events: the server ignored stream: true", self.model);
            return whole::push(self.whole.insert(String::new()), line).map(|()| None);
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = value.to_owned(),
            "error" => {
                self.event = "error".into();
                self.data.push_str(value);
                self.data.push('\n');
                return self.dispatch();
            }
            _ => {}
        }
        Ok(None)
    }

    /// The body ended: the event still being read counts, then the final chunk if the server
    /// said why the answer finished but not `[DONE]`. `Ok(None)`: the answer was cut.
    pub(crate) fn end(&mut self) -> Result<Option<ChatChunk>, OllamaError> {
        if let Some(body) = self.whole.as_mut().map(std::mem::take) {
            return self.whole_answer(&body).map(Some);
        }
        if let Some(chunk) = self.dispatch()? {
            return Ok(Some(chunk));
        }
        if self.done || self.finish.is_none() {
            return Ok(None);
        }
        Ok(Some(self.final_chunk()))
    }

    /// True once the body turned out to be one JSON object (see `whole`).
    pub(crate) fn reads_whole_body(&self) -> bool {
        self.whole.is_some()
    }

    /// The final chunk of a whole `chat.completion` body: everything it says at once.
    fn whole_answer(&mut self, body: &str) -> Result<ChatChunk, OllamaError> {
        let answer = whole::read(body)?;
        self.add_call_parts(&answer.calls);
        self.finish = answer.finish;
        self.usage = answer.usage;
        let mut last = self.final_chunk();
        if !answer.content.is_empty() || !answer.thinking.is_empty() {
            let message = last.message.get_or_insert_with(|| ResponseMessage { role: "assistant".into(), ..ResponseMessage::default() });
            message.content = answer.content;
            message.thinking = answer.thinking;
        }
        Ok(last)
    }

    /// Ends the event being read and decodes it.
    fn dispatch(&mut self) -> Result<Option<ChatChunk>, OllamaError> {
        let mut data = std::mem::take(&mut self.data);
        let event = std::mem::take(&mut self.event);
        if data.ends_with('\n') {
            data.pop();
        }
        if data.is_empty() || self.done {
            return Ok(None);
        }
        if event == "error" {
            let text = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| error_text(&v).or_else(|| error_text(&serde_json::json!({ "error": v }))))
                .unwrap_or_else(|| excerpt(&data, 500));
            return Err(OllamaError::Server(text));
        }
        if data.trim() == "[DONE]" {
            return Ok(Some(self.final_chunk()));
        }
        let payload: Value = serde_json::from_str(&data).map_err(|e| {
            OllamaError::Protocol(format!("an event that is not JSON ({e}): {}", excerpt(&data, 120)))
        })?;
        if let Some(error) = payload.get("error").filter(|e| !e.is_null()) {
            let text = error_text(&payload).unwrap_or_else(|| excerpt(&error.to_string(), 500));
            return Err(OllamaError::Server(text));
        }
        Ok(self.payload(&payload))
    }

    /// One `chat.completion.chunk`.
    fn payload(&mut self, payload: &Value) -> Option<ChatChunk> {
        if let Some(usage) = payload.get("usage").and_then(Value::as_object) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64);
            self.usage = (count("prompt_tokens"), count("completion_tokens"));
        }
        let choice = payload.get("choices")?.as_array()?.first()?;
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_owned());
        }
        // `message`: a proxy that sends the whole answer as one event
        let delta = choice.get("delta").or_else(|| choice.get("message"))?.as_object()?;
        let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let content = text("content");
        let thinking = [text("reasoning_content"), text("reasoning")].concat();
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        if let Some(calls) = calls {
            self.add_call_parts(calls);
        }
        if self.first_at.is_none() && (!content.is_empty() || !thinking.is_empty() || calls.is_some()) {
            self.first_at = Some(Instant::now());
        }
        if content.is_empty() && thinking.is_empty() {
            return None;
        }
        let message = ResponseMessage { role: "assistant".into(), content, thinking, ..ResponseMessage::default() };
        Some(ChatChunk { model: self.model.clone(), message: Some(message), ..ChatChunk::default() })
    }

    /// Adds the pieces of `delta.tool_calls` to the calls being assembled.
    fn add_call_parts(&mut self, parts: &[Value]) {
        for (position, part) in parts.iter().enumerate() {
            let index = part.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let call = self.calls.entry(index).or_default();
            if let Some(id) = part.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
                call.id = id.to_owned();
            }
            let Some(function) = part.get("function") else { continue };
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                if call.name.is_empty() {
                    call.name = name.to_owned();
                }
            }
            match function.get("arguments") {
                Some(Value::String(piece)) => call.arguments.push_str(piece),
                Some(Value::Null) | None => {}
                // a server that sends the arguments as an object sends them whole
                Some(whole) => call.arguments = whole.to_string(),
            }
        }
    }

    /// The `done: true` chunk: why it finished, the counts, the tool calls, the durations.
    fn final_chunk(&mut self) -> ChatChunk {
        self.done = true;
        let now = Instant::now();
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let calls: Vec<ToolCall> = std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, parts)| ToolCall {
                id: (!parts.id.is_empty()).then_some(parts.id),
                function: ToolCallFunction {
                    index: u32::try_from(index).ok(),
                    name: parts.name,
                    arguments: parse_arguments(&parts.arguments),
                },
            })
            .collect();
        let message = (!calls.is_empty()).then(|| ResponseMessage {
            role: "assistant".into(),
            tool_calls: calls,
            ..ResponseMessage::default()
        });
        ChatChunk {
            model: self.model.clone(),
            message,
            done: true,
            done_reason: Some(self.finish.take().unwrap_or_else(|| "stop".into())),
            prompt_eval_count: self.usage.0,
            eval_count: self.usage.1,
            total_duration: Some(ns(now.duration_since(self.sent_at))),
            prompt_eval_duration: self.first_at.map(|first| ns(first.duration_since(self.sent_at))),
            eval_duration: self.first_at.map(|first| ns(now.duration_since(first))),
            ..ChatChunk::default()
        }
    }
}

/// Tool-call arguments (a JSON string on this API) as the JSON value Ollama would send: `{}` for
/// none; text that is not JSON stays a string, which the tool check then refuses with a message
/// the model reads.
fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
