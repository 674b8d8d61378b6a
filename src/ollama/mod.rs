//! A typed, ROS-free client for Ollama's chat API (`/api/chat` streaming, `/api/show`,
//! `/api/version`) and model management (`/api/tags`, `/api/ps`, `/api/pull`).
//!
//! # Layout
//! In data-path order:
//! * `client_config`: [`ClientConfig`] (URL, connect and idle timeouts, API key, which `Debug`
//!   never shows) and `OLLAMA_HOST` normalisation ([`ClientConfig::from_env_host`]).
//! * `client`: [`Client`]: the HTTP calls (`chat_stream`, `show`, `version`), the status check
//!   before streaming, the header wait bound, and the mapping of transport failures.
//! * `stream`: [`ChatStream`]: the response body as [`ChatChunk`]s, with a stall deadline per
//!   read, `{"error"}` lines and cut connections turned into errors. Dropping it cancels.
//! * `ndjson`: [`LineReader`]: pure byte-level line splitting, UTF-8 decoded per whole line,
//!   lines capped at 8,000,000 bytes like Ollama's Go client.
//! * `models`: `/api/tags`, `/api/ps` and the streaming `/api/pull` ([`PullStream`]).
//! * `types`, `chunk`, `show`: serde types with Ollama's exact wire names: the chat request
//!   and messages; the streamed chunks; `/api/show`.
//! * `params`, `keep_alive`: the polymorphic request fields [`Format`], [`Think`] and
//!   [`KeepAlive`], with hand-written serde and parsers for parameter strings.
//! * `error`: [`OllamaError`], one variant per fault (connect, status, stall, truncation, ...).
//!
//! Tests: unit tests in each file; `client_tests` and `stream_tests` drive the client against
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

mod chunk;
mod client;
mod client_config;
mod error;
mod keep_alive;
mod models;
mod ndjson;
mod params;
mod show;
mod stream;
mod types;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod stream_tests;

pub use chunk::{ChatChunk, ResponseMessage};
pub use client::Client;
pub use client_config::{ClientConfig, DEFAULT_PORT};
pub use error::OllamaError;
pub use keep_alive::KeepAlive;
pub use models::{ListModelResponse, ProcessModelResponse, ProgressResponse, PullStream, PULL_IDLE_TIMEOUT};
pub use ndjson::{LineError, LineReader, MAX_LINE_BYTES};
pub use params::{Format, ParamError, Think, ThinkLevel};
pub use show::{ModelDetails, ShowResponse};
pub use stream::ChatStream;
pub use types::{ChatRequest, Message, Role, ToolCall, ToolCallFunction};
