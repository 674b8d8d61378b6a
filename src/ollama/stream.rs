//! [`ChatStream`]: the body of a streaming `/api/chat` answer as typed chunks.
//!
//! Bytes → [`LineReader`] (lines) → [`parse_line`] (chunk or error). Each read of the body has
//! its own idle deadline, so a server that stalls mid-answer is detected, not waited on forever.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FusedStream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use super::chunk::ChatChunk;
use super::error::{error_chain, OllamaError};
use super::ndjson::{LineError, LineReader};

/// The response body as a stream of byte chunks; transport errors already rendered as text.
type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// A streaming chat answer. Yields chunks until the `done: true` one, then `None`.
///
/// Any error ends the stream (the next call returns `None`). Dropping it closes the HTTP
/// connection, which makes Ollama cancel the generation: that is how to interrupt an answer.
pub struct ChatStream {
    /// The open response body; `None` once finished, which drops (closes) the connection.
    body: Option<ByteStream>,
    /// Splits the body into lines, decoding UTF-8 per whole line.
    reader: LineReader,
    /// Lines already split off but not yet handed out (one network read can hold many).
    lines: VecDeque<Result<String, LineError>>,
    /// Longest accepted silence between two reads.
    idle_timeout: Duration,
    /// When the current silence becomes a stall; pushed back on every read.
    deadline: Pin<Box<Sleep>>,
    /// Chunks handed out so far (tells "cut before any output" from "cut mid-answer").
    chunks: usize,
    /// Set after the done chunk or an error; the stream then only returns `None`.
    finished: bool,
    /// Base URL of the server, for error texts.
    url: String,
    /// Requested model, for log lines.
    model: String,
    /// The API key, removed from every error text before it is logged or returned.
    secret: Option<std::sync::Arc<str>>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("chunks", &self.chunks)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// Wraps an HTTP response whose status was already checked.
    pub(crate) fn new(
        response: reqwest::Response,
        idle_timeout: Duration,
        url: String,
        model: String,
    ) -> Self {
        let body = response
            .bytes_stream()
            .map(|r| r.map_err(|e| error_chain(&e)));
        Self::from_byte_stream(body, idle_timeout, url, model)
    }

    /// Wraps any byte stream (used by tests to feed exact byte splits without a socket).
    pub(crate) fn from_byte_stream<S>(
        body: S,
        idle_timeout: Duration,
        url: String,
        model: String,
    ) -> Self
    where
        S: Stream<Item = Result<Bytes, String>> + Send + 'static,
    {
        ChatStream {
            body: Some(Box::pin(body)),
            reader: LineReader::new(),
            lines: VecDeque::new(),
            idle_timeout,
            deadline: Box::pin(tokio::time::sleep_until(deadline_after(idle_timeout))),
            chunks: 0,
            finished: false,
            url,
            model,
            secret: None,
        }
    }

    /// Redacts `secret` (the API key) from every error this stream reports.
    pub(crate) fn with_secret(mut self, secret: Option<std::sync::Arc<str>>) -> Self {
        self.secret = secret;
        self
    }

    /// The next chunk; `None` after the final chunk or after an error.
    pub async fn next_chunk(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// How many chunks have been returned so far.
    pub fn chunks_received(&self) -> usize {
        self.chunks
    }

    /// The model named in the request.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Ends the stream and closes the connection; returns `err` for convenience.
    fn fail(&mut self, err: OllamaError) -> OllamaError {
        let err = match &self.secret {
            Some(secret) => err.redacted(secret),
            None => err,
        };
        log::debug!(
            "chat stream from {} ({}) failed: {err}",
            self.url,
            self.model
        );
        self.finish();
        err
    }

    fn finish(&mut self) {
        self.finished = true;
        self.body = None;
        self.lines.clear();
    }

    fn truncated(&mut self, detail: &str) -> OllamaError {
        let err = OllamaError::Truncated {
            chunks: self.chunks,
            detail: detail.to_owned(),
        };
        self.fail(err)
    }

    /// Books a parsed line: counts chunks, ends the stream on `done` or on an error.
    fn on_result(
        &mut self,
        result: Result<ChatChunk, OllamaError>,
    ) -> Result<ChatChunk, OllamaError> {
        match result {
            Ok(chunk) => {
                self.chunks += 1;
                log::debug!(
                    "chat chunk #{} ({}): {} content bytes, {} thinking bytes, {} tool calls, done={}",
                    self.chunks,
                    self.model,
                    chunk.content().len(),
                    chunk.thinking().len(),
                    chunk.tool_calls().len(),
                    chunk.done
                );
                if chunk.done {
                    self.finish();
                }
                Ok(chunk)
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    fn on_line(&mut self, line: Result<String, LineError>) -> Result<ChatChunk, OllamaError> {
        let result = match line {
            Ok(text) => parse_line(&text),
            Err(e) => Err(OllamaError::Protocol(format!(
                "{e} in the chat stream from {}",
                self.url
            ))),
        };
        self.on_result(result)
    }

    /// The body ended: a last line without newline may still be a whole chunk or error.
    fn on_eof(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        self.body = None;
        let parsed = match self.reader.finish()? {
            Ok(text) => parse_line(&text),
            Err(e) => Err(OllamaError::Protocol(e.to_string())),
        };
        match parsed {
            // An unparsable tail is the cut-off start of a line, not a protocol violation.
            Err(OllamaError::Protocol(_)) => {
                Some(Err(self.truncated("connection closed mid-line")))
            }
            other => Some(self.on_result(other)),
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, OllamaError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some(line) = this.lines.pop_front() {
                return Poll::Ready(Some(this.on_line(line)));
            }
            let Some(body) = this.body.as_mut() else {
                // The body ended and every line was handed out, but no done chunk came.
                return Poll::Ready(Some(Err(this.truncated("connection closed"))));
            };
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.deadline
                        .as_mut()
                        .reset(deadline_after(this.idle_timeout));
                    let lines = this.reader.push(&bytes);
                    this.lines.extend(lines);
                }
                Poll::Ready(Some(Err(detail))) => {
                    return Poll::Ready(Some(Err(this.truncated(&detail))));
                }
                Poll::Ready(None) => {
                    if let Some(item) = this.on_eof() {
                        return Poll::Ready(Some(item));
                    }
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        let err = OllamaError::Stalled {
                            url: this.url.clone(),
                            after: this.idle_timeout,
                            awaiting_headers: false,
                        };
                        return Poll::Ready(Some(Err(this.fail(err))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl FusedStream for ChatStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

/// `now + d`, saturating (an idle timeout of `Duration::MAX` means "never").
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

/// At most `max` characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Parses one NDJSON line: an `{"error": ...}` line (checked first, as Ollama's Go client
/// does) becomes [`OllamaError::Server`]; a chunk must be an object with a `done` field;
/// anything else is [`OllamaError::Protocol`].
pub(crate) fn parse_line(line: &str) -> Result<ChatChunk, OllamaError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<Value>,
        #[serde(default)]
        done: Option<bool>,
    }
    let bad = |why: String| OllamaError::Protocol(format!("{why}: {}", excerpt(line, 120)));
    if !line.trim_start().starts_with('{') {
        return Err(bad("line is not a JSON object".into()));
    }
    let probe: Probe =
        serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON line ({e})")))?;
    match probe.error {
        Some(Value::String(msg)) if !msg.is_empty() => return Err(OllamaError::Server(msg)),
        Some(Value::Null | Value::String(_)) | None => {}
        Some(other) => return Err(OllamaError::Server(other.to_string())),
    }
    if probe.done.is_none() {
        return Err(bad("line is neither a chat chunk nor an error".into()));
    }
    serde_json::from_str(line).map_err(|e| bad(format!("malformed chat chunk ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_line_sorts_chunks_errors_and_garbage() {
        let chunk = parse_line(
            r#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#,
        )
        .unwrap();
        assert_eq!(chunk.content(), "Hi");
        assert_eq!(
            parse_line(r#"{"error":"an error was encountered while running the model"}"#),
            Err(OllamaError::Server(
                "an error was encountered while running the model".into()
            ))
        );
        for garbage in [
            "not json",
            "[1,2]",
            "42",
            "{}",
            r#"{"status":"pulling"}"#,
            r#"{"done":"yes"}"#,
            "{\"done\":tr",
        ] {
            match parse_line(garbage) {
                Err(OllamaError::Protocol(msg)) => {
                    assert!(msg.contains(&excerpt(garbage, 120)), "{msg}")
                }
                other => panic!("{garbage}: {other:?}"),
            }
        }
        let long = format!("{{\"x\":\"{}\"}}", "é".repeat(500));
        let Err(OllamaError::Protocol(msg)) = parse_line(&long) else {
            panic!()
        };
        assert!(msg.len() < 400, "excerpt must stay short: {}", msg.len());
    }
}
