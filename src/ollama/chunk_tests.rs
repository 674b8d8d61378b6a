//! Kind 3 ("read streams as Ollama's own client reads them"): one table of stream bodies, each
//! a variant of a line Go's client (`api/client.go` + `encoding/json` into `api.ChatResponse`)
//! accepts or rejects, with the text it reads and where the answer ends. Every body goes
//! through the whole reader (lines, decoding, end of stream), in memory.

use std::time::Duration;

use bytes::Bytes;

use super::body::Limits;
use super::chunk::parse_line;
use super::{ChatChunk, ChatStream, OllamaError, DONE_REASON_END_OF_STREAM};

/// What a body must give.
#[derive(Debug)]
enum Want {
    /// The answer text and the final `done_reason`.
    Answer(&'static str, Option<&'static str>),
    /// This text so far, then a server error with this text.
    Server(&'static str, &'static str),
    /// This text so far, then a protocol error.
    Protocol(&'static str),
    /// A cut after this many chunks.
    Truncated(usize),
}

const DONE: &str =
    r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#;

/// A body of `lines` (each followed by `\n`).
fn body(lines: &[&[u8]]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

/// Reads `bytes` (in pieces of `step` bytes) to the end: text, final chunk, error.
async fn read(bytes: &[u8], step: usize) -> (String, Option<ChatChunk>, Option<OllamaError>) {
    let parts: Vec<Result<Bytes, String>> = bytes
        .chunks(step.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let limits = Limits::chat(Duration::from_secs(5), Duration::from_secs(5));
    let mut s = ChatStream::from_byte_stream(
        futures::stream::iter(parts),
        limits,
        "mem".into(),
        "m".into(),
    );
    let (mut text, mut last) = (String::new(), None);
    while let Some(item) = s.next_chunk().await {
        match item {
            Ok(chunk) => {
                text.push_str(chunk.content());
                last = Some(chunk);
            }
            Err(e) => return (text, last, Some(e)),
        }
    }
    (text, last, None)
}

fn check(what: &str, got: (String, Option<ChatChunk>, Option<OllamaError>), want: &Want) {
    let (text, last, err) = got;
    match (want, err) {
        (Want::Answer(t, reason), None) => {
            let last = last.unwrap_or_else(|| panic!("{what}: no chunk"));
            assert!(last.done, "{what}: the last chunk must be done");
            assert_eq!(
                (text.as_str(), last.done_reason.as_deref()),
                (*t, *reason),
                "{what}"
            );
        }
        (Want::Server(t, msg), Some(OllamaError::Server(m))) => {
            assert_eq!((text.as_str(), m.as_str()), (*t, *msg), "{what}")
        }
        (Want::Protocol(t), Some(OllamaError::Protocol(_))) => assert_eq!(text, *t, "{what}"),
        (Want::Truncated(n), Some(OllamaError::Truncated { chunks, .. })) => {
            assert_eq!(chunks, *n, "{what}")
        }
        (want, err) => panic!("{what}: want {want:?}, got text {text:?}, error {err:?}"),
    }
}

/// Line variants, each followed by the standard done line.
fn line_variants() -> Vec<(&'static str, Vec<u8>, Want)> {
    let v = |what, line: &[u8], want| (what, body(&[line, DONE.as_bytes()]), want);
    let stop = Some("stop");
    vec![
        v("plain", br#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#, Want::Answer("Hi", stop)),
        v("keys in any case", br#"{"MESSAGE":{"Content":"Hi","ROLE":"assistant"},"Done":false}"#, Want::Answer("Hi", stop)),
        v("Go folds U+017F to s", "{\"me\u{17f}\u{17f}age\":{\"content\":\"Hi\"},\"done\":false}".as_bytes(), Want::Answer("Hi", stop)),
        v("escaped key", br#"{"m\u0065ssage":{"c\u006Fntent":"Hi"},"done":false}"#, Want::Answer("Hi", stop)),
        v("other non-ASCII key is unknown", "{\"m\u{e9}ssage\":{\"content\":\"x\"},\"done\":false}".as_bytes(), Want::Answer("", stop)),
        v("duplicate key: last wins", br#"{"message":{"content":"a","content":"b"},"done":false}"#, Want::Answer("b", stop)),
        v("duplicate key in two cases", br#"{"message":{"content":"a","CONTENT":"b"},"done":false}"#, Want::Answer("b", stop)),
        v("duplicate object merges", br#"{"message":{"content":"a"},"message":{"role":"assistant"},"done":false}"#, Want::Answer("a", stop)),
        v("null after a value keeps it", br#"{"message":{"content":"a","content":null},"done":false}"#, Want::Answer("a", stop)),
        v("null content", br#"{"message":{"role":"assistant","content":null},"done":false}"#, Want::Answer("", stop)),
        v("null message", br#"{"model":"m","message":null,"done":false}"#, Want::Answer("", stop)),
        v("null done", br#"{"message":{"content":"x"},"done":null}"#, Want::Answer("x", stop)),
        v("null role, images, tool calls", br#"{"message":{"role":null,"content":"x","images":null,"tool_calls":null},"done":false}"#, Want::Answer("x", stop)),
        v("unknown role", br#"{"message":{"role":"model","content":"x"},"done":false}"#, Want::Answer("x", stop)),
        v("no done field", br#"{"message":{"content":"x"}}"#, Want::Answer("x", stop)),
        v("empty object", b"{}", Want::Answer("", stop)),
        v("JSON null line", b"null", Want::Answer("", stop)),
        v("only unknown fields", br#"{"status":"pulling","id":"chatcmpl-1"}"#, Want::Answer("", stop)),
        v("unknown fields of every type", br#"{"x":{"deep":[1,{"y":null},[[[]]]]},"usage":{"prompt_tokens":3},"n":1e400,"message":{"content":"x","extra":[true]},"done":false}"#, Want::Answer("x", stop)),
        v("whitespace around the value", b" \t{\"message\":{\"content\":\"x\"},\"done\":false} \t", Want::Answer("x", stop)),
        v("all JSON escapes", br#"{"message":{"content":"\"\\\/\b\f\n\r\t\u00e9\u003c\ud83d\ude00"},"done":false}"#, Want::Answer("\"\\/\u{8}\u{c}\n\r\té<😀", stop)),
        v("lone high surrogate", br#"{"message":{"content":"a\ud800b"},"done":false}"#, Want::Answer("a\u{FFFD}b", stop)),
        v("lone low surrogate", br#"{"message":{"content":"a\uDC00"},"done":false}"#, Want::Answer("a\u{FFFD}", stop)),
        v("reversed pair", br#"{"message":{"content":"\ude00\ud83d"},"done":false}"#, Want::Answer("\u{FFFD}\u{FFFD}", stop)),
        v("invalid UTF-8, one U+FFFD per byte", b"{\"message\":{\"content\":\"caf\xc3 \xf0\x9f\x98!\"},\"done\":false}", Want::Answer("caf\u{FFFD} \u{FFFD}\u{FFFD}\u{FFFD}!", stop)),
        v("thinking and tool calls in any case", br#"{"message":{"Thinking":"t","Tool_Calls":[{"Function":{"Name":"f","Arguments":{"a":1}}}]},"done":false}"#, Want::Answer("", stop)),
        v("error null", br#"{"error":null,"message":{"content":"x"},"done":false}"#, Want::Answer("x", stop)),
        v("error empty", br#"{"error":"","message":{"content":"x"},"done":false}"#, Want::Answer("x", stop)),
        v("error repeated, last empty", br#"{"error":"a","error":"","done":false}"#, Want::Answer("", stop)),
        v("error in capitals", br#"{"ERROR":"boom"}"#, Want::Server("", "boom")),
        v("error beside a bad field", br#"{"done":"yes","error":"boom"}"#, Want::Server("", "boom")),
        v("OpenAI-style error object", br#"{"error":{"message":"rate limited","type":"requests"}}"#, Want::Server("", "rate limited")),
        v("done of the wrong type", br#"{"message":{"content":"x"},"done":"yes"}"#, Want::Protocol("")),
        v("content of the wrong type", br#"{"message":{"content":5}}"#, Want::Protocol("")),
        v("message of the wrong type", br#"{"message":"hi"}"#, Want::Protocol("")),
        v("array line", b"[1,2]", Want::Protocol("")),
        v("string line", br#""hi""#, Want::Protocol("")),
        v("not JSON", b"data: {\"x\":1}", Want::Protocol("")),
        v("trailing garbage", br#"{"done":false} x"#, Want::Protocol("")),
        v("invalid escape", br#"{"message":{"content":"\x41"}}"#, Want::Protocol("")),
        v("raw control character", b"{\"message\":{\"content\":\"a\x01\"}}", Want::Protocol("")),
    ]
}

/// Final lines and ends of stream.
fn ending_variants() -> Vec<(&'static str, Vec<u8>, Want)> {
    let hi: &[u8] = br#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#;
    let end = Some(DONE_REASON_END_OF_STREAM);
    vec![
        ("done with content", body(&[hi, br#"{"message":{"content":"!"},"done":true,"done_reason":"stop"}"#]), Want::Answer("Hi!", Some("stop"))),
        ("done without done_reason", body(&[hi, br#"{"done":true}"#]), Want::Answer("Hi", None)),
        ("done_reason null", body(&[hi, br#"{"done":true,"done_reason":null}"#]), Want::Answer("Hi", None)),
        ("done without message", body(&[hi, br#"{"model":"m","done":true,"done_reason":"length","eval_count":2}"#]), Want::Answer("Hi", Some("length"))),
        ("done, message null, usage extras", body(&[hi, br#"{"message":null,"done":true,"done_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2},"timings":{"predicted_n":2}}"#]), Want::Answer("Hi", Some("stop"))),
        ("metrics as 1e3 and 1.0, negative, null", body(&[hi, br#"{"done":true,"done_reason":"stop","eval_count":1e3,"total_duration":1.0,"load_duration":-1,"prompt_eval_count":null,"eval_duration":2.5}"#]), Want::Answer("Hi", Some("stop"))),
        ("DONE in capitals", body(&[hi, br#"{"DONE":true,"Done_Reason":"stop"}"#]), Want::Answer("Hi", Some("stop"))),
        ("lines after done are not read", body(&[hi, DONE.as_bytes(), br#"{"message":{"content":"late"}}"#]), Want::Answer("Hi", Some("stop"))),
        ("CRLF and blank lines", [&b"\r\n"[..], hi, b"\r\n\r\n", DONE.as_bytes(), b"\r\n"].concat(), Want::Answer("Hi", Some("stop"))),
        ("last line without newline", [&body(&[hi])[..], DONE.as_bytes()].concat(), Want::Answer("Hi", Some("stop"))),
        ("clean end without done: complete, as Go", body(&[hi, br#"{"message":{"content":" there"}}"#]), Want::Answer("Hi there", end)),
        ("clean end without done, last line unterminated", [&body(&[hi])[..], br#"{"message":{"content":"!"}}"#].concat(), Want::Answer("Hi!", end)),
        ("clean end mid-line", [&body(&[hi])[..], br#"{"message":{"cont"#].concat(), Want::Truncated(1)),
        ("clean end before any line", Vec::new(), Want::Truncated(0)),
        ("only blank lines", b"\n\r\n  \n".to_vec(), Want::Truncated(0)),
        ("error line after text", body(&[hi, br#"{"error":"an error was encountered while running the model"}"#, DONE.as_bytes()]), Want::Server("Hi", "an error was encountered while running the model")),
    ]
}

#[tokio::test]
async fn every_line_variant_reads_as_go_reads_it() {
    for (what, bytes, want) in line_variants().into_iter().chain(ending_variants()) {
        check(what, read(&bytes, bytes.len()).await, &want);
    }
}

#[tokio::test]
async fn every_variant_reads_the_same_fed_byte_by_byte() {
    for (what, bytes, want) in line_variants().into_iter().chain(ending_variants()) {
        check(what, read(&bytes, 1).await, &want);
    }
}

#[test]
fn chunk_fields_are_read_with_go_rules() {
    let c = parse_line(br#"{"Model":"m","created_at":"t","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}},null]},"done":false}"#).unwrap();
    assert_eq!((c.model.as_str(), c.tool_calls().len()), ("m", 2));
    assert_eq!(c.tool_calls()[0].id.as_deref(), Some("call_1"));
    assert_eq!(c.tool_calls()[0].function.arguments["city"], "Tokyo");
    assert_eq!(
        c.tool_calls()[1].function.name,
        "",
        "null element: a zero tool call, as Go"
    );
    // Arguments given twice merge like a Go map; index past u32 is dropped.
    let c = parse_line(br#"{"message":{"tool_calls":[{"function":{"index":5e9,"arguments":{"a":1},"arguments":{"b":2}}}]}}"#).unwrap();
    let f = &c.tool_calls()[0].function;
    assert_eq!(
        (f.index, f.arguments.clone()),
        (None, serde_json::json!({"a": 1, "b": 2}))
    );
    let last = parse_line(br#"{"done":true,"total_duration":4883583458,"eval_count":1e3,"eval_duration":2.5,"load_duration":-1,"prompt_eval_count":18446744073709551615,"prompt_eval_duration":1e20}"#).unwrap();
    assert_eq!(
        (
            last.total_duration,
            last.eval_count,
            last.eval_duration,
            last.load_duration,
            last.prompt_eval_count,
            last.prompt_eval_duration
        ),
        (
            Some(4883583458),
            Some(1000),
            None,
            None,
            Some(u64::MAX),
            None
        )
    );
    let thinking = parse_line(br#"{"message":{"thinking":"Hmm","THINKING":"Hmm!"}}"#).unwrap();
    assert_eq!((thinking.thinking(), thinking.done), ("Hmm!", false));
    // serde's Deserialize for ChatChunk uses the same rules.
    let c: ChatChunk =
        serde_json::from_str(r#"{"DONE":true,"done_reason":"stop","done_reason":null}"#).unwrap();
    assert_eq!((c.done, c.done_reason.as_deref()), (true, Some("stop")));
}

#[test]
fn protocol_errors_quote_a_short_excerpt() {
    for garbage in [
        "not json",
        "[1,2]",
        "42",
        r#"{"done":"yes"}"#,
        "{\"done\":tr",
    ] {
        match parse_line(garbage.as_bytes()) {
            Err(OllamaError::Protocol(msg)) => assert!(msg.contains(garbage), "{msg}"),
            other => panic!("{garbage}: {other:?}"),
        }
    }
    let long = format!("{{\"x\":\"{}\"", "é".repeat(500));
    let Err(OllamaError::Protocol(msg)) = parse_line(long.as_bytes()) else {
        panic!()
    };
    assert!(msg.len() < 400, "excerpt must stay short: {}", msg.len());
}
