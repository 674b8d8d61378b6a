//! Model management: `GET /api/tags` (installed models), `GET /api/ps` (loaded models) and
//! `POST /api/pull` (fetch a model, streaming [`ProgressResponse`] lines).
//!
//! Shapes and names are those of Ollama's `api/types.go` (`ListModelResponse`,
//! `ProcessModelResponse`, `ProgressResponse`) and the calls mirror `api/client.go`'s `List`,
//! `ListRunning` and `Pull`. A pull that fails after it started answers HTTP 200 and ends with an
//! `{"error": ...}` line (`server/routes.go` `PullHandler`); closing the connection cancels it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Client;
use super::error::{error_chain, OllamaError};
use super::ndjson::{LineError, LineReader};
use super::show::ModelDetails;
use super::stream::excerpt;
use super::types::null_default;

/// Longest silence accepted in a pull: Ollama sends nothing while it verifies a digest, which for
/// a 40 GB blob on a slow disk takes minutes (the chat idle timeout would cut it off).
pub const PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// One installed model, an entry of `GET /api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListModelResponse {
    /// e.g. `llama3.2:latest`.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Same as `name` on current servers.
    #[serde(deserialize_with = "null_default")]
    pub model: String,
    /// Bytes on disk.
    pub size: u64,
    #[serde(deserialize_with = "null_default")]
    pub digest: String,
    pub details: ModelDetails,
}

/// One loaded model, an entry of `GET /api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessModelResponse {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub model: String,
    /// Bytes in memory, of which `size_vram` on the GPU.
    pub size: u64,
    pub size_vram: u64,
    /// When it unloads (RFC 3339), as sent.
    #[serde(deserialize_with = "null_default")]
    pub expires_at: String,
    pub context_length: u64,
}

/// One progress line of `POST /api/pull`: `status` ("pulling manifest", "pulling <digest>",
/// "verifying sha256 digest", "writing manifest", "success"); byte counts while downloading a layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressResponse {
    #[serde(deserialize_with = "null_default")]
    pub status: String,
    #[serde(deserialize_with = "null_default")]
    pub digest: String,
    /// Bytes of the layer being downloaded (0 when the line is not about a layer).
    pub total: u64,
    pub completed: u64,
}

impl ProgressResponse {
    /// The last line of a successful pull.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// `{"models": [...]}` of `/api/tags` and `/api/ps` (`null` = none).
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
struct ModelList<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_default")]
    models: Vec<T>,
}

impl Client {
    /// `GET /api/tags`: the models installed on the server (Go client: `List`).
    pub async fn list(&self) -> Result<Vec<ListModelResponse>, OllamaError> {
        let url = self.endpoint("/api/tags");
        log::debug!("GET {url}");
        let list: ModelList<ListModelResponse> =
            self.get_json(self.http.get(&url).header(ACCEPT, "application/json")).await?;
        Ok(list.models)
    }

    /// `GET /api/ps`: the models loaded in memory now (Go client: `ListRunning`).
    pub async fn list_running(&self) -> Result<Vec<ProcessModelResponse>, OllamaError> {
        let url = self.endpoint("/api/ps");
        log::debug!("GET {url}");
        let list: ModelList<ProcessModelResponse> =
            self.get_json(self.http.get(&url).header(ACCEPT, "application/json")).await?;
        Ok(list.models)
    }

    /// `POST /api/pull {"model": .., "stream": true}`: returns once the response started; the
    /// progress lines come from [`PullStream::next_progress`]. An invalid name is refused with
    /// [`OllamaError::Status`] 400; most failures (unknown model, network) arrive as an error line.
    pub async fn pull(&self, model: &str) -> Result<PullStream, OllamaError> {
        let url = self.endpoint("/api/pull");
        log::debug!("POST {url}: model {model}");
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/x-ndjson")
            .json(&serde_json::json!({ "model": model, "stream": true }));
        let response = self.send(request).await?;
        Ok(PullStream {
            response: Some(response),
            reader: LineReader::new(),
            lines: VecDeque::new(),
            finished: false,
            url: self.base_url().to_owned(),
            secret: self.api_key.clone(),
        })
    }
}

/// The body of a streaming pull. Dropping it closes the connection, which cancels the pull in
/// Ollama (the handler's context ends with the request).
pub struct PullStream {
    /// The open body; `None` once it ended.
    response: Option<reqwest::Response>,
    reader: LineReader,
    /// Lines split off but not handed out yet.
    lines: VecDeque<Result<String, LineError>>,
    /// Set after `success` or an error.
    finished: bool,
    /// Base URL, for error texts.
    url: String,
    /// The API key, scrubbed from every error text.
    secret: Option<Arc<str>>,
}

impl PullStream {
    /// The next progress line; `None` after the `success` line or after an error. A body that
    /// ends without `success` is [`OllamaError::Truncated`]; silence longer than
    /// [`PULL_IDLE_TIMEOUT`] is [`OllamaError::Stalled`].
    pub async fn next_progress(&mut self) -> Option<Result<ProgressResponse, OllamaError>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(line) = self.lines.pop_front() {
                return Some(self.on_line(line));
            }
            let Some(response) = self.response.as_mut() else {
                return Some(Err(self.fail(OllamaError::Truncated {
                    chunks: 0,
                    detail: "the pull ended without a \"success\" line".into(),
                })));
            };
            match tokio::time::timeout(PULL_IDLE_TIMEOUT, response.chunk()).await {
                Err(_) => {
                    let url = self.url.clone();
                    let stalled = OllamaError::Stalled { url, after: PULL_IDLE_TIMEOUT, awaiting_headers: false };
                    return Some(Err(self.fail(stalled)));
                }
                Ok(Err(e)) => {
                    let detail = error_chain(&e);
                    return Some(Err(self.fail(OllamaError::Truncated { chunks: 0, detail })));
                }
                Ok(Ok(Some(bytes))) => {
                    let lines = self.reader.push(&bytes);
                    self.lines.extend(lines);
                }
                Ok(Ok(None)) => {
                    self.response = None;
                    self.lines.extend(self.reader.finish());
                }
            }
        }
    }

    fn on_line(&mut self, line: Result<String, LineError>) -> Result<ProgressResponse, OllamaError> {
        let parsed = match line {
            Ok(text) => parse_progress(&text),
            Err(e) => Err(OllamaError::Protocol(format!("{e} in the pull stream from {}", self.url))),
        };
        match parsed {
            Ok(progress) => {
                self.finished = progress.is_success();
                Ok(progress)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Ends the stream (closing the connection) and returns `err` without the API key.
    fn fail(&mut self, err: OllamaError) -> OllamaError {
        self.finished = true;
        self.response = None;
        self.lines.clear();
        match &self.secret {
            Some(secret) => err.redacted(secret),
            None => err,
        }
    }
}

/// One pull line: `{"error": ..}` (checked first, as Ollama's Go client does) is
/// [`OllamaError::Server`]; a progress line must have a `status`.
fn parse_progress(line: &str) -> Result<ProgressResponse, OllamaError> {
    let bad = |why: String| OllamaError::Protocol(format!("{why}: {}", excerpt(line, 120)));
    let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON line ({e})")))?;
    match value.get("error") {
        Some(Value::String(msg)) if !msg.is_empty() => return Err(OllamaError::Server(msg.clone())),
        Some(Value::Null | Value::String(_)) | None => {}
        Some(other) => return Err(OllamaError::Server(other.to_string())),
    }
    if !value.get("status").is_some_and(Value::is_string) {
        return Err(bad("line is neither pull progress nor an error".into()));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("malformed pull progress ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ollama::client_tests::client;
    use crate::ollama::fake_server::{chunk, end_chunks, json_reply, ndjson_head, Event, FakeServer, Step};
    use serde_json::json;

    fn line(v: Value) -> Step {
        chunk(format!("{v}\n").as_bytes())
    }

    #[tokio::test]
    async fn tags_and_ps_are_read_with_ollamas_field_names() {
        let tags = json!({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189u64,
            "digest": "a80c4f17acd5", "modified_at": "2025-01-01T00:00:00Z",
            "details": {"format": "gguf", "family": "llama", "families": null, "parameter_size": "3.2B"}}]});
        let ps = json!({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 3, "size_vram": 2,
            "expires_at": "2025-01-01T00:05:00Z", "context_length": 4096, "details": {}}]});
        let server = FakeServer::start(vec![
            vec![json_reply(200, "OK", &tags)],
            vec![json_reply(200, "OK", &ps)],
            vec![json_reply(200, "OK", &json!({"models": null}))],
        ])
        .await;
        let c = client(&server.url);
        let listed = c.list().await.unwrap();
        assert_eq!((listed[0].name.as_str(), listed[0].size), ("llama3.2:latest", 2019393189));
        assert_eq!(listed[0].details.parameter_size, "3.2B");
        let running = c.list_running().await.unwrap();
        assert_eq!((running[0].size_vram, running[0].context_length), (2, 4096));
        assert!(c.list().await.unwrap().is_empty(), "null models is an empty list");
    }

    #[tokio::test]
    async fn pull_yields_progress_until_success_and_sends_stream_true() {
        let mut server = FakeServer::start(vec![vec![
            ndjson_head(),
            line(json!({"status": "pulling manifest"})),
            line(json!({"status": "pulling aabb", "digest": "sha256:aabb", "total": 100, "completed": 40})),
            line(json!({"status": "success"})),
            end_chunks(),
        ]])
        .await;
        let mut pull = client(&server.url).pull("llama3.2").await.unwrap();
        let request = server.request().await;
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/pull"));
        assert_eq!(request.json(), json!({"model": "llama3.2", "stream": true}));
        let mut got = Vec::new();
        while let Some(progress) = pull.next_progress().await {
            got.push(progress.unwrap());
        }
        assert_eq!(got.len(), 3);
        assert_eq!((got[1].completed, got[1].total, got[1].digest.as_str()), (40, 100, "sha256:aabb"));
        assert!(got[2].is_success());
    }

    #[tokio::test]
    async fn pull_errors_an_error_line_a_cut_and_a_400() {
        let server = FakeServer::start(vec![
            vec![ndjson_head(), line(json!({"status": "pulling manifest"})),
                 line(json!({"error": "pull model manifest: file does not exist"})), end_chunks()],
            vec![ndjson_head(), line(json!({"status": "pulling manifest"})), end_chunks()],
            vec![json_reply(400, "Bad Request", &json!({"error": "invalid model name"}))],
        ])
        .await;
        let c = client(&server.url);
        let mut pull = c.pull("nope").await.unwrap();
        assert!(pull.next_progress().await.unwrap().is_ok());
        assert_eq!(pull.next_progress().await, Some(Err(OllamaError::Server("pull model manifest: file does not exist".into()))));
        assert!(pull.next_progress().await.is_none(), "an error ends the stream");
        let mut cut = c.pull("cut").await.unwrap();
        assert!(cut.next_progress().await.unwrap().is_ok());
        assert!(matches!(cut.next_progress().await, Some(Err(OllamaError::Truncated { .. }))));
        match c.pull("bad name!").await {
            Err(OllamaError::Status { code: 400, message }) => assert_eq!(message, "invalid model name"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a 400 must be an error"),
        }
    }

    #[tokio::test]
    async fn dropping_a_pull_closes_the_connection() {
        let mut server = FakeServer::start(vec![vec![
            ndjson_head(),
            line(json!({"status": "pulling manifest"})),
            Step::AwaitClientClose(Duration::from_secs(3)),
        ]])
        .await;
        let mut pull = client(&server.url).pull("big").await.unwrap();
        assert!(pull.next_progress().await.unwrap().is_ok());
        drop(pull);
        let closed = tokio::time::timeout(Duration::from_secs(5), server.events.recv()).await.unwrap();
        assert_eq!(closed, Some(Event::ClientClosed(true)));
    }

    #[test]
    fn garbage_lines_are_protocol_errors() {
        for garbage in ["not json", "{}", r#"{"status": 3}"#, "[1]"] {
            assert!(matches!(parse_progress(garbage), Err(OllamaError::Protocol(_))), "{garbage}");
        }
    }
}
