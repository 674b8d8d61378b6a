//! Kind 4 (a pooled connection the server already closed is replaced once, inside the client)
//! and kind 5 (loading is not stalling: `load_timeout` until the first line, `idle_timeout`
//! between reads), against the fake server. Time limits run on tokio's paused clock.

use std::time::Duration;

use serde_json::json;

use super::client_tests::hello;
use super::fake_server::{
    chunk, end_chunks, json_reply, keep_alive_json, ndjson_head, FakeServer, Step,
};
use super::{ChatChunk, ChatStream, Client, ClientConfig, OllamaError, StallLimit};

const DONE: &[u8] = b"{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n";

fn token(text: &str) -> Vec<u8> {
    format!("{{\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"done\":false}}\n")
        .into_bytes()
}

/// The node's defaults: 5 s to connect, 300 s to start answering, 60 s of silence.
fn defaults(url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: url.to_owned(),
        ..ClientConfig::default()
    })
    .expect("client")
}

async fn drain(stream: &mut ChatStream) -> (String, Option<OllamaError>) {
    let mut text = String::new();
    while let Some(item) = stream.next_chunk().await {
        match item {
            Ok(c) => text.push_str(ChatChunk::content(&c)),
            Err(e) => return (text, Some(e)),
        }
    }
    (text, None)
}

fn answer() -> Vec<Step> {
    vec![
        ndjson_head(),
        chunk(&token("Hi")),
        chunk(DONE),
        end_chunks(),
    ]
}

/// Connection 1 answers `/api/version` and stays open; the next request on it gets `ending`.
fn stale_then(ending: Vec<Step>) -> Vec<Step> {
    let mut steps = vec![
        keep_alive_json(&json!({"version": "0.12.3"})),
        Step::NextRequest,
    ];
    steps.extend(ending);
    steps
}

#[tokio::test]
async fn a_pooled_connection_closed_as_the_request_is_sent_is_replaced_once() {
    // Variants of "the server closed the idle connection as the request went out": a clean
    // close (FIN) and a reset (RST), for a chat and for a quick call. No response byte arrived,
    // so the client sends once more on a new connection, with no retry setting involved.
    for (what, ending) in [("close", vec![]), ("reset", vec![Step::Reset])] {
        let mut server = FakeServer::start(vec![stale_then(ending.clone()), answer()]).await;
        let c = defaults(&server.url);
        assert_eq!(c.version().await.unwrap(), "0.12.3");
        let mut stream = c
            .chat_stream(&hello())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(drain(&mut stream).await, ("Hi".into(), None), "{what}");
        let paths: Vec<String> = [
            server.request().await,
            server.request().await,
            server.request().await,
        ]
        .into_iter()
        .map(|r| r.path)
        .collect();
        assert_eq!(paths, ["/api/version", "/api/chat", "/api/chat"], "{what}");

        let mut server = FakeServer::start(vec![
            stale_then(ending),
            vec![json_reply(200, "OK", &json!({"version": "0.12.4"}))],
        ])
        .await;
        let c = defaults(&server.url);
        assert_eq!(c.version().await.unwrap(), "0.12.3");
        assert_eq!(
            c.version().await.unwrap(),
            "0.12.4",
            "{what}: quick calls too"
        );
        for _ in 0..3 {
            server.request().await;
        }
    }
}

#[tokio::test]
async fn a_request_whose_answer_had_started_is_never_sent_again() {
    // The headers came, then the connection closed before any line: the stream reports the cut
    // (retryable, 0 chunks), and the client itself does not send the request again.
    let mut server = FakeServer::start(vec![stale_then(vec![ndjson_head()]), answer()]).await;
    let c = defaults(&server.url);
    c.version().await.unwrap();
    let mut stream = c.chat_stream(&hello()).await.unwrap();
    let (text, err) = drain(&mut stream).await;
    assert_eq!(text, "");
    assert!(
        matches!(err, Some(OllamaError::Truncated { chunks: 0, .. })),
        "{err:?}"
    );
    server.request().await;
    server.request().await;
    assert!(
        server.requests.try_recv().is_err(),
        "the chat was sent twice"
    );
}

#[tokio::test(start_paused = true)]
async fn a_model_load_longer_than_the_idle_timeout_is_not_a_stall() {
    // 200 s before the headers, then 100 s before the first line: 300 s of loading, inside
    // connect + load timeout (305 s), though far past the 60 s idle timeout.
    let server = FakeServer::start(vec![vec![
        Step::Pause(Duration::from_secs(200)),
        ndjson_head(),
        Step::Pause(Duration::from_secs(100)),
        chunk(&token("Hi")),
        Step::Pause(Duration::from_secs(59)),
        chunk(DONE),
        end_chunks(),
    ]])
    .await;
    let mut stream = defaults(&server.url)
        .chat_stream(&hello())
        .await
        .expect("headers after 200 s");
    assert_eq!(drain(&mut stream).await, ("Hi".into(), None));
}

/// The error a chat gets from `script`, with the node's default limits.
async fn stall(script: Vec<Step>) -> OllamaError {
    let server = FakeServer::start(vec![script]).await;
    match defaults(&server.url).chat_stream(&hello()).await {
        Err(e) => e,
        Ok(mut stream) => drain(&mut stream).await.1.expect("an error"),
    }
}

#[tokio::test(start_paused = true)]
async fn each_limit_fires_where_it_applies_and_says_which() {
    let load = |awaiting_headers| (StallLimit::Load, Duration::from_secs(300), awaiting_headers);
    let idle = (StallLimit::Idle, Duration::from_secs(60), false);
    let cases = [
        (
            "no headers",
            vec![Step::Pause(Duration::from_secs(400))],
            load(true),
        ),
        (
            "headers, no first line",
            vec![ndjson_head(), Step::Pause(Duration::from_secs(400))],
            load(false),
        ),
        (
            "headers late, first line past the shared deadline",
            vec![
                Step::Pause(Duration::from_secs(200)),
                ndjson_head(),
                Step::Pause(Duration::from_secs(110)),
            ],
            load(false),
        ),
        (
            "half a first line does not extend the load limit",
            vec![
                ndjson_head(),
                chunk(b"{\"message\":"),
                Step::Pause(Duration::from_secs(400)),
            ],
            load(false),
        ),
        (
            "blank lines are not a first line",
            vec![
                ndjson_head(),
                chunk(b"\n\n"),
                Step::Pause(Duration::from_secs(400)),
            ],
            load(false),
        ),
        (
            "silence after the first line",
            vec![
                ndjson_head(),
                chunk(&token("Hi")),
                Step::Pause(Duration::from_secs(61)),
            ],
            idle,
        ),
    ];
    for (what, script, (limit, after, awaiting_headers)) in cases {
        let err = stall(script).await;
        let OllamaError::Stalled {
            after: a,
            limit: l,
            awaiting_headers: h,
            ..
        } = err
        else {
            panic!("{what}: {err:?}")
        };
        assert_eq!((l, a, h), (limit, after, awaiting_headers), "{what}");
        let named = match limit {
            StallLimit::Load => "(the load timeout)",
            StallLimit::Idle => "(the idle timeout)",
        };
        assert!(err.to_string().contains(named), "{what}: {err}");
    }
}

#[tokio::test(start_paused = true)]
async fn quick_calls_wait_the_idle_timeout_not_the_load_timeout() {
    let server = FakeServer::start(vec![vec![Step::Pause(Duration::from_secs(100))]]).await;
    let err = defaults(&server.url).show("llama3.2").await.unwrap_err();
    assert!(
        matches!(err, OllamaError::Stalled { limit: StallLimit::Idle, awaiting_headers: true, after, .. } if after == Duration::from_secs(60)),
        "{err:?}"
    );
}
