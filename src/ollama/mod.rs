//! A typed, ROS-free client for Ollama's chat API (`/api/chat` streaming, `/api/show`,
//! `/api/version`), and for the OpenAI-compatible API of other engines behind the same calls
//! ([`Api::OpenAi`], module `openai`).
//!
//! # Layout
//! In data-path order:
//! * `client_config`: [`ClientConfig`] (URL, connect/load/idle timeouts, API key; `Debug` shows
//!   neither key nor password) and `OLLAMA_HOST` normalisation ([`ClientConfig::from_env_host`]).
//! * `credentials`: user info in the URL sent as HTTP Basic auth, [`redact_url`] for every
//!   URL the node writes, and the secrets scrubbed from every error text.
//! * `client`: [`Client`]: construction and the chat, `show` and `version` calls.
//! * `send`: the bounded header wait, the one re-send on a new connection when a pooled one
//!   was already closed, status errors and transport failures mapped to [`OllamaError`].
//! * `models`: `tags`, `ps`, `pull` ([`PullStream`]), `load` and `unload`.
//! * `stream`: [`ChatStream`]: the body as [`ChatChunk`]s; where an answer ends (done line,
//!   error line, clean end, cut). Dropping it cancels.
//! * `body`: the body as NDJSON lines under the load limit (until the first line) and the idle
//!   limit (between reads), shared by the chat and pull streams.
//! * `ndjson`: [`LineReader`]: pure byte-level line splitting with the line rules and the
//!   8,000,000-byte buffer of Ollama's Go client.
//! * `wire`, `go_json`, `go_text`: a line read as Ollama's Go client reads it (`error` first,
//!   then Go `encoding/json` rules: case-insensitive keys, last duplicate wins, `null` no-op,
//!   U+FFFD for invalid UTF-8 and unpaired surrogate escapes).
//! * `types`, `chunk`, `show`: serde types with Ollama's exact wire names: the chat request
//!   and messages; the streamed chunks; `/api/show`.
//! * `params`, `keep_alive`: the polymorphic request fields [`Format`], [`Think`] and
//!   [`KeepAlive`], with hand-written serde and parsers for parameter strings.
//! * `error`: [`OllamaError`], one variant per fault (connect, status, stall, truncation, ...).
//! * `openai`: the OpenAI-compatible wire (`/v1/chat/completions` as server-sent events, or one
//!   whole `chat.completion` body when a server ignored `stream: true`; `/v1/models`) mapped to
//!   the same requests, chunks and errors; [`Client`] switches to it
//!   when [`ClientConfig::api`] is [`Api::OpenAi`].
//!
//! Tests: unit tests in each file; `chunk_tests` (a table of line variants, in memory);
//! `client_tests`, `connection_tests` (stale pooled connections, time limits), `error_tests`,
//! `credentials_tests`, `stream_tests` and `models_tests` drive the client against
//! `fake_server`, a raw-bytes HTTP server on 127.0.0.1:0.
//!
//! Nothing here depends on ROS; logging goes through the `log` crate (chunks at debug).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ollama_bridge::ollama::OllamaError> {
//! use ollama_bridge::ollama::{ChatRequest, Client, ClientConfig, Message, Think};
//! let client = Client::new(ClientConfig::from_env())?;
//! let mut req = ChatRequest::new("llama3.2", vec![Message::user("Hello!")]);
//! req.think = Some(Think::Bool(false));
//! let mut stream = client.chat_stream(&req).await?;
//! while let Some(chunk) = stream.next_chunk().await {
//!     print!("{}", chunk?.content());
//! }
//! # Ok(()) }
//! ```

mod body;
mod chunk;
mod client;
mod client_config;
mod credentials;
mod error;
mod go_json;
mod go_text;
mod keep_alive;
mod models;
mod ndjson;
mod openai;
mod params;
mod send;
mod show;
mod stream;
mod types;
mod wire;

#[cfg(test)]
mod chunk_tests;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod connection_tests;
#[cfg(test)]
mod credentials_tests;
#[cfg(test)]
pub(crate) mod fake_server;
#[cfg(test)]
mod models_tests;
#[cfg(test)]
mod stream_tests;

#[cfg(test)]
pub(crate) use body::Limits;
pub use chunk::{ChatChunk, ResponseMessage, DONE_REASON_END_OF_STREAM};
pub use client::Client;
pub use client_config::{Api, ClientConfig, DEFAULT_LOAD_TIMEOUT, DEFAULT_PORT};
pub use credentials::{is_redacted, redact_secrets, redact_url, REDACTED_PASSWORD};
pub use error::{OllamaError, StallLimit};
pub use keep_alive::KeepAlive;
pub use models::{same_model, PullProgress, PullStream, RunningModel};
pub use ndjson::{Line, LineError, LineReader, MAX_LINE_BYTES};
pub use params::{Format, ParamError, Think, ThinkLevel};
pub use show::{ModelDetails, ShowResponse};
pub use stream::ChatStream;
pub use types::{ChatRequest, Message, Role, ToolCall, ToolCallFunction};
