//! [`Client`]: the HTTP calls, timeouts, status handling and error mapping.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::client_config::{self, ClientConfig};
use super::error::{self, error_chain, root_cause, OllamaError};
use super::show::ShowResponse;
use super::stream::{excerpt, ChatStream};
use super::types::ChatRequest;

/// Cap on an error body read to build [`OllamaError::Status`].
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Cap on a whole JSON answer (`/api/show` with a long license/template is ~100 KB).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// Longest server text kept in an error message, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// A typed Ollama client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    /// The connection pool; the API key lives in its default headers, marked sensitive.
    pub(super) http: reqwest::Client,
    /// Normalised base URL without trailing slash, used in every error text.
    base_url: Arc<str>,
    /// For [`OllamaError::ConnectTimeout`] texts.
    connect_timeout: Duration,
    /// Per-read silence limit (see [`ClientConfig::idle_timeout`]).
    idle_timeout: Duration,
    /// Kept only to scrub it from any server text echoed into an error.
    pub(super) api_key: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client; fails on an unusable URL, a zero timeout or an API key that cannot be
    /// put in a header. No request is made.
    pub fn new(cfg: ClientConfig) -> Result<Client, OllamaError> {
        if cfg.base_url.trim().is_empty() {
            return Err(OllamaError::Config(
                "base_url is empty (use ClientConfig::from_env_host for OLLAMA_HOST rules)".into(),
            ));
        }
        if cfg.connect_timeout.is_zero() || cfg.idle_timeout.is_zero() {
            return Err(OllamaError::Config(
                "connect_timeout and idle_timeout must be > 0".into(),
            ));
        }
        let base_url = client_config::normalise(&cfg.base_url);
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
            OllamaError::Config(format!("base_url {base_url:?} is not a valid URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OllamaError::Config(format!(
                "base_url {base_url:?} must start with http:// or https://"
            )));
        }
        let api_key = cfg
            .api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        let mut headers = HeaderMap::new();
        if let Some(key) = &api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                OllamaError::Config(
                    "api_key contains characters that cannot be sent in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .default_headers(headers)
            .user_agent(concat!("ollama_bridge/", env!("CARGO_PKG_VERSION")));
        if parsed.host_str().is_some_and(client_config::is_loopback) {
            // A robot's HTTP(S)_PROXY must not capture the local Ollama (Go's client skips it too).
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            OllamaError::Config(format!("cannot build the HTTP client: {}", error_chain(&e)))
        })?;
        Ok(Client {
            http,
            base_url: base_url.into(),
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            api_key: api_key.map(Arc::from),
        })
    }

    /// The normalised base URL, e.g. `http://127.0.0.1:11434`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /api/chat` with `stream: true` (set here, whatever `req` says).
    ///
    /// Returns once the response headers arrived with a 2xx status; a non-2xx becomes
    /// [`OllamaError::Status`] carrying the `{"error": ...}` text (or the raw body, truncated).
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, OllamaError> {
        let url = self.endpoint("/api/chat");
        let mut req = req.clone();
        req.stream = true;
        let body = serde_json::to_vec(&req)
            .map_err(|e| OllamaError::Protocol(format!("cannot encode the chat request: {e}")))?;
        log::debug!(
            "POST {url}: model {} with {} message(s), {} bytes",
            req.model,
            req.messages.len(),
            body.len()
        );
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/x-ndjson")
            .body(body);
        let response = self.send(request).await?;
        Ok(ChatStream::new(
            response,
            self.idle_timeout,
            self.base_url.to_string(),
            req.model,
        )
        .with_secret(self.api_key.clone()))
    }

    /// `POST /api/show {"model": ..}`: capabilities, details and model info; a missing model is
    /// [`OllamaError::Status`] 404 (see [`OllamaError::is_model_not_found`]).
    pub async fn show(&self, model: &str) -> Result<ShowResponse, OllamaError> {
        let url = self.endpoint("/api/show");
        log::debug!("POST {url}: model {model}");
        let request = self
            .http
            .post(&url)
            .header(ACCEPT, "application/json")
            .json(&serde_json::json!({ "model": model }));
        self.get_json(request).await
    }

    /// `GET /api/version`: the server's version string, e.g. `0.12.3`. A cheap liveness check.
    pub async fn version(&self) -> Result<String, OllamaError> {
        #[derive(Deserialize)]
        struct Version {
            version: String,
        }
        let url = self.endpoint("/api/version");
        log::debug!("GET {url}");
        let v: Version = self
            .get_json(self.http.get(&url).header(ACCEPT, "application/json"))
            .await?;
        Ok(v.version)
    }

    pub(super) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends, waits for the headers (bounded), and turns a non-2xx status into an error.
    pub(super) async fn send(&self, request: RequestBuilder) -> Result<Response, OllamaError> {
        let wait = self.connect_timeout.saturating_add(self.idle_timeout);
        let response = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => return Err(self.stalled(true)),
            Ok(Err(e)) => return Err(self.transport_error(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = match self.read_body(response, MAX_ERROR_BODY).await {
            Ok(body) => body,
            Err(e) => {
                log::debug!(
                    "could not read the HTTP {status} body from {}: {e}",
                    self.base_url
                );
                Vec::new()
            }
        };
        let message = self.status_message(status, &body);
        log::debug!(
            "{} answered HTTP {}: {message}",
            self.base_url,
            status.as_u16()
        );
        Err(OllamaError::Status {
            code: status.as_u16(),
            message,
        })
    }

    /// Sends and decodes a whole (small) JSON answer.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, OllamaError> {
        let response = self.send(request).await?;
        let body = self.read_body(response, MAX_JSON_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| {
            let text = String::from_utf8_lossy(&body);
            OllamaError::Protocol(format!(
                "invalid JSON answer ({e}): {}",
                excerpt(&text, 120)
            ))
        })
    }

    /// Reads a body of at most `limit` bytes, each read bounded by the idle timeout.
    async fn read_body(
        &self,
        mut response: Response,
        limit: usize,
    ) -> Result<Vec<u8>, OllamaError> {
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Err(_) => return Err(self.stalled(false)),
                Ok(Err(e)) => {
                    return Err(OllamaError::Http(format!(
                        "reading the answer from {}: {}",
                        self.base_url,
                        error_chain(&e)
                    )))
                }
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(bytes))) if body.len() + bytes.len() > limit => {
                    return Err(OllamaError::Protocol(format!(
                        "the answer from {} is larger than {limit} bytes",
                        self.base_url
                    )))
                }
                Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
            }
        }
    }

    fn stalled(&self, awaiting_headers: bool) -> OllamaError {
        OllamaError::Stalled {
            url: self.base_url.to_string(),
            after: self.idle_timeout,
            awaiting_headers,
        }
    }

    /// Maps a failure of `send()` to the fault matrix.
    fn transport_error(&self, e: &reqwest::Error) -> OllamaError {
        let url = self.base_url.to_string();
        if e.is_connect() && e.is_timeout() {
            OllamaError::ConnectTimeout {
                url,
                after: self.connect_timeout,
            }
        } else if e.is_connect() {
            OllamaError::Connect {
                url,
                detail: self.redact(root_cause(e)),
            }
        } else if is_closed_by_peer(e) {
            // Accepted, then closed or reset before any answer (server restarting, crashed runner).
            OllamaError::Truncated {
                chunks: 0,
                detail: self.redact(root_cause(e)),
            }
        } else if e.is_builder() {
            OllamaError::Config(self.redact(error_chain(e)))
        } else {
            OllamaError::Http(self.redact(error_chain(e)))
        }
    }

    /// The `{"error": ..}` text of an error body, else the raw body (truncated), else the reason.
    fn status_message(&self, status: StatusCode, body: &[u8]) -> String {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let text = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) if !error.trim().is_empty() => error,
            _ => String::from_utf8_lossy(body).trim().to_owned(),
        };
        if text.is_empty() {
            return status
                .canonical_reason()
                .unwrap_or("no details given")
                .to_owned();
        }
        self.redact(excerpt(&text, MAX_MESSAGE_CHARS))
    }

    /// Removes the API key from text that came from elsewhere (defence in depth).
    fn redact(&self, text: String) -> String {
        match &self.api_key {
            Some(key) => error::scrub(text, key),
            None => text,
        }
    }
}

/// True if the peer closed or reset the connection before answering. hyper is not a direct
/// dependency, so its "incomplete message" error is recognised by its text.
fn is_closed_by_peer(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
            ) {
                return true;
            }
        }
        if cause
            .to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        source = cause.source();
    }
    false
}
