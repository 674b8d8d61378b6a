//! Sending a request: the bounded wait for the headers, the one re-send when a pooled
//! connection turns out to be closed, status errors, and transport failures mapped to
//! [`OllamaError`] variants.

use reqwest::header::ACCEPT;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::{timeout, timeout_at, Instant};

use super::body::instant_after;
use super::client::Client;
use super::error::{error_chain, root_cause, OllamaError, StallLimit};
use super::stream::excerpt;

/// Cap on an error body read to build [`OllamaError::Status`].
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Cap on a whole JSON answer (`/api/show` with a long license/template is ~100 KB).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// Longest server text kept in an error message, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

impl Client {
    /// Sends the request `build` makes and waits for its headers until `connect_timeout` plus
    /// the `limit` duration; returns the 2xx response and that deadline (a stream's first line
    /// is due by then too). A non-2xx status is [`OllamaError::Status`].
    ///
    /// A request whose connection closed before any response arrived (hyper's "connection
    /// closed before message completed", a reset or a broken pipe: what a pooled keep-alive
    /// connection does when the server closed it just as the request went out) is sent once
    /// more on a new connection, whatever the caller's retry count: nothing was received, so
    /// nothing can be duplicated. hyper reports a response cut inside its status line or
    /// headers the same way, so such a request is re-sent too; a response whose headers were
    /// complete never is.
    pub(super) async fn send<F>(
        &self,
        build: F,
        limit: StallLimit,
    ) -> Result<(Response, Instant), OllamaError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let wait = match limit {
            StallLimit::Load => self.load_timeout,
            StallLimit::Idle => self.idle_timeout,
        };
        let deadline = instant_after(Instant::now(), self.connect_timeout.saturating_add(wait));
        let stalled = || OllamaError::Stalled {
            url: self.shown.to_string(),
            after: wait,
            limit,
            awaiting_headers: true,
        };
        let response = match timeout_at(deadline, build(&self.http).send()).await {
            Err(_) => return Err(stalled()),
            Ok(Err(e)) if closed_before_response(&e) => {
                log::debug!(
                    "{}: the connection closed before any response ({}); sending once more on a new connection",
                    self.shown,
                    self.secrets.scrub(root_cause(&e))
                );
                match timeout_at(deadline, build(&self.fresh).send()).await {
                    Err(_) => return Err(stalled()),
                    Ok(sent) => sent.map_err(|e| self.transport_error(&e))?,
                }
            }
            Ok(sent) => sent.map_err(|e| self.transport_error(&e))?,
        };
        let status = response.status();
        if status.is_success() {
            return Ok((response, deadline));
        }
        let body = match self.read_body(response, MAX_ERROR_BODY).await {
            Ok(body) => body,
            Err(e) => {
                log::debug!(
                    "could not read the HTTP {status} body from {}: {e}",
                    self.shown
                );
                Vec::new()
            }
        };
        let message = self.status_message(status, &body);
        log::debug!(
            "{} answered HTTP {}: {message}",
            self.shown,
            status.as_u16()
        );
        Err(OllamaError::Status {
            code: status.as_u16(),
            message,
        })
    }

    /// Sends a quick call (headers within `connect_timeout + idle_timeout`) and decodes its
    /// whole (small) JSON answer.
    pub(super) async fn get_json<T, F>(&self, build: F) -> Result<T, OllamaError>
    where
        T: DeserializeOwned,
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let (response, _) = self.send(build, StallLimit::Idle).await?;
        let body = self.read_body(response, MAX_JSON_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| {
            let text = String::from_utf8_lossy(&body);
            OllamaError::Protocol(self.secrets.scrub(format!(
                "invalid JSON answer ({e}): {}",
                excerpt(&text, 120)
            )))
        })
    }

    /// `GET path` (e.g. `/api/tags`) with `Accept: application/json`, logged at debug, its
    /// answer decoded as by [`Client::get_json`].
    pub(super) async fn get_endpoint_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, OllamaError> {
        let url = self.endpoint(path);
        log::debug!("GET {url}");
        self.get_json(|http| http.get(&url).header(ACCEPT, "application/json")).await
    }

    /// Reads a body of at most `limit` bytes, each read bounded by the idle timeout.
    pub(super) async fn read_body(
        &self,
        mut response: Response,
        limit: usize,
    ) -> Result<Vec<u8>, OllamaError> {
        let mut body = Vec::new();
        loop {
            match timeout(self.idle_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(OllamaError::Stalled {
                        url: self.shown.to_string(),
                        after: self.idle_timeout,
                        limit: StallLimit::Idle,
                        awaiting_headers: false,
                    })
                }
                Ok(Err(e)) => {
                    return Err(OllamaError::Http(self.secrets.scrub(format!(
                        "reading the answer from {}: {}",
                        self.shown,
                        error_chain(&e)
                    ))))
                }
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(bytes))) if body.len() + bytes.len() > limit => {
                    return Err(OllamaError::Protocol(format!(
                        "the answer from {} is larger than {limit} bytes",
                        self.shown
                    )))
                }
                Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
            }
        }
    }

    /// Maps a failure of `send()` to the fault matrix.
    fn transport_error(&self, e: &reqwest::Error) -> OllamaError {
        let url = self.shown.to_string();
        let err = if e.is_connect() && e.is_timeout() {
            OllamaError::ConnectTimeout {
                url,
                after: self.connect_timeout,
            }
        } else if e.is_connect() {
            OllamaError::Connect {
                url,
                detail: root_cause(e),
            }
        } else if is_closed_by_peer(e) {
            // Accepted, then closed or reset before any answer (server restarting, crashed runner).
            OllamaError::Truncated {
                chunks: 0,
                detail: root_cause(e),
            }
        } else if e.is_builder() {
            OllamaError::Config(error_chain(e))
        } else {
            OllamaError::Http(error_chain(e))
        };
        self.secrets.redact(err)
    }

    /// The server's error text of an error body (see [`error_text`]), else the raw body
    /// (truncated), else the reason.
    fn status_message(&self, status: StatusCode, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(value) => error_text(&value),
            Err(_) => None,
        };
        let text = text.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        if text.is_empty() {
            return status
                .canonical_reason()
                .unwrap_or("no details given")
                .to_owned();
        }
        self.secrets.scrub(excerpt(&text, MAX_MESSAGE_CHARS))
    }
}

/// True for a request that got no response at all because its connection closed under it
/// (not a failure to connect, not a timeout).
fn closed_before_response(e: &reqwest::Error) -> bool {
    !e.is_connect() && !e.is_timeout() && is_closed_by_peer(e)
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

/// The message of a server's error body: Ollama's `{"error": "text"}`, the OpenAI shape
/// `{"error": {"message": "text", "type": ..}}` (vLLM, llama.cpp's server, LiteLLM, Ollama's
/// `/v1`), or a top-level `message` / `detail` (older vLLM, FastAPI servers). `None` when the body
/// has none of them, or only blank text.
pub(crate) fn error_text(body: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let text = match body.get("error") {
        Some(Value::String(text)) => text.as_str(),
        Some(Value::Object(error)) => error.get("message")?.as_str()?,
        _ => body.get("message").or_else(|| body.get("detail"))?.as_str()?,
    };
    (!text.trim().is_empty()).then(|| text.to_owned())
}
