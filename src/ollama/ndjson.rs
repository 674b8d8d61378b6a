//! Byte-level NDJSON line splitting: network chunks in, complete lines (bytes) out.
//!
//! Pure and synchronous so it can be tested without sockets. Lines stay bytes: a network chunk
//! may end inside a multi-byte character (decoding per chunk, as ollama-rs does, silently loses
//! text), and a line with invalid UTF-8 is still a line for Go's client (see `go_text`).
//!
//! Line rules of Ollama's client (`api/client.go` `stream()`: a `bufio.Scanner` with
//! `ScanLines` and an 8,000,000-byte buffer): a line ends at `\n`, one `\r` before it is
//! dropped, and the last line counts even without a `\n`. A line whose bytes and `\n` do not
//! fit the buffer fail the stream (`bufio.ErrTooLong`). One difference: Go hands an empty line
//! to `json.Unmarshal` and fails the answer on it; blank lines are skipped here.

use std::fmt;

/// Ollama's client buffer (`maxBufferSize = 8 * format.MegaByte`, `format.MegaByte` = 1000^2):
/// a line plus its `\n` must fit in it.
pub const MAX_LINE_BYTES: usize = 8_000_000;

/// Why a line could not be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line and its newline do not fit in `limit` bytes; the rest of it is discarded.
    TooLong {
        /// The buffer size that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { limit } => write!(f, "line longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for LineError {}

/// One line's bytes (terminator removed), or why it could not be read.
pub type Line = Result<Vec<u8>, LineError>;

/// Splits a byte stream into lines terminated by `\n` (an optional `\r` before it is removed).
///
/// Blank lines are skipped (kept as empty lines by [`LineReader::keeping_blank_lines`], for
/// server-sent events, where a blank line ends an event). Memory is bounded: once the unterminated tail cannot fit its
/// newline in `max_line` bytes an error is reported at once and the rest of that line is skipped
/// up to its newline.
#[derive(Debug)]
pub struct LineReader {
    /// Bytes received but not yet returned as a line (always a partial line between calls).
    buf: Vec<u8>,
    /// Buffer size: a line, its `\r` if any and its `\n` must fit.
    max_line: usize,
    /// True while discarding the remainder of an over-long line.
    skipping: bool,
    /// Return blank lines as empty lines instead of skipping them.
    keep_blank: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReader {
    /// A reader with Ollama's buffer size ([`MAX_LINE_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_line(MAX_LINE_BYTES)
    }

    /// A reader with a custom buffer size (a line with its terminator must fit, in bytes).
    pub fn with_max_line(max_line: usize) -> Self {
        LineReader {
            buf: Vec::new(),
            max_line,
            skipping: false,
            keep_blank: false,
        }
    }

    /// The same reader, returning every blank (or whitespace-only) line as an empty line: the
    /// end of an event in a server-sent event stream.
    pub fn keeping_blank_lines(mut self) -> Self {
        self.keep_blank = true;
        self
    }

    /// Number of bytes held while waiting for the end of the current line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `data` and returns every line it completed, in order.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        if self.skipping {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.skipping = false;
                    data = &data[i + 1..];
                }
                None => return out,
            }
        }
        // Only the new bytes can hold a newline: the buffered tail was searched before.
        let mut search_from = self.buf.len();
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(rel) = self.buf[search_from..].iter().position(|&b| b == b'\n') {
            let end = search_from + rel;
            if let Some(line) = self.take(start, end) {
                out.push(line);
            }
            start = end + 1;
            search_from = start;
        }
        self.buf.drain(..start);
        // The tail cannot fit its newline any more: fail now rather than buffer on.
        if self.buf.len() >= self.max_line {
            self.buf = Vec::new();
            self.skipping = true;
            out.push(Err(LineError::TooLong {
                limit: self.max_line,
            }));
        }
        out
    }

    /// Ends the input: returns the last line if it had no newline, and resets the reader.
    pub fn finish(&mut self) -> Option<Line> {
        let line = if self.skipping || self.buf.is_empty() {
            None
        } else {
            self.take(0, self.buf.len())
        };
        self.buf = Vec::new();
        self.skipping = false;
        line
    }

    /// `buf[start..end]` (without its `\n` and `\r`); `None` for a blank line (an empty line
    /// when blank lines are kept).
    fn take(&self, start: usize, end: usize) -> Option<Line> {
        let raw = &self.buf[start..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return self.keep_blank.then(|| Ok(Vec::new()));
        }
        if raw.len() + 1 > self.max_line {
            return Some(Err(LineError::TooLong {
                limit: self.max_line,
            }));
        }
        Some(Ok(line.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ollama::fake_server::api_chat_transcript;

    /// The api-chat.md transcript, one line each.
    fn transcript() -> String {
        api_chat_transcript(["\n"; 3])
    }

    fn ok(text: &str) -> Line {
        Ok(text.as_bytes().to_vec())
    }

    fn all_lines(reader: &mut LineReader, parts: &[&[u8]]) -> Vec<Line> {
        let mut out = Vec::new();
        for part in parts {
            out.extend(reader.push(part));
        }
        out.extend(reader.finish());
        out
    }

    fn expected() -> Vec<Line> {
        transcript().lines().map(ok).collect()
    }

    #[test]
    fn transcript_split_at_every_offset_gives_the_same_lines() {
        let transcript = transcript();
        let bytes = transcript.as_bytes();
        assert!(transcript.contains('é') && transcript.contains('🤖'));
        for i in 0..=bytes.len() {
            let mut reader = LineReader::new();
            let got = all_lines(&mut reader, &[&bytes[..i], &bytes[i..]]);
            assert_eq!(got, expected(), "split at byte {i}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn transcript_fed_byte_by_byte_gives_the_same_lines() {
        let transcript = transcript();
        let parts: Vec<&[u8]> = transcript.as_bytes().chunks(1).collect();
        assert_eq!(all_lines(&mut LineReader::new(), &parts), expected());
    }

    #[test]
    fn crlf_and_blank_lines() {
        let got = all_lines(
            &mut LineReader::new(),
            &[b"\n\r\n{\"a\":1}\r\n  \n\r", b"\n{\"b\":2}\n\n{\"c\":3}\r"],
        );
        // Only one \r is dropped, as Go's dropCR; a second one is JSON whitespace.
        let mut reader = LineReader::new();
        assert_eq!(reader.push(b"{}\r\r\n"), vec![ok("{}\r")]);
        assert_eq!(got, vec![ok("{\"a\":1}"), ok("{\"b\":2}"), ok("{\"c\":3}")]);
    }

    #[test]
    fn blank_lines_kept_for_server_sent_events() {
        let mut reader = LineReader::new().keeping_blank_lines();
        let got = all_lines(&mut reader, &[b"data: a\r\n\r", b"\n: c\n\ndata: b"]);
        assert_eq!(
            got,
            vec![ok("data: a"), ok(""), ok(": c"), ok(""), ok("data: b")]
        );
        assert_eq!(reader.finish(), None, "no empty tail after the end");
    }

    #[test]
    fn error_and_malformed_lines_are_lines_like_any_other() {
        let got = all_lines(
            &mut LineReader::new(),
            &[b"{\"error\":\"boom\"}\nnot json\n{\"done\":tr", b"ue}\n"],
        );
        assert_eq!(
            got,
            vec![
                ok(r#"{"error":"boom"}"#),
                ok("not json"),
                ok("{\"done\":true}")
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_kept_for_the_decoder() {
        let got = all_lines(&mut LineReader::new(), &[b"ab\xff\ncd\n"]);
        assert_eq!(got, vec![Ok(b"ab\xff".to_vec()), ok("cd")]);
    }

    #[test]
    fn over_long_line_fails_before_its_newline_arrives_and_the_reader_resyncs() {
        let mut reader = LineReader::with_max_line(8);
        assert_eq!(reader.push(b"0123456"), vec![]);
        assert_eq!(
            reader.push(b"7"),
            vec![Err(LineError::TooLong { limit: 8 })]
        );
        assert_eq!(
            reader.buffered(),
            0,
            "must not keep buffering the over-long line"
        );
        assert_eq!(reader.push(b"more of it"), vec![]);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.push(b"end\nok\n"), vec![ok("ok")]);
    }

    #[test]
    fn a_line_fits_when_it_and_its_terminator_fit_the_buffer() {
        // Go: bufio.Scanner with an 6-byte buffer takes "12345\n" and "1234\r\n", not more.
        let got = all_lines(
            &mut LineReader::with_max_line(6),
            &[b"12345\n1234\r\n123456\n12345\r\n", b"1234\r", b"\nx"],
        );
        let too_long = Err(LineError::TooLong { limit: 6 });
        assert_eq!(
            got,
            vec![
                ok("12345"),
                ok("1234"),
                too_long.clone(),
                too_long,
                ok("1234"),
                ok("x")
            ]
        );
    }

    #[test]
    fn eof_mid_line_returns_the_partial_line_once() {
        let mut reader = LineReader::new();
        assert_eq!(
            reader.push(b"{\"a\":1}\n{\"model\":\"x\",\"cont"),
            vec![ok("{\"a\":1}")]
        );
        assert_eq!(reader.finish(), Some(ok("{\"model\":\"x\",\"cont")));
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn eof_inside_a_multibyte_character_keeps_the_bytes() {
        let mut reader = LineReader::new();
        let emoji = "🤖".as_bytes();
        assert_eq!(reader.push(&emoji[..2]), vec![]);
        assert_eq!(reader.finish(), Some(Ok(emoji[..2].to_vec())));
    }
}
