//! [`ChatStream`]: the body of a streaming `/api/chat` answer as typed chunks.
//!
//! Bytes → `LineBody` (lines, time limits) → [`parse_line`] (chunk or error). Where the
//! answer ends follows Ollama's Go client (`api/client.go` `stream()`, which reads lines until
//! the body ends and fails on a transport error):
//!
//! * a `done: true` line ends it (Ollama's server sends nothing after it; waiting for the body
//!   to end would only add the server's close to the answer's latency);
//! * an `{"error": ..}` line ends it with [`OllamaError::Server`];
//! * a clean end of the body after at least one line ends it as complete, like Go's `nil`
//!   return: a final chunk is added, `done: true` with `done_reason`
//!   [`DONE_REASON_END_OF_STREAM`], so the answer is kept but the user sees why it ended;
//! * a clean end before any line is [`OllamaError::Truncated`] with 0 chunks (retryable): Go
//!   would report an empty success, but an empty 200 is a fault worth a retry, not an answer;
//! * a cut connection (reset, chunked framing without its end) is [`OllamaError::Truncated`],
//!   as Go's scanner returns `io.ErrUnexpectedEOF`.
//!
//! An OpenAI-compatible server's answer (`api: openai`) is read by the same stream with the SSE
//! decoder of `openai::sse`: events instead of lines, `data: [DONE]` instead of `done: true`; a
//! body that ends without `[DONE]` or a `finish_reason` is cut ([`OllamaError::Truncated`]). A
//! server that ignored `stream: true` and sent one `chat.completion` object gives its whole
//! answer in one final chunk when the body ends (`openai::whole`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};

use super::body::{byte_stream, ByteStream, Event, Limits, LineBody};
use super::chunk::{parse_line, ChatChunk, DONE_REASON_END_OF_STREAM};
use super::credentials::Secrets;
use super::error::OllamaError;
use super::ndjson::{Line, LineReader};
use super::openai::SseDecoder;

/// How the lines of a body become chunks.
pub(crate) enum Decoder {
    /// Ollama's NDJSON: every line is a chunk (or an error).
    Ndjson,
    /// The OpenAI API's server-sent events (see `openai::sse`).
    Sse(Box<SseDecoder>),
}

/// A streaming chat answer. Yields chunks until the `done: true` one, then `None`.
///
/// Any error ends the stream (the next call returns `None`). Dropping it closes the HTTP
/// connection, which makes Ollama cancel the generation: that is how to interrupt an answer.
pub struct ChatStream {
    /// The response body as lines, with the load and idle limits.
    body: LineBody,
    /// Chunks handed out so far (tells "cut before any output" from "cut mid-answer").
    chunks: usize,
    /// Set after the done chunk or an error; the stream then only returns `None`.
    finished: bool,
    /// Base URL of the server (password redacted), for error texts.
    url: String,
    /// Requested model, for log lines.
    model: String,
    /// Removed from every error text before it is logged or returned.
    secrets: Secrets,
    /// NDJSON lines or server-sent events.
    decoder: Decoder,
    /// A chunk already received and handed back ([`ChatStream::put_back`]): returned next.
    peeked: Option<ChatChunk>,
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
        limits: Limits,
        url: String,
        model: String,
        secrets: Secrets,
    ) -> Self {
        let mut stream = Self::from_byte_stream(byte_stream(response), limits, url, model);
        stream.secrets = secrets;
        stream
    }

    /// Wraps an OpenAI-compatible server's event stream (status already checked); `sse` was
    /// made when the request was sent, for the durations it measures.
    pub(crate) fn server_sent_events(
        response: reqwest::Response,
        limits: Limits,
        url: String,
        secrets: Secrets,
        model: String,
        sse: SseDecoder,
    ) -> Self {
        let reader = LineReader::new().keeping_blank_lines();
        ChatStream {
            body: LineBody::with_reader(byte_stream(response), limits, reader),
            decoder: Decoder::Sse(Box::new(sse)),
            secrets,
            ..Self::from_byte_stream(futures::stream::empty(), limits, url, model)
        }
    }

    /// Wraps any byte stream (used by tests to feed exact byte splits without a socket).
    pub(crate) fn from_byte_stream<S>(body: S, limits: Limits, url: String, model: String) -> Self
    where
        S: Stream<Item = Result<bytes::Bytes, String>> + Send + 'static,
    {
        let body: ByteStream = Box::pin(body);
        ChatStream {
            body: LineBody::new(body, limits),
            chunks: 0,
            finished: false,
            url,
            model,
            secrets: Secrets::default(),
            decoder: Decoder::Ndjson,
            peeked: None,
        }
    }

    /// Server-sent events from any byte stream (tests: exact byte splits without a socket).
    #[cfg(test)]
    pub(crate) fn sse_from_byte_stream<S>(body: S, limits: Limits, model: &str) -> Self
    where
        S: Stream<Item = Result<bytes::Bytes, String>> + Send + 'static,
    {
        let reader = LineReader::new().keeping_blank_lines();
        ChatStream {
            body: LineBody::with_reader(Box::pin(body), limits, reader),
            decoder: Decoder::Sse(Box::new(SseDecoder::new(model, std::time::Instant::now()))),
            ..Self::from_byte_stream(futures::stream::empty(), limits, String::new(), model.to_owned())
        }
    }

    /// Hands a chunk this stream returned back to it: the next call returns it again (a caller
    /// that waited for the first chunk before committing to this stream).
    pub fn put_back(&mut self, chunk: ChatChunk) {
        self.peeked = Some(chunk);
    }

    /// The next chunk; `None` after the final chunk or after an error.
    pub async fn next_chunk(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// A chunk that is already received, without waiting: split off here, or a body frame the
    /// HTTP client already holds (the body is polled once with a no-op waker, so nothing waits
    /// and nothing is woken); `None` when nothing is received yet (or the stream ended). A chunk
    /// it returns is the one [`next_chunk`](Self::next_chunk) would return next; errors, the end
    /// of the body and a limit that already ran out end the stream as there.
    ///
    /// hyper hands a body over one frame (one HTTP chunk: one Ollama line) at a time and reads
    /// the next only when its connection task runs: a caller that wants every frame already read
    /// yields to the runtime between two calls.
    pub fn try_next_buffered(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match Pin::new(&mut *self).poll_next(&mut cx) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
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
        let err = self.secrets.redact(err);
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
        self.body.close();
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

    /// A line: a chunk or an error; `None` for a line that says nothing yet (SSE).
    fn on_line(&mut self, line: Line) -> Option<Result<ChatChunk, OllamaError>> {
        let result = match (line, &mut self.decoder) {
            (Ok(bytes), Decoder::Ndjson) => parse_line(&bytes),
            (Ok(bytes), Decoder::Sse(sse)) => sse.line(&bytes).transpose()?,
            (Err(e), _) => Err(OllamaError::Protocol(format!(
                "{e} in the chat stream from {}",
                self.url
            ))),
        };
        Some(self.on_result(result))
    }

    /// The last line, cut off by the end of the body: a whole chunk or error still counts.
    fn on_tail(&mut self, line: Line) -> Option<Result<ChatChunk, OllamaError>> {
        if matches!(self.decoder, Decoder::Sse(_)) {
            return self.on_line(line);
        }
        Some(match line
            .map_err(|e| OllamaError::Protocol(e.to_string()))
            .and_then(|b| parse_line(&b))
        {
            // An unparsable tail is the cut-off start of a line, not a protocol violation.
            Err(OllamaError::Protocol(_)) => Err(self.truncated("connection closed mid-line")),
            other => self.on_result(other),
        })
    }

    /// The body ended cleanly without a `done` line: complete if anything came (as Go), else
    /// a retryable cut.
    fn on_end(&mut self) -> Result<ChatChunk, OllamaError> {
        if let Decoder::Sse(sse) = &mut self.decoder {
            let end = sse.end();
            let whole = sse.reads_whole_body();
            return match end {
                Ok(Some(last)) => self.on_result(Ok(last)),
                Ok(None) => Err(self.truncated("the event stream ended without data: [DONE]")),
                // a whole JSON answer says itself whether it was cut or is not JSON
                Err(OllamaError::Protocol(_)) if !whole => Err(self.truncated("connection closed mid-event")),
                Err(e) => self.on_result(Err(e)),
            };
        }
        if self.chunks == 0 {
            return Err(self.truncated("connection closed"));
        }
        log::debug!(
            "chat stream from {} ({}) ended without a done line after {} chunk(s)",
            self.url,
            self.model,
            self.chunks
        );
        self.on_result(Ok(ChatChunk {
            model: self.model.clone(),
            done: true,
            done_reason: Some(DONE_REASON_END_OF_STREAM.to_owned()),
            ..ChatChunk::default()
        }))
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, OllamaError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(chunk) = this.peeked.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let item = match std::task::ready!(this.body.poll_event(cx)) {
                Event::Line(line) => this.on_line(line),
                Event::Tail(line) => this.on_tail(line),
                Event::End => Some(this.on_end()),
                Event::Cut(detail) => Some(Err(this.truncated(&detail))),
                Event::Stalled { limit, after } => Some(Err(this.fail(OllamaError::Stalled {
                    url: this.url.clone(),
                    after,
                    limit,
                    awaiting_headers: false,
                }))),
            };
            if let Some(item) = item {
                return Poll::Ready(Some(item));
            }
        }
    }
}

impl FusedStream for ChatStream {
    fn is_terminated(&self) -> bool {
        self.finished && self.peeked.is_none()
    }
}

/// At most `max` characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
