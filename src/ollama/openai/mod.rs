//! The OpenAI-compatible wire (`api: openai`): the same [`Client`] calls, answered by
//! `POST /v1/chat/completions` and `GET /v1/models` of vLLM, SGLang, TGI, llama.cpp's server,
//! LiteLLM or Ollama's own `/v1`, and mapped to the same [`ChatChunk`]s and [`OllamaError`]s.
//!
//! * `request`: a [`ChatRequest`] as the OpenAI body (messages, images, tool calls, options,
//!   `format`).
//! * `sse`: the streamed answer (server-sent events) as chunks, with the counts and measured
//!   durations on the final one.
//! * `whole`: the answer of a server that ignored `stream: true` (one `chat.completion`
//!   object), read when the body ends into one final chunk.
//! * here: the calls. `chat_stream` → `/v1/chat/completions`; `tags` → the ids of `/v1/models`;
//!   `ps` → the same (an engine serves the models it has loaded); `show` → the model's entry:
//!   its context length from `max_model_len` (vLLM) or `meta.n_ctx` (llama.cpp's server), its
//!   capabilities `completion` and `tools` (the API does not say; a server that cannot use tools
//!   answers the request with an error) and `vision` unless the entry lists
//!   `architecture.input_modalities` without `image`; a model not listed is a 404; `version` →
//!   `openai` once `/v1/models` answers; `load` → the model check, answered as a load;
//!   `pull` and `unload` → [`OllamaError::Unsupported`]. Error bodies (`{"error": {"message":
//!   ..}}`) are read by `send`.

mod request;
mod sse;
mod whole;

#[cfg(test)]
mod sse_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod whole_tests;

pub(crate) use sse::SseDecoder;

use std::time::Instant;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};

use super::body::Limits;
use super::chunk::ChatChunk;
use super::client::Client;
use super::error::{OllamaError, StallLimit};
use super::show::ShowResponse;
use super::stream::ChatStream;
use super::types::ChatRequest;

/// What `GET /v1/models` says about one model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelCard {
    /// `id`, the name requests use.
    pub id: String,
    /// Other names the server takes for it (`aliases`, llama.cpp's server).
    pub aliases: Vec<String>,
    /// The context window the engine serves, when it says.
    pub context_length: Option<u64>,
    /// `architecture.input_modalities` contains `image`; `None` when not listed.
    pub vision: Option<bool>,
}

impl ModelCard {
    fn from_json(entry: &Value) -> ModelCard {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let modalities = entry.pointer("/architecture/input_modalities").and_then(Value::as_array);
        ModelCard {
            id: entry.get("id").and_then(text).unwrap_or_default(),
            aliases: entry.get("aliases").and_then(Value::as_array).map(|a| a.iter().filter_map(text).collect())
                .unwrap_or_default(),
            context_length: entry.get("max_model_len").and_then(Value::as_u64)
                .or_else(|| entry.pointer("/meta/n_ctx").and_then(Value::as_u64)),
            vision: modalities.map(|m| m.iter().any(|x| x.as_str() == Some("image"))),
        }
    }

    /// True if `model` names this entry (see [`super::same_model`]).
    pub fn is(&self, model: &str) -> bool {
        std::iter::once(&self.id).chain(&self.aliases).any(|name| super::same_model(name, model))
    }
}

impl Client {
    /// `POST /v1/chat/completions` with `stream: true`; see [`Client::chat_stream`].
    pub(super) async fn openai_chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, OllamaError> {
        let url = self.endpoint("/v1/chat/completions");
        let body = serde_json::to_vec(&request::body(req))
            .map_err(|e| OllamaError::Protocol(format!("cannot encode the chat request: {e}")))?;
        log::debug!("POST {url}: model {} with {} message(s), {} bytes", req.model, req.messages.len(), body.len());
        let sent_at = Instant::now();
        let (response, first_line_by) = self
            .send(
                |http| {
                    http.post(&url)
                        .header(CONTENT_TYPE, "application/json")
                        .header(ACCEPT, "text/event-stream")
                        .body(body.clone())
                },
                StallLimit::Load,
            )
            .await?;
        let limits = Limits { first_line_by, load: self.load_timeout, idle: self.idle_timeout, idle_limit: StallLimit::Idle };
        let sse = SseDecoder::new(&req.model, sent_at);
        Ok(ChatStream::server_sent_events(response, limits, self.shown.to_string(), self.secrets.clone(), req.model.clone(), sse))
    }

    /// `GET /v1/models`: every model the server serves.
    pub(crate) async fn openai_models(&self) -> Result<Vec<ModelCard>, OllamaError> {
        let list: Value = self.get_endpoint_json("/v1/models").await?;
        let data = list.get("data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(data.iter().map(ModelCard::from_json).collect())
    }

    /// `model`'s entry of `/v1/models` as an `/api/show` answer; a 404 when it is not listed.
    pub(super) async fn openai_show(&self, model: &str) -> Result<ShowResponse, OllamaError> {
        let cards = self.openai_models().await?;
        let Some(card) = cards.iter().find(|c| c.is(model)) else {
            let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
            return Err(OllamaError::Status {
                code: 404,
                message: format!("model '{model}' not found: GET /v1/models lists {}", listed(&ids)),
            });
        };
        let mut capabilities = vec!["completion".to_owned(), "tools".to_owned()];
        if card.vision != Some(false) {
            capabilities.push("vision".into());
        }
        let model_info = match card.context_length {
            Some(n) => json!({ "openai.context_length": n }),
            None => Value::Null,
        };
        Ok(ShowResponse { capabilities, model_info, ..ShowResponse::default() })
    }

    /// The model check, answered as Ollama answers a load (`done_reason: "load"`): an engine's
    /// models are loaded while it serves them.
    pub(super) async fn openai_load(&self, model: &str) -> Result<ChatChunk, OllamaError> {
        self.openai_show(model).await?;
        Ok(ChatChunk { model: model.to_owned(), done: true, done_reason: Some("load".into()), ..ChatChunk::default() })
    }

    /// The error for a call the OpenAI API does not have.
    pub(super) fn unsupported(&self, what: &str, instead: &str) -> OllamaError {
        OllamaError::Unsupported(format!(
            "{what} is not part of the OpenAI-compatible API of {} (api: openai): {instead}",
            self.shown
        ))
    }
}

/// `a, b, c` (or `no model`), at most 10 names.
fn listed(ids: &[&str]) -> String {
    match ids.len() {
        0 => "no model".into(),
        n if n > 10 => format!("{}, ... ({n} models)", ids[..10].join(", ")),
        _ => ids.join(", "),
    }
}
