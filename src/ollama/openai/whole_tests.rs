//! Tests of a whole `chat.completion` body on the streamed path (a server or proxy that ignored
//! `stream: true`): compact, pretty-printed, CRLF, split at every byte, or sent as one event; what
//! the object may say; every way it can be wrong (error object, cut, not JSON, no choices, empty,
//! garbage); once over a kept-alive socket, which must not wait for the connection to close.

use serde_json::{json, Value};

use super::sse_tests::drain_parts;
use super::tests::openai_client;
use crate::ollama::fake_server::{FakeServer, Step};
use crate::ollama::{ChatChunk, ChatRequest, Message, OllamaError};

/// A `chat.completion` with content, reasoning, one tool call, the finish and the usage.
fn completion() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "/models/x.gguf",
           "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
               "role": "assistant", "content": "Hello é🤖. Bye.", "reasoning_content": "think ",
               "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
}

/// What a final chunk says, in one comparable tuple.
type Said = (String, String, Vec<(Option<String>, String, Value)>, Option<String>, Option<u64>, Option<u64>);

fn said(chunk: &ChatChunk) -> Said {
    let calls = chunk.tool_calls().iter().map(|c| (c.id.clone(), c.function.name.clone(), c.function.arguments.clone()));
    (chunk.content().into(), chunk.thinking().into(), calls.collect(), chunk.done_reason.clone(), chunk.prompt_eval_count,
     chunk.eval_count)
}

fn want_completion() -> Said {
    ("Hello é🤖. Bye.".into(), "think ".into(), vec![(Some("c1".into()), "f".into(), json!({"a": 1}))],
     Some("tool_calls".into()), Some(12), Some(7))
}

/// The one final chunk of `body` fed in two parts cut at `cut`.
async fn final_of(body: &str, cut: usize) -> Result<ChatChunk, String> {
    let bytes = body.as_bytes();
    let (chunks, error) = drain_parts(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]).await;
    match (chunks.as_slice(), error) {
        ([last], None) if last.done => Ok(last.clone()),
        (chunks, error) => Err(format!("{chunks:?} {error:?}")),
    }
}

#[tokio::test]
async fn a_whole_body_compact_or_pretty_split_at_every_byte_is_one_final_chunk() {
    let value = completion();
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    let bodies = [value.to_string(), format!("{value}\n"), format!("\n\r\n  {pretty}\n\n"), pretty.replace('\n', "\r\n"),
                  format!(": a proxy's comment\n\n{pretty}")];
    for body in &bodies {
        for cut in 0..=body.len() {
            let last = final_of(body, cut).await.unwrap_or_else(|e| panic!("{body:?} cut at {cut}: {e}"));
            assert_eq!(said(&last), want_completion(), "{body:?} cut at {cut}");
            assert_eq!(last.model, "smollm2:135m", "the requested name");
            assert!(last.total_duration.is_some() && last.eval_duration.is_none(), "only the total is measured: {last:?}");
        }
    }
    let parts: Vec<Vec<u8>> = bodies[2].as_bytes().iter().map(|b| vec![*b]).collect();
    let (chunks, error) = drain_parts(parts).await;
    assert_eq!((chunks.iter().map(said).collect::<Vec<_>>(), error), (vec![want_completion()], None), "byte by byte");
}

#[tokio::test]
async fn what_the_object_may_say() {
    let message = |m: Value| json!({"object": "chat.completion", "choices": [{"index": 0, "message": m}]});
    let no_calls = |content: &str, thinking: &str, reason: &str| -> Said {
        (content.into(), thinking.into(), vec![], Some(reason.into()), None, None)
    };
    let cases: Vec<(Value, Said)> = vec![
        // Ollama's /v1 names reasoning `reasoning`; no finish_reason and no usage: stop, no counts
        (message(json!({"role": "assistant", "content": "Hi", "reasoning": "hmm"})), no_calls("Hi", "hmm", "stop")),
        // content as text parts
        (message(json!({"content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"text": "b"}]})),
         no_calls("ab", "", "stop")),
        // only tool calls: content null, arguments sent as an object, no id
        (json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null, "tool_calls": [
            {"type": "function", "function": {"name": "g", "arguments": {"b": true}}},
            {"id": "c2", "function": {"name": "h", "arguments": ""}}]}}]}),
         (String::new(), String::new(), vec![(None, "g".into(), json!({"b": true})), (Some("c2".into()), "h".into(), json!({}))],
          Some("tool_calls".into()), None, None)),
        // one chunk object (delta) instead of a message; length; an empty answer is still an answer
        (json!({"choices": [{"delta": {"content": "cut"}, "finish_reason": "length"}], "usage": {"completion_tokens": 1}}),
         ("cut".into(), String::new(), vec![], Some("length".into()), None, Some(1))),
        (message(json!({"role": "assistant", "content": ""})), no_calls("", "", "stop")),
    ];
    for (value, want) in cases {
        let body = serde_json::to_string_pretty(&value).unwrap_or_default();
        let last = final_of(&body, body.len() / 2).await.unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(said(&last), want, "{body}");
    }
}

#[tokio::test]
async fn a_wrong_body_is_one_clear_error() {
    let error_object = json!({"error": {"message": "model overloaded", "type": "server_error", "code": 503}});
    let cases: Vec<(String, &str)> = vec![
        (serde_json::to_string_pretty(&error_object).unwrap_or_default(), "server:model overloaded"),
        (r#"{"error": "boom"}"#.into(), "server:boom"),
        (String::new(), "truncated"),
        ("\n\n".into(), "truncated"),
        ("<html>502 Bad Gateway</html>\n".into(), "truncated"),
        // cut inside the object
        (r#"{"choices": [{"message": {"content": "Hi"#.into(), "truncated"),
        ("{not json}\n".into(), "protocol"),
        (r#"{"choices": [{"message": {"content": "Hi"}}]} trailing"#.into(), "protocol"),
        (r#"{"id": "x", "object": "chat.completion"}"#.into(), "protocol"),
        (r#"{"choices": []}"#.into(), "protocol"),
        (r#"{"choices": [{"index": 0}]}"#.into(), "protocol"),
        (r#"{"choices": [{"message": null}]}"#.into(), "protocol"),
    ];
    for (body, want) in cases {
        let (chunks, error) = drain_parts(vec![body.as_bytes().to_vec()]).await;
        let got = match &error {
            Some(OllamaError::Server(message)) => format!("server:{message}"),
            Some(e) => e.kind().to_string(),
            None => format!("no error: {chunks:?}"),
        };
        assert_eq!((got.as_str(), chunks.len()), (want, 0), "{body:?}: {error:?}");
    }
}

#[tokio::test]
async fn a_body_cut_anywhere_is_a_cut() {
    let pretty = serde_json::to_string_pretty(&completion()).unwrap_or_default();
    for end in 1..pretty.len() {
        let (chunks, error) = drain_parts(vec![pretty.as_bytes()[..end].to_vec()]).await;
        assert_eq!((chunks.len(), error.as_ref().map(OllamaError::kind)), (0, Some("truncated")), "cut at {end}: {error:?}");
    }
}

#[tokio::test]
async fn only_the_first_line_decides_an_event_stream_stays_one() {
    let piece = json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]});
    let (chunks, error) = drain_parts(vec![format!("data: {piece}\n\n{}\n", completion()).into_bytes()]).await;
    assert_eq!(chunks.iter().map(ChatChunk::content).collect::<Vec<_>>(), ["Hi"]);
    assert_eq!(error.map(|e| e.kind()), Some("truncated"), "a later object line is an unknown field");
}

#[tokio::test]
async fn a_whole_object_sent_as_one_event_is_read_too() {
    let (chunks, error) = drain_parts(vec![format!("data: {}\n\ndata: [DONE]\n\n", completion()).into_bytes()]).await;
    assert_eq!(error, None);
    let [piece, last] = chunks.as_slice() else { panic!("{chunks:?}") };
    assert_eq!((piece.content(), piece.thinking(), last.done), ("Hello é🤖. Bye.", "think ", true));
    let (_, _, calls, reason, prompt, eval) = want_completion();
    assert_eq!(said(last), (String::new(), String::new(), calls, reason, prompt, eval));
}

#[tokio::test]
async fn over_a_kept_alive_socket_the_answer_ends_with_its_body() {
    let body = serde_json::to_string_pretty(&completion()).unwrap_or_default() + "\n";
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut server = FakeServer::start(vec![vec![Step::Send(head.into_bytes()), Step::Send(body.into_bytes())]]).await;
    let client = openai_client(&server.url);
    let mut stream = client.chat_stream(&ChatRequest::new("smollm2:135m", vec![Message::user("hi")])).await.unwrap();
    let last = stream.next_chunk().await.map(|c| c.map_err(|e| e.to_string()));
    let last = last.unwrap_or_else(|| Err("no chunk".into())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((said(&last), last.done), (want_completion(), true), "not a stall: the body's length ends it");
    assert!(stream.next_chunk().await.is_none());
    assert_eq!(server.request().await.json()["stream"], json!(true));
}
