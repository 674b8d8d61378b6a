//! [`go_text`]: a stream line's bytes as the JSON text Go's `encoding/json` would read.
//!
//! Go's decoder (`decode.go`, `unquote`): "When unmarshaling quoted strings, invalid UTF-8 or
//! invalid UTF-16 surrogate pairs are not treated as an error. Instead, they are replaced by the
//! Unicode replacement character U+FFFD." It steps through bad UTF-8 with `utf8.DecodeRune`,
//! which consumes one byte per error, so each invalid byte is one U+FFFD (Rust's
//! `from_utf8_lossy` would merge a truncated sequence into one). A `\u` escape of a surrogate
//! is combined with a following `\u` escape when the two form a valid pair
//! (`utf16.DecodeRune`), and is otherwise one U+FFFD; the escape after it is then read on its
//! own. serde_json refuses both, so the line is rewritten into equivalent valid JSON first.
//! Bytes outside strings are left as they are: Go and serde_json both reject them there.

use std::borrow::Cow;

/// A line's bytes as JSON text that serde_json reads exactly as Go does: every invalid UTF-8
/// byte becomes U+FFFD, and every `\u` escape of a surrogate that is not the first half of a
/// valid pair becomes `\ufffd`. Valid input is borrowed unchanged.
pub(crate) fn go_text(line: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(text) if !may_escape_surrogate(line) => Cow::Borrowed(text),
        _ => Cow::Owned(repair(line)),
    }
}

/// Cheap pre-check: a `\u` followed by `d8`-`df` (case-insensitive) somewhere.
fn may_escape_surrogate(line: &[u8]) -> bool {
    line.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && matches!(w[2], b'd' | b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
}

/// The 16-bit value of a `\uXXXX` escape starting at `at`, if there is one.
fn escape_at(line: &[u8], at: usize) -> Option<u16> {
    let hex = line.get(at..at + 6)?;
    if hex[0] != b'\\' || hex[1] != b'u' {
        return None;
    }
    let digits = std::str::from_utf8(&hex[2..]).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// The slow path of [`go_text`]: a small lexer that knows where strings and escapes are.
fn repair(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let (mut i, mut in_string) = (0, false);
    while i < line.len() {
        let byte = line[i];
        if byte >= 0x80 {
            // Go's utf8.DecodeRune: a valid character, or U+FFFD for one byte.
            let len = match byte {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => 0,
            };
            match line
                .get(i..i + len)
                .and_then(|s| std::str::from_utf8(s).ok())
                .filter(|_| len > 0)
            {
                Some(ch) => {
                    out.push_str(ch);
                    i += len;
                }
                None => {
                    out.push('\u{FFFD}');
                    i += 1;
                }
            }
            continue;
        }
        if in_string && byte == b'\\' {
            if let Some(unit) = escape_at(line, i) {
                let high = (0xD800..0xDC00).contains(&unit);
                let paired = high
                    && escape_at(line, i + 6).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                let take = if paired { 12 } else { 6 };
                if (0xD800..0xE000).contains(&unit) && !paired {
                    out.push_str("\\ufffd");
                } else {
                    out.push_str(&String::from_utf8_lossy(&line[i..i + take]));
                }
                i += take;
                continue;
            }
            // Any other escape: the backslash and its (ASCII) letter as they are; serde_json
            // rejects the ones JSON does not allow, as Go's scanner does.
            out.push('\\');
            i += 1;
            if let Some(&next) = line.get(i).filter(|b| b.is_ascii()) {
                out.push(char::from(next));
                i += 1;
            }
            continue;
        }
        if byte == b'"' {
            in_string = !in_string;
        }
        out.push(char::from(byte));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `raw` is a JSON string literal (bytes, maybe invalid); returns the text Go would read.
    fn read(raw: &[u8]) -> String {
        serde_json::from_str::<String>(&go_text(raw)).expect("valid after go_text")
    }

    #[test]
    fn escapes_and_surrogates_read_as_go_reads_them() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "all JSON escapes",
                br#""\" \\ \/ \b \f \n \r \t \u00e9 \u003c""#,
                "\" \\ / \u{8} \u{c} \n \r \t é <",
            ),
            ("valid pair", br#""\ud83d\ude00""#, "😀"),
            ("valid pair, upper-case hex", br#""\uD83D\uDE00!""#, "😀!"),
            ("lone high surrogate", br#""a\ud800b""#, "a\u{FFFD}b"),
            ("lone low surrogate", br#""a\udc00b""#, "a\u{FFFD}b"),
            ("high at the end", br#""a\ud800""#, "a\u{FFFD}"),
            (
                "high then a plain escape",
                br#""\ud800\u0041""#,
                "\u{FFFD}A",
            ),
            ("high then a newline escape", br#""\ud800\n""#, "\u{FFFD}\n"),
            (
                "high, then a valid pair",
                br#""\ud800\ud83d\ude00""#,
                "\u{FFFD}😀",
            ),
            ("low then high", br#""\udc00\ud800""#, "\u{FFFD}\u{FFFD}"),
            ("escaped backslash before u", br#""\\ud800""#, "\\ud800"),
            ("invalid byte", b"\"a\xffb\"", "a\u{FFFD}b"),
            (
                "truncated 4-byte sequence: one per byte",
                b"\"\xf0\x9f\x98!\"",
                "\u{FFFD}\u{FFFD}\u{FFFD}!",
            ),
            ("overlong encoding", b"\"\xc0\xaf\"", "\u{FFFD}\u{FFFD}"),
            (
                "UTF-8 encoded surrogate",
                b"\"\xed\xa0\x80\"",
                "\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            (
                "past U+10FFFF",
                b"\"\xf4\x90\x80\x80\"",
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            ("lone continuation byte", b"\"\x80\"", "\u{FFFD}"),
            (
                "valid non-ASCII untouched",
                "\"café 🤖 日本\"".as_bytes(),
                "café 🤖 日本",
            ),
        ];
        for (what, raw, want) in cases {
            assert_eq!(read(raw), *want, "{what}");
        }
    }

    #[test]
    fn valid_text_is_borrowed_and_repairs_only_touch_strings() {
        let clean = br#"{"a":"\u00e9\ud83d\ude00"}"#;
        assert!(
            matches!(go_text(clean), Cow::Owned(_)),
            "pre-check sees a surrogate escape"
        );
        assert!(matches!(go_text(br#"{"a":"b"}"#), Cow::Borrowed(_)));
        // A key is a string too; structure and bytes between strings are kept.
        assert_eq!(
            go_text(b"{\"k\\udfff\": [1, \"\xff\"]}"),
            "{\"k\\ufffd\": [1, \"\u{FFFD}\"]}"
        );
        // A bad byte outside a string stays invalid JSON, as in Go.
        assert!(serde_json::from_str::<serde_json::Value>(&go_text(b"{\"a\":1}\xff")).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&go_text(br#"{"a":"\x41"}"#)).is_err());
    }
}
