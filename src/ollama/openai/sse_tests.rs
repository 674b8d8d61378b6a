//! Tests of the streamed OpenAI answer: events split anywhere, reasoning, tool calls in pieces,
//! counts and durations, and every way the stream can end (`[DONE]`, finish without it, error
//! events of both shapes, a cut, bad JSON). In memory, and once over a socket.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::tests::openai_client;
use crate::ollama::body::Limits;
use crate::ollama::fake_server::{FakeServer, Step};
use crate::ollama::{ChatChunk, ChatRequest, ChatStream, Message, OllamaError};

fn event(payload: serde_json::Value) -> String {
    format!("data: {payload}\n\n")
}

fn delta(delta: serde_json::Value, finish: Option<&str>) -> String {
    event(json!({"id": "c1", "object": "chat.completion.chunk", "model": "/models/x.gguf",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
}

fn usage(prompt: u64, completion: u64) -> String {
    event(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                 "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}))
}

/// A whole answer as llama.cpp's server sends it: role-only first delta, pieces, finish, usage, [DONE].
fn answer() -> String {
    [delta(json!({"role": "assistant", "content": null}), None), ": keep-alive comment\n".into(),
     delta(json!({"reasoning_content": "think "}), None), delta(json!({"content": "Hel"}), None),
     delta(json!({"content": "lo é🤖"}), None), delta(json!({}), Some("length")), usage(32, 5), "data: [DONE]\n\n".into()]
        .concat()
}

/// Drains a stream fed `parts`: its chunks and the error that ended it.
pub(super) async fn drain_parts(parts: Vec<Vec<u8>>) -> (Vec<ChatChunk>, Option<OllamaError>) {
    let body = futures::stream::iter(parts.into_iter().map(|p| Ok::<_, String>(Bytes::from(p))));
    let limits = Limits::chat(Duration::from_secs(5), Duration::from_secs(5));
    let mut stream = ChatStream::sse_from_byte_stream(body, limits, "smollm2:135m");
    let mut chunks = Vec::new();
    while let Some(item) = stream.next_chunk().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(e) => {
                assert!(stream.next_chunk().await.is_none(), "an error ends the stream");
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

async fn drain(text: &str) -> (Vec<ChatChunk>, Option<OllamaError>) {
    drain_parts(vec![text.as_bytes().to_vec()]).await
}

#[tokio::test]
async fn an_answer_split_at_every_byte_gives_the_same_chunks() {
    let text = answer();
    let (whole, error) = drain(&text).await;
    assert_eq!(error, None);
    let pieces: Vec<(&str, &str)> = whole.iter().map(|c| (c.thinking(), c.content())).collect();
    assert_eq!(pieces, [("think ", ""), ("", "Hel"), ("", "lo é🤖"), ("", "")]);
    let last = whole.last().cloned().unwrap_or_default();
    assert_eq!((last.done, last.done_reason.as_deref(), last.prompt_eval_count, last.eval_count),
               (true, Some("length"), Some(32), Some(5)));
    assert_eq!(last.model, "smollm2:135m", "the requested name, not the engine's file path");
    assert!(last.total_duration.is_some() && last.eval_duration.is_some() && last.prompt_eval_duration.is_some());
    let bytes = text.as_bytes();
    for cut in 1..bytes.len() {
        let (chunks, error) = drain_parts(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]).await;
        assert_eq!(error, None, "cut at {cut}");
        let got: Vec<(&str, &str, bool)> = chunks.iter().map(|c| (c.thinking(), c.content(), c.done)).collect();
        let want: Vec<(&str, &str, bool)> = whole.iter().map(|c| (c.thinking(), c.content(), c.done)).collect();
        assert_eq!(got, want, "cut at {cut}");
    }
}

#[tokio::test]
async fn tool_calls_in_pieces_come_whole_on_the_final_chunk() {
    let text = [
        delta(json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "set_led", "arguments": "{\"da"}}]}), None),
        delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "ta\": true}"}}]}), None),
        delta(json!({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "say", "arguments": ""}}]}), None),
        delta(json!({"tool_calls": [{"index": 2, "id": "call_3", "function": {"name": "odd", "arguments": "{not json"}}]}), None),
        delta(json!({}), Some("tool_calls")), "data: [DONE]\n\n".into(),
    ].concat();
    let (chunks, error) = drain(&text).await;
    assert_eq!((chunks.len(), error), (1, None), "{chunks:?}");
    let calls = chunks[0].tool_calls();
    let got: Vec<_> = calls.iter().map(|c| (c.id.as_deref(), c.function.name.as_str(), c.function.arguments.clone())).collect();
    assert_eq!(got, [(Some("call_1"), "set_led", json!({"data": true})), (Some("call_2"), "say", json!({})),
                     (Some("call_3"), "odd", json!("{not json"))]);
    assert_eq!(chunks[0].done_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn how_a_stream_ends() {
    let piece = delta(json!({"content": "Hi"}), None);
    let cases: Vec<(String, Result<&str, &str>)> = vec![
        // finish_reason without [DONE]: the answer is whole
        (format!("{piece}{}", delta(json!({}), Some("stop"))), Ok("stop")),
        // [DONE] without finish_reason: stop
        (format!("{piece}data: [DONE]\n\n"), Ok("stop")),
        // neither: cut
        (piece.clone(), Err("truncated")),
        // the error event of vLLM, llama.cpp, OpenAI
        (format!("{piece}{}", event(json!({"error": {"message": "out of memory", "type": "server_error", "code": 500}}))),
         Err("server:out of memory")),
        // llama.cpp's older error field line
        (format!("{piece}error: {{\"code\":500,\"message\":\"context shift disabled\"}}\n\n"), Err("server:context shift disabled")),
        // an event named error
        (format!("{piece}event: error\ndata: {{\"message\":\"rate limited\"}}\n\n"), Err("server:rate limited")),
        (format!("{piece}data: {{not json\n\n"), Err("protocol")),
        // cut inside an event: no blank line, the JSON incomplete
        (format!("{piece}data: {{\"choices\":[{{\"delta\":"), Err("truncated")),
        // multi-line data joined with \n (valid JSON across lines)
        (format!("data: {{\"choices\":[{{\"delta\":\ndata: {{\"content\":\"Hi\"}}}}]}}\n\n{}", "data: [DONE]\n\n"), Ok("stop")),
    ];
    for (text, want) in cases {
        let (chunks, error) = drain(&text).await;
        let got: Result<String, String> = match (&error, chunks.last()) {
            (None, Some(last)) if last.done => Ok(last.done_reason.clone().unwrap_or_default()),
            (Some(OllamaError::Server(message)), _) => Err(format!("server:{message}")),
            (Some(e), _) => Err(e.kind().to_string()),
            (None, _) => Err("no final chunk".to_string()),
        };
        let want = want.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(got, want, "{text:?}: {chunks:?} {error:?}");
        assert_eq!(chunks.first().map(|c| c.content()), Some("Hi"), "{text:?}");
    }
}

#[tokio::test]
async fn over_a_socket_the_request_and_its_answer() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let text = answer();
    let (a, b) = text.split_at(text.len() / 2);
    let script = vec![Step::Send(head.as_bytes().to_vec()), Step::Send(a.as_bytes().to_vec()),
                      Step::Pause(Duration::from_millis(20)), Step::Send(b.as_bytes().to_vec())];
    let mut server = FakeServer::start(vec![script]).await;
    let client = openai_client(&server.url);
    let mut stream = client.chat_stream(&ChatRequest::new("smollm2:135m", vec![Message::user("hi")])).await.unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.unwrap();
        text.push_str(chunk.content());
        last = Some(chunk);
    }
    assert_eq!(text, "Hello é🤖");
    let last = last.unwrap_or_default();
    assert_eq!((last.done_reason.as_deref(), last.eval_count), (Some("length"), Some(5)));
    assert!(last.eval_duration.unwrap_or(0) >= 15_000_000, "measured across the pause: {last:?}");
    let got = server.request().await;
    assert_eq!((got.path.as_str(), got.header("accept"), got.header("authorization")),
               ("/v1/chat/completions", Some("text/event-stream"), Some("Bearer sk-test")));
    assert_eq!(got.json()["stream_options"], json!({"include_usage": true}));
}
