//! [`OllamaError`]: one variant per way a call to Ollama can fail (the fault matrix).
//!
//! Variants carry plain data (no `reqwest::Error` inside), so errors are `Clone`, comparable in
//! tests, and can cross tasks. Texts never contain the API key. Texts say "the server", not
//! "Ollama": the same errors come from OpenAI-compatible engines (`api: openai`); hints that only
//! hold for Ollama say so.

use std::fmt;
use std::time::Duration;

use super::credentials::scrub;

/// Everything that can go wrong talking to Ollama, split by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OllamaError {
    /// The client configuration is unusable (bad URL, zero timeout, bad API key characters).
    Config(String),
    /// No connection could be made: refused, DNS failure, TLS failure, unreachable network.
    Connect {
        /// The base URL that was tried.
        url: String,
        /// The lowest-level cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// The TCP/TLS connection was not established within `connect_timeout`.
    ConnectTimeout {
        /// The base URL that was tried.
        url: String,
        /// The configured connect timeout.
        after: Duration,
    },
    /// Ollama answered with a non-2xx status before any output.
    Status {
        /// The HTTP status code (400 bad request, 404 unknown model, 503 busy, ...).
        code: u16,
        /// The `{"error": ...}` text, or the raw body (truncated) if it was not JSON.
        message: String,
    },
    /// Ollama sent an `{"error": ...}` line after the answer had started (the status stays 200).
    Server(String),
    /// Ollama was silent too long: no headers or no first line within the load timeout, or
    /// no bytes for the idle timeout in the middle of an answer.
    Stalled {
        /// The base URL of the server that went quiet (password redacted).
        url: String,
        /// The limit that ran out (the configured duration).
        after: Duration,
        /// Which setting that limit is, so a caller can name it to the user.
        limit: StallLimit,
        /// True if the response had not started yet (model loading, queueing, dead proxy).
        awaiting_headers: bool,
    },
    /// Ollama sent something that is not its protocol: bad JSON, over-long line, bad UTF-8.
    Protocol(String),
    /// The connection closed (cleanly or not) before the `done: true` chunk.
    Truncated {
        /// How many chunks had been received before the cut.
        chunks: usize,
        /// What ended the stream, e.g. "connection closed" or the transport error.
        detail: String,
    },
    /// Any other transport failure (after connecting, before a response).
    Http(String),
    /// The call has no equivalent in the server's API (`pull` or `unload` on an
    /// OpenAI-compatible engine): the text says what to do instead.
    Unsupported(String),
}

/// Which time limit of [`ClientConfig`](super::ClientConfig) a stall ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StallLimit {
    /// `load_timeout`: waiting for the headers and the first line (model load, queue, prompt).
    Load,
    /// `idle_timeout`: silence between reads after the first line.
    Idle,
}

impl StallLimit {
    /// The [`ClientConfig`](super::ClientConfig) field name: `load_timeout` or `idle_timeout`.
    pub fn setting(self) -> &'static str {
        match self {
            StallLimit::Load => "load_timeout",
            StallLimit::Idle => "idle_timeout",
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<OllamaError>();
};

impl OllamaError {
    /// The same error with every occurrence of `secret` (the API key) in its texts replaced by
    /// `<redacted>`: servers and proxies sometimes echo request headers back.
    pub fn redacted(self, secret: &str) -> OllamaError {
        if secret.is_empty() {
            return self;
        }
        let clean = |text: String| scrub(text, secret);
        match self {
            OllamaError::Config(t) => OllamaError::Config(clean(t)),
            OllamaError::Connect { url, detail } => OllamaError::Connect {
                url,
                detail: clean(detail),
            },
            OllamaError::Status { code, message } => OllamaError::Status {
                code,
                message: clean(message),
            },
            OllamaError::Server(t) => OllamaError::Server(clean(t)),
            OllamaError::Protocol(t) => OllamaError::Protocol(clean(t)),
            OllamaError::Truncated { chunks, detail } => OllamaError::Truncated {
                chunks,
                detail: clean(detail),
            },
            OllamaError::Http(t) => OllamaError::Http(clean(t)),
            OllamaError::Unsupported(t) => OllamaError::Unsupported(clean(t)),
            other @ (OllamaError::ConnectTimeout { .. } | OllamaError::Stalled { .. }) => other,
        }
    }

    /// A short stable name for the variant, e.g. for a `done_reason` or a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            OllamaError::Config(_) => "config",
            OllamaError::Connect { .. } => "connect",
            OllamaError::ConnectTimeout { .. } => "connect_timeout",
            OllamaError::Status { .. } => "status",
            OllamaError::Server(_) => "server",
            OllamaError::Stalled { .. } => "stalled",
            OllamaError::Protocol(_) => "protocol",
            OllamaError::Truncated { .. } => "truncated",
            OllamaError::Http(_) => "http",
            OllamaError::Unsupported(_) => "unsupported",
        }
    }

    /// Which limit a [`OllamaError::Stalled`] ran into; `None` for other errors.
    pub fn stall_limit(&self) -> Option<StallLimit> {
        match self {
            OllamaError::Stalled { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// The HTTP status code, for [`OllamaError::Status`].
    pub fn status_code(&self) -> Option<u16> {
        match self {
            OllamaError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a server's "model not found" answer: Ollama's 404 `model 'x' not found[, try
    /// pulling it first]`, vLLM's 404 ``The model `x` does not exist.``
    ///
    /// A 404 that does not mention a model (a wrong URL path, a proxy) is not this.
    pub fn is_model_not_found(&self) -> bool {
        match self {
            OllamaError::Status { code: 404, message } => {
                let m = message.to_ascii_lowercase();
                m.contains("model") && (m.contains("not found") || m.contains("does not exist"))
            }
            _ => false,
        }
    }

    /// True if the same request may simply be sent again because nothing was produced yet and
    /// the cause is likely transient: no connection, connect timeout, 429/503 (busy), or a
    /// stream cut before its first chunk. Never for 4xx/500 answers, which would fail again.
    pub fn is_retryable_before_output(&self) -> bool {
        match self {
            OllamaError::Connect { .. } | OllamaError::ConnectTimeout { .. } => true,
            OllamaError::Status { code, .. } => matches!(code, 429 | 503),
            OllamaError::Truncated { chunks, .. } => *chunks == 0,
            _ => false,
        }
    }

    /// A hint appended to the status text, telling a person what to do.
    fn status_hint(&self, code: u16) -> &'static str {
        match code {
            _ if self.is_model_not_found() => {
                " - pull the model (`ollama pull <model>`; an OpenAI-compatible engine serves only the models it was started with) or fix the model name"
            }
            401 | 403 => {
                " - check the credentials for this server: user and password in ollama_url, or the API key (OLLAMA_API_KEY, or OPENAI_API_KEY with api: openai)"
            }
            404 => " - is ollama_url/OLLAMA_HOST pointing at the server itself, without an extra path?",
            429 | 503 => {
                " - the server is busy; retry later, or (Ollama) raise OLLAMA_NUM_PARALLEL/OLLAMA_MAX_QUEUE"
            }
            400 => " - the request was rejected; check the model's capabilities and parameters",
            _ => "",
        }
    }
}

impl fmt::Display for OllamaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OllamaError::Config(msg) => write!(f, "invalid client configuration: {msg}"),
            OllamaError::Connect { url, detail } => write!(
                f,
                "cannot connect to the server at {url} ({detail}): is it running (`ollama serve`, \
                 or the OpenAI-compatible engine) and OLLAMA_HOST/ollama_url right?"
            ),
            OllamaError::ConnectTimeout { url, after } => write!(
                f,
                "connecting to the server at {url} timed out after {after:?}: is the host up and \
                 reachable, and OLLAMA_HOST/ollama_url right?"
            ),
            OllamaError::Status { code, message } => {
                write!(
                    f,
                    "the server answered HTTP {code}: {message}{}",
                    self.status_hint(*code)
                )
            }
            OllamaError::Server(msg) => write!(f, "the server failed while answering: {msg}"),
            OllamaError::Stalled {
                url,
                after,
                limit: StallLimit::Load,
                awaiting_headers,
            } => write!(
                f,
                "the server at {url} {} within {after:?} (the load timeout): the model may still be \
                 loading, the request queued behind others, or a long prompt being evaluated; \
                 raise the load timeout if this is expected",
                if *awaiting_headers {
                    "did not start answering"
                } else {
                    "sent no first line of the answer"
                }
            ),
            OllamaError::Stalled { url, after, .. } => write!(
                f,
                "the server at {url} stopped sending for {after:?} in the middle of an answer (the \
                 idle timeout); gave up (raise the idle timeout if the model is this slow)"
            ),
            OllamaError::Protocol(msg) => write!(f, "unexpected data from the server: {msg}"),
            OllamaError::Truncated { chunks, detail } => write!(
                f,
                "stream ended before the final chunk ({detail}, after {chunks} chunk(s)): \
                 the server may have crashed or restarted, or a proxy cut the connection"
            ),
            OllamaError::Http(msg) => write!(f, "HTTP error talking to the server: {msg}"),
            OllamaError::Unsupported(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for OllamaError {}

/// The whole `source()` chain of `e`, joined with ": " (reqwest's top level alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of `e`, e.g. "Connection refused (os error 111)".
pub(crate) fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
