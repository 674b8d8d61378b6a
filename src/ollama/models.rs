//! Model management: `GET /api/tags` ([`Client::tags`]), `GET /api/ps` ([`Client::ps`]),
//! `POST /api/pull` as a stream of progress ([`Client::pull`], [`PullStream`]), and loading or
//! unloading a model with an empty `/api/chat` ([`Client::load`], [`Client::unload`]).
//!
//! Shapes from Ollama's `api/types.go` (`ListResponse`, `ProcessResponse`, `ProgressResponse`)
//! and `docs/api.md` ("Load a model": empty `messages` answers `done_reason: "load"`, with
//! `keep_alive: 0` `"unload"`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FusedStream, Stream};
use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};

use super::body::{byte_stream, Event, Limits, LineBody};
use super::chunk::{parse_line, ChatChunk};
use super::client::Client;
use super::client_config::Api;
use super::credentials::Secrets;
use super::error::{OllamaError, StallLimit};
use super::go_json::go_struct;
use super::keep_alive::KeepAlive;
use super::ndjson::Line;
use super::show::ModelDetails;
use super::types::{null_default, ChatRequest};
use super::wire::parse_wire_line;

/// One model the server is running (`/api/ps`). Every field defaults; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningModel {
    /// Name with tag, e.g. `llama3.2:latest`.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Usually the same as `name`.
    #[serde(deserialize_with = "null_default")]
    pub model: String,
    /// Bytes in memory.
    pub size: u64,
    /// Bytes of it in GPU memory.
    pub size_vram: u64,
    /// When it will be unloaded (RFC 3339), as sent.
    #[serde(deserialize_with = "null_default")]
    pub expires_at: String,
    /// Context length it was loaded with (newer servers).
    pub context_length: u64,
    /// Format, family, size and quantisation.
    pub details: ModelDetails,
}

/// One line of `/api/pull`: a phase (`pulling manifest`, `pulling <digest>`, `verifying sha256
/// digest`, `writing manifest`, `success`) with byte counts while a layer downloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    /// What the server is doing; `success` on the last line.
    pub status: String,
    /// The layer being downloaded (`sha256:...`), when there is one.
    pub digest: String,
    /// Bytes of the layer, when known.
    pub total: Option<u64>,
    /// Bytes of the layer downloaded so far, when known.
    pub completed: Option<u64>,
}

impl PullProgress {
    /// True on the line that ends a successful pull.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

go_struct!(PullProgress { status, digest, total, completed });

impl Client {
    /// `GET /api/tags`: the names of the models the server has (`llama3.2:latest`, ...). With
    /// [`Api::OpenAi`]: the ids of `GET /v1/models`.
    pub async fn tags(&self) -> Result<Vec<String>, OllamaError> {
        if self.api == Api::OpenAi {
            return Ok(self.openai_models().await?.into_iter().map(|card| card.id).collect());
        }
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default, deserialize_with = "null_default")]
            models: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Named {
            #[serde(default, deserialize_with = "null_default")]
            name: String,
        }
        let tags: Tags = self.get_endpoint_json("/api/tags").await?;
        Ok(tags.models.into_iter().map(|m| m.name).collect())
    }

    /// `GET /api/ps`: the models loaded in memory now. With [`Api::OpenAi`]: every model of
    /// `GET /v1/models` (an engine serves the models it has loaded), with its context length.
    pub async fn ps(&self) -> Result<Vec<RunningModel>, OllamaError> {
        if self.api == Api::OpenAi {
            let cards = self.openai_models().await?;
            let running = cards.into_iter().map(|card| RunningModel {
                name: card.id.clone(),
                model: card.id,
                context_length: card.context_length.unwrap_or(0),
                ..RunningModel::default()
            });
            return Ok(running.collect());
        }
        #[derive(Deserialize)]
        struct Ps {
            #[serde(default, deserialize_with = "null_default")]
            models: Vec<RunningModel>,
        }
        let ps: Ps = self.get_endpoint_json("/api/ps").await?;
        Ok(ps.models)
    }

    /// `POST /api/pull {"model": .., "stream": true}`: the download as a [`PullStream`] of
    /// progress lines, ending after the `success` line or with the server's error text
    /// ([`OllamaError::Server`], e.g. `pull model manifest: file does not exist`). Dropping the
    /// stream closes the connection, which stops the pull. A pull can be silent for minutes
    /// (checking a large layer's digest), so `load_timeout`, not `idle_timeout`, bounds every
    /// wait of it.
    ///
    /// With [`Api::OpenAi`]: [`OllamaError::Unsupported`] (engines load what they are started with).
    pub async fn pull(&self, model: &str) -> Result<PullStream, OllamaError> {
        if self.api == Api::OpenAi {
            return Err(self.unsupported("pulling a model", "start the engine with the model instead"));
        }
        let url = self.endpoint("/api/pull");
        log::debug!("POST {url}: model {model}");
        let body = serde_json::json!({ "model": model, "stream": true });
        let (response, first_line_by) = self
            .send(
                |http| {
                    http.post(&url)
                        .header(ACCEPT, "application/x-ndjson")
                        .json(&body)
                },
                StallLimit::Load,
            )
            .await?;
        let limits = Limits {
            first_line_by,
            load: self.load_timeout,
            idle: self.load_timeout,
            idle_limit: StallLimit::Load,
        };
        Ok(PullStream {
            body: LineBody::new(byte_stream(response), limits),
            finished: false,
            lines: 0,
            url: self.shown.to_string(),
            secrets: self.secrets.clone(),
        })
    }

    /// Loads `model` into memory (an `/api/chat` with no messages) and keeps it for
    /// `keep_alive` (`None` = the server's default). Returns Ollama's answer: `done_reason`
    /// `load`, `load_duration` set. The wait is bounded by `connect_timeout + load_timeout`.
    /// With [`Api::OpenAi`]: the model check of `GET /v1/models` (engines keep their models
    /// loaded), answered the same way; `keep_alive` has no equivalent.
    pub async fn load(
        &self,
        model: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<ChatChunk, OllamaError> {
        if self.api == Api::OpenAi {
            return self.openai_load(model).await;
        }
        let mut req = ChatRequest::new(model, Vec::new());
        req.keep_alive = keep_alive;
        self.chat_once(&req).await
    }

    /// Unloads `model` from memory now (an `/api/chat` with no messages and `keep_alive: 0`);
    /// Ollama answers `done_reason: "unload"`. With [`Api::OpenAi`]: [`OllamaError::Unsupported`].
    pub async fn unload(&self, model: &str) -> Result<ChatChunk, OllamaError> {
        if self.api == Api::OpenAi {
            return Err(self.unsupported("unloading a model", "the engine keeps its models loaded"));
        }
        self.load(model, Some(KeepAlive::For(Duration::ZERO))).await
    }

    /// A non-streamed chat: one JSON answer, read with the stream's line rules.
    async fn chat_once(&self, req: &ChatRequest) -> Result<ChatChunk, OllamaError> {
        let (response, _) = self.start_chat(req, "application/json").await?;
        let body = self.read_body(response, 1 << 20).await?;
        parse_line(body.trim_ascii()).map_err(|e| self.secrets.redact(e))
    }
}

/// Whether two model names mean the same model: case-insensitive, a missing tag is `latest`
/// (Ollama's `types/model/name.go` defaults).
pub fn same_model(a: &str, b: &str) -> bool {
    fn full(name: &str) -> String {
        let name = name.trim().to_ascii_lowercase();
        let tagged = name.rsplit('/').next().is_some_and(|last| last.contains(':'));
        if tagged { name } else { name + ":latest" }
    }
    full(a) == full(b)
}

/// A pull in progress: [`PullProgress`] lines until `success` (then `None`), or an error.
/// Dropping it cancels the pull.
pub struct PullStream {
    /// The response body as lines.
    body: LineBody,
    /// Set after `success` or an error.
    finished: bool,
    /// Lines received (for "cut before any progress").
    lines: usize,
    /// Base URL (password redacted) for texts.
    url: String,
    /// Removed from error texts.
    secrets: Secrets,
}

impl fmt::Debug for PullStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullStream")
            .field("url", &self.url)
            .field("lines", &self.lines)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl PullStream {
    /// The next progress line; `None` after `success` or after an error.
    pub async fn next_progress(&mut self) -> Option<Result<PullProgress, OllamaError>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    fn end(&mut self, err: OllamaError) -> OllamaError {
        self.finished = true;
        self.body.close();
        let err = self.secrets.redact(err);
        log::debug!("pull from {} failed: {err}", self.url);
        err
    }

    fn on_line(&mut self, line: Line, last: bool) -> Result<PullProgress, OllamaError> {
        let parsed = line
            .map_err(|e| OllamaError::Protocol(format!("{e} in the pull stream from {}", self.url)))
            .and_then(|bytes| parse_wire_line::<PullProgress>(&bytes, "pull progress line"));
        match parsed {
            Ok(progress) => {
                self.lines += 1;
                if progress.is_success() {
                    self.finished = true;
                    self.body.close();
                }
                Ok(progress)
            }
            Err(OllamaError::Protocol(_)) if last => Err(self.end(OllamaError::Truncated {
                chunks: self.lines,
                detail: "connection closed mid-line".into(),
            })),
            Err(e) => Err(self.end(e)),
        }
    }
}

impl Stream for PullStream {
    type Item = Result<PullProgress, OllamaError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let item = match std::task::ready!(this.body.poll_event(cx)) {
            Event::Line(line) => this.on_line(line, false),
            Event::Tail(line) => this.on_line(line, true),
            // Unlike a chat answer, a pull that never said `success` did not demonstrably finish.
            Event::End => Err(this.end(OllamaError::Truncated {
                chunks: this.lines,
                detail: "the pull ended without its success line".into(),
            })),
            Event::Cut(detail) => Err(this.end(OllamaError::Truncated {
                chunks: this.lines,
                detail,
            })),
            Event::Stalled { limit, after } => Err(this.end(OllamaError::Stalled {
                url: this.url.clone(),
                after,
                limit,
                awaiting_headers: false,
            })),
        };
        Poll::Ready(Some(item))
    }
}

impl FusedStream for PullStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}
