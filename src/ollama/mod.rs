//! A typed, ROS-free client for Ollama's chat API (`/api/chat` streaming, `/api/show`,
//! `/api/version`).
//!
//! # Layout
//! Data flows top to bottom:
//! * `client`: [`Client`] and [`ClientConfig`]: connection settings, the HTTP calls, status
//!   checks, connect and idle timeouts, the API key (never shown in `Debug`, logs or errors).
//! * `stream`: [`ChatStream`]: the response body as [`ChatChunk`]s, with a stall deadline per
//!   read, `{"error"}` lines and cut connections turned into errors. Dropping it cancels.
//! * `ndjson`: [`LineReader`]: pure byte-level line splitting, UTF-8 decoded per whole line,
//!   lines capped at 8,000,000 bytes like Ollama's Go client.
//! * `types` / `params`: serde types with Ollama's exact wire names; the polymorphic request
//!   fields [`Format`], [`KeepAlive`] and [`Think`] with their parameter-string parsers.
//! * `error`: [`OllamaError`], one variant per fault (connect, status, stall, truncation, ...).
//! * `host`: `OLLAMA_HOST` normalisation ([`ClientConfig::from_env_host`]).
//!
//! Nothing here depends on ROS; logging goes through the `log` crate (chunks at debug).
//!
//! ```ignore
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

mod client;
mod error;
mod host;
mod ndjson;
mod params;
mod stream;
mod types;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod stream_tests;

pub use client::{Client, ClientConfig};
pub use error::OllamaError;
pub use host::DEFAULT_PORT;
pub use ndjson::{LineError, LineReader, MAX_LINE_BYTES};
pub use params::{Format, KeepAlive, ParamError, Think, ThinkLevel};
pub use stream::ChatStream;
pub use types::{
    ChatChunk, ChatRequest, Message, ModelDetails, ResponseMessage, Role, ShowResponse, ToolCall,
    ToolCallFunction,
};
