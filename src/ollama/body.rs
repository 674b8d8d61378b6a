//! [`LineBody`]: a streamed response body as NDJSON lines, bounded by the two time limits of a
//! stream: the load limit until the first line, then the idle limit between reads.
//!
//! Shared by the chat stream and the pull stream; what a line means is up to them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::error::{error_chain, StallLimit};
use super::ndjson::{Line, LineReader};

/// A response body as byte chunks; transport errors already rendered as text.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// The body of `response` as a [`ByteStream`].
pub(crate) fn byte_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(
        response
            .bytes_stream()
            .map(|r| r.map_err(|e| error_chain(&e))),
    )
}

/// The time limits of one streamed body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// When the first line must have arrived (the request's start + connect + load timeout).
    pub first_line_by: Instant,
    /// The load timeout, named in the error when `first_line_by` passes.
    pub load: Duration,
    /// Longest silence between two reads after the first line.
    pub idle: Duration,
    /// Which setting `idle` is (a pull waits `load` between lines too).
    pub idle_limit: StallLimit,
}

impl Limits {
    /// `load` from now until the first line, then `idle` between reads (a chat answer).
    #[cfg(test)]
    pub(crate) fn chat(load: Duration, idle: Duration) -> Limits {
        Limits {
            first_line_by: instant_after(Instant::now(), load),
            load,
            idle,
            idle_limit: StallLimit::Idle,
        }
    }
}

/// What the body did next.
#[derive(Debug, PartialEq)]
pub(crate) enum Event {
    /// A complete line (or one too long to keep).
    Line(Line),
    /// The last line, without `\n`, at a clean end of the body.
    Tail(Line),
    /// The body ended cleanly and every line was handed out (also after [`LineBody::close`]).
    End,
    /// The transport failed (reset, or the framing was cut short): the text says how.
    Cut(String),
    /// A limit ran out; the body is closed.
    Stalled {
        /// The setting that ran out.
        limit: StallLimit,
        /// Its duration.
        after: Duration,
    },
}

/// Lines of a response body, with a deadline on every wait.
pub(crate) struct LineBody {
    /// The open body; `None` once ended or closed, which drops (closes) the connection.
    body: Option<ByteStream>,
    /// Splits the body into lines.
    reader: LineReader,
    /// Lines already split off but not yet handed out (one network read can hold many).
    lines: VecDeque<Line>,
    /// The limits of this body.
    limits: Limits,
    /// When the current wait becomes a stall: `first_line_by`, then pushed back on every read.
    deadline: Pin<Box<Sleep>>,
    /// True once a line arrived (the idle limit applies from then on).
    started: bool,
}

impl LineBody {
    /// Starts reading `body` under `limits`.
    pub(crate) fn new(body: ByteStream, limits: Limits) -> LineBody {
        Self::with_reader(body, limits, LineReader::new())
    }

    /// [`LineBody::new`] with a reader of other line rules (blank lines kept, for SSE).
    pub(crate) fn with_reader(body: ByteStream, limits: Limits, reader: LineReader) -> LineBody {
        LineBody {
            body: Some(body),
            reader,
            lines: VecDeque::new(),
            limits,
            deadline: Box::pin(tokio::time::sleep_until(limits.first_line_by)),
            started: false,
        }
    }

    /// Drops the connection and every line not handed out yet.
    pub(crate) fn close(&mut self) {
        self.body = None;
        self.lines.clear();
    }

    /// The next event; `Pending` only while waiting for bytes within the current limit.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Poll::Ready(Event::Line(line));
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Event::End);
            };
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    let lines = self.reader.push(&bytes);
                    self.started |= !lines.is_empty();
                    if self.started {
                        let next = instant_after(Instant::now(), self.limits.idle);
                        self.deadline.as_mut().reset(next);
                    }
                    self.lines.extend(lines);
                }
                Poll::Ready(Some(Err(detail))) => {
                    self.close();
                    return Poll::Ready(Event::Cut(detail));
                }
                Poll::Ready(None) => {
                    self.body = None;
                    if let Some(tail) = self.reader.finish() {
                        return Poll::Ready(Event::Tail(tail));
                    }
                }
                Poll::Pending => {
                    if self.deadline.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.close();
                    return Poll::Ready(if self.started {
                        Event::Stalled {
                            limit: self.limits.idle_limit,
                            after: self.limits.idle,
                        }
                    } else {
                        Event::Stalled {
                            limit: StallLimit::Load,
                            after: self.limits.load,
                        }
                    });
                }
            }
        }
    }
}

/// `from + d`, saturating (a limit of `Duration::MAX` means "never").
pub(crate) fn instant_after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 24 * 3600))
}
