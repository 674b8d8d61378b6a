//! Byte-level NDJSON line splitting: network chunks in, complete UTF-8 lines out.
//!
//! Pure and synchronous so it can be tested without sockets. Lines are decoded as UTF-8 only
//! once complete: a network chunk may end inside a multi-byte character, so decoding per
//! chunk (as ollama-rs does) silently loses text.

use std::fmt;

/// Longest accepted line, in bytes: the buffer limit of Ollama's own Go client.
pub const MAX_LINE_BYTES: usize = 8_000_000;

/// Why a line could not be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line grew past `limit` bytes without a newline; the rest of it is discarded.
    TooLong {
        /// The cap that was exceeded.
        limit: usize,
    },
    /// The line is not valid UTF-8; `valid_up_to` is the offset of the first bad byte.
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence in the line.
        valid_up_to: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { limit } => write!(f, "line longer than {limit} bytes"),
            LineError::InvalidUtf8 { valid_up_to } => {
                write!(
                    f,
                    "line is not valid UTF-8 (bad byte at offset {valid_up_to})"
                )
            }
        }
    }
}

impl std::error::Error for LineError {}

/// Splits a byte stream into lines terminated by `\n` (an optional `\r` before it is removed).
///
/// Blank lines are skipped. Memory is bounded: once the unterminated tail exceeds `max_line`
/// bytes an error is reported at once and the rest of that line is skipped up to its newline.
#[derive(Debug)]
pub struct LineReader {
    /// Bytes received but not yet returned as a line (always a partial line between calls).
    buf: Vec<u8>,
    /// Cap on one line's length, excluding its terminator.
    max_line: usize,
    /// True while discarding the remainder of an over-long line.
    skipping: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReader {
    /// A reader with Ollama's line cap ([`MAX_LINE_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_line(MAX_LINE_BYTES)
    }

    /// A reader with a custom line cap (in bytes, terminator excluded).
    pub fn with_max_line(max_line: usize) -> Self {
        LineReader {
            buf: Vec::new(),
            max_line,
            skipping: false,
        }
    }

    /// Number of bytes held while waiting for the end of the current line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `data` and returns every line it completed, in order.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Result<String, LineError>> {
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
            if let Some(line) = self.decode(start, end) {
                out.push(line);
            }
            start = end + 1;
            search_from = start;
        }
        self.buf.drain(..start);
        // `+ 1` leaves room for a `\r` whose `\n` has not arrived yet.
        if self.buf.len() > self.max_line + 1 {
            self.buf = Vec::new();
            self.skipping = true;
            out.push(Err(LineError::TooLong {
                limit: self.max_line,
            }));
        }
        out
    }

    /// Ends the input: returns the last line if it had no newline, and resets the reader.
    pub fn finish(&mut self) -> Option<Result<String, LineError>> {
        let line = if self.skipping {
            None
        } else {
            self.decode(0, self.buf.len())
        };
        self.buf = Vec::new();
        self.skipping = false;
        line
    }

    /// Decodes `buf[start..end]` (without its `\n`); `None` for a blank line.
    fn decode(&self, start: usize, end: usize) -> Option<Result<String, LineError>> {
        let mut line = &self.buf[start..end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if line.len() > self.max_line {
            return Some(Err(LineError::TooLong {
                limit: self.max_line,
            }));
        }
        Some(match std::str::from_utf8(line) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(LineError::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming transcript of reference/ollama-docs/api-chat.md, compacted to one object per
    /// line, with non-ASCII text ("é", an emoji) so that splits fall inside multi-byte characters.
    const TRANSCRIPT: &str = concat!(
        r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}"#,
        "\n",
        r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.4-07:00","message":{"role":"assistant","content":" café 🤖"},"done":false}"#,
        "\n",
        r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#,
        "\n",
    );

    fn all_lines(reader: &mut LineReader, parts: &[&[u8]]) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        for part in parts {
            out.extend(reader.push(part));
        }
        out.extend(reader.finish());
        out
    }

    fn expected() -> Vec<Result<String, LineError>> {
        TRANSCRIPT.lines().map(|l| Ok(l.to_owned())).collect()
    }

    #[test]
    fn transcript_split_at_every_offset_gives_the_same_lines() {
        let bytes = TRANSCRIPT.as_bytes();
        assert!(TRANSCRIPT.contains('é') && TRANSCRIPT.contains('🤖'));
        for i in 0..=bytes.len() {
            let mut reader = LineReader::new();
            let got = all_lines(&mut reader, &[&bytes[..i], &bytes[i..]]);
            assert_eq!(got, expected(), "split at byte {i}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn transcript_fed_byte_by_byte_gives_the_same_lines() {
        let parts: Vec<&[u8]> = TRANSCRIPT.as_bytes().chunks(1).collect();
        assert_eq!(all_lines(&mut LineReader::new(), &parts), expected());
    }

    #[test]
    fn crlf_and_blank_lines() {
        let got = all_lines(
            &mut LineReader::new(),
            &[b"\n\r\n{\"a\":1}\r\n  \n\r", b"\n{\"b\":2}\n\n"],
        );
        assert_eq!(
            got,
            vec![Ok("{\"a\":1}".to_owned()), Ok("{\"b\":2}".to_owned())]
        );
    }

    #[test]
    fn error_line_after_output_is_a_line_like_any_other() {
        let data =
            b"{\"done\":false}\n{\"error\":\"an error was encountered while running the model\"}\n";
        let got = all_lines(&mut LineReader::new(), &[data]);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Ok(r#"{"error":"an error was encountered while running the model"}"#.to_owned())
        );
    }

    #[test]
    fn malformed_lines_are_passed_on_for_the_parser_to_reject() {
        let got = all_lines(
            &mut LineReader::new(),
            &[b"not json\n{\"done\":tr", b"ue}\n"],
        );
        assert_eq!(
            got,
            vec![Ok("not json".to_owned()), Ok("{\"done\":true}".to_owned())]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_per_line_and_the_next_line_still_comes() {
        let got = all_lines(&mut LineReader::new(), &[b"ab\xff\ncd\n"]);
        assert_eq!(
            got,
            vec![
                Err(LineError::InvalidUtf8 { valid_up_to: 2 }),
                Ok("cd".to_owned())
            ]
        );
    }

    #[test]
    fn over_long_line_fails_before_its_newline_arrives_and_the_reader_resyncs() {
        let mut reader = LineReader::with_max_line(8);
        assert_eq!(reader.push(b"0123456"), vec![]);
        assert_eq!(
            reader.push(b"89abc"),
            vec![Err(LineError::TooLong { limit: 8 })]
        );
        assert_eq!(
            reader.buffered(),
            0,
            "must not keep buffering the over-long line"
        );
        assert_eq!(reader.push(b"more of it"), vec![]);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.push(b"end\nok\n"), vec![Ok("ok".to_owned())]);
    }

    #[test]
    fn over_long_complete_line_in_one_push() {
        let got = all_lines(&mut LineReader::with_max_line(4), &[b"12345\n1234\r\n"]);
        assert_eq!(
            got,
            vec![Err(LineError::TooLong { limit: 4 }), Ok("1234".to_owned())]
        );
    }

    #[test]
    fn line_of_exactly_the_cap_split_before_its_crlf_is_accepted() {
        let mut reader = LineReader::with_max_line(4);
        assert_eq!(reader.push(b"1234\r"), vec![]);
        assert_eq!(reader.push(b"\n"), vec![Ok("1234".to_owned())]);
    }

    #[test]
    fn eof_mid_line_returns_the_partial_line_once() {
        let mut reader = LineReader::new();
        assert_eq!(
            reader.push(b"{\"a\":1}\n{\"model\":\"x\",\"cont"),
            vec![Ok("{\"a\":1}".to_owned())]
        );
        assert_eq!(
            reader.finish(),
            Some(Ok("{\"model\":\"x\",\"cont".to_owned()))
        );
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn eof_inside_a_multibyte_character_is_invalid_utf8() {
        let mut reader = LineReader::new();
        let emoji = "🤖".as_bytes();
        assert_eq!(reader.push(&emoji[..2]), vec![]);
        assert_eq!(
            reader.finish(),
            Some(Err(LineError::InvalidUtf8 { valid_up_to: 0 }))
        );
    }
}
