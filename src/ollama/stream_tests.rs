//! Tests of [`ChatStream`]: byte splits, end of stream, `{"error"}` lines, cuts, stalls,
//! cancellation by drop. Uses the fake server, or an in-memory body for exhaustive splits.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::body::Limits;
use super::client_tests::{client, hello};
use super::fake_server::{
    api_chat_transcript, chunk, end_chunks, ndjson_head, unframed_ndjson_head, Event, FakeServer,
    Step,
};
use super::{ChatChunk, ChatStream, Client, ClientConfig, OllamaError, StallLimit, MAX_LINE_BYTES};

/// The api-chat.md streaming transcript, with a CRLF and a blank line.
fn transcript() -> String {
    api_chat_transcript(["\n", "\r\n\n", "\n"])
}

const DONE: &[u8] = b"{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n";

fn token(text: &str) -> Vec<u8> {
    format!("{{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"done\":false}}\n")
        .into_bytes()
}

/// Drains the stream: the chunks, then the error that ended it (if any).
async fn drain(stream: &mut ChatStream) -> (Vec<ChatChunk>, Option<OllamaError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next_chunk().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(
                    stream.next_chunk().await.is_none(),
                    "an error must end the stream"
                );
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

async fn run(script: Vec<Step>) -> (Vec<ChatChunk>, Option<OllamaError>) {
    let server = FakeServer::start(vec![script]).await;
    let mut stream = client(&server.url)
        .chat_stream(&hello())
        .await
        .expect("200");
    drain(&mut stream).await
}

/// In-memory limits: `n` seconds for the first line and between reads.
fn secs(n: u64) -> Limits {
    Limits::chat(Duration::from_secs(n), Duration::from_secs(n))
}

fn contents(chunks: &[ChatChunk]) -> Vec<&str> {
    chunks.iter().map(ChatChunk::content).collect()
}

#[tokio::test]
async fn in_memory_body_split_at_every_byte_offset_gives_identical_chunks() {
    let transcript = transcript();
    let bytes = transcript.as_bytes();
    let mut reference = None;
    for i in 0..=bytes.len() {
        let parts = vec![
            Ok(Bytes::copy_from_slice(&bytes[..i])),
            Ok(Bytes::copy_from_slice(&bytes[i..])),
        ];
        let body = futures::stream::iter(parts);
        let mut s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
        let (chunks, err) = drain(&mut s).await;
        assert_eq!(err, None, "split at {i}");
        assert_eq!(contents(&chunks), ["The", " café 🤖", ""], "split at {i}");
        match &reference {
            None => reference = Some(chunks),
            Some(r) => assert_eq!(&chunks, r, "split at {i}"),
        }
    }
    let last = reference.unwrap().pop().unwrap();
    assert_eq!(
        (
            last.done_reason.as_deref(),
            last.eval_count,
            last.total_duration
        ),
        (Some("stop"), Some(282), Some(4883583458))
    );
}

#[tokio::test]
async fn streams_the_transcript_sent_in_odd_splits() {
    let transcript = transcript();
    let bytes = transcript.as_bytes();
    let mut script = vec![ndjson_head()];
    let mut at = 0;
    for size in [1, 7, 3, 150, 2, 1, 40].into_iter().cycle() {
        let end = (at + size).min(bytes.len());
        script.push(chunk(&bytes[at..end]));
        script.push(Step::Pause(Duration::from_millis(2)));
        at = end;
        if at == bytes.len() {
            break;
        }
    }
    script.push(end_chunks());
    let (chunks, err) = run(script).await;
    assert_eq!(err, None);
    assert_eq!(contents(&chunks), ["The", " café 🤖", ""]);
    assert!(chunks[2].done && chunks[2].prompt_eval_count == Some(26));
}

#[tokio::test]
async fn done_chunk_ends_the_stream_without_waiting_for_the_server_to_close() {
    let script = vec![
        ndjson_head(),
        chunk(&[token("Hi"), DONE.to_vec(), token("late")].concat()),
        Step::Pause(Duration::from_secs(3)),
    ];
    let started = Instant::now();
    let (chunks, err) = run(script).await;
    assert_eq!((contents(&chunks), err), (vec!["Hi", ""], None));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn error_line_mid_stream_is_a_server_error_after_the_output() {
    let error = b"{\"error\":\"an error was encountered while running the model\"}\n";
    let (chunks, err) = run(vec![
        ndjson_head(),
        chunk(&token("Yes")),
        chunk(error),
        chunk(DONE),
        end_chunks(),
    ])
    .await;
    assert_eq!(contents(&chunks), ["Yes"]);
    assert_eq!(
        err,
        Some(OllamaError::Server(
            "an error was encountered while running the model".into()
        ))
    );
}

#[tokio::test]
async fn malformed_line_is_a_protocol_error_with_an_excerpt() {
    let (chunks, err) = run(vec![
        ndjson_head(),
        chunk(&token("a")),
        chunk(b"<html>oops</html>\n"),
        chunk(DONE),
        end_chunks(),
    ])
    .await;
    assert_eq!(chunks.len(), 1);
    match err {
        Some(OllamaError::Protocol(msg)) => assert!(msg.contains("<html>oops</html>"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_cut_mid_stream_is_truncated_after_the_chunks_received() {
    let (chunks, err) = run(vec![
        ndjson_head(),
        chunk(&token("Hel")),
        chunk(b"{\"model\":\"llama3.2\",\"crea"),
    ])
    .await;
    assert_eq!(contents(&chunks), ["Hel"]);
    let Some(err @ OllamaError::Truncated { chunks: 1, .. }) = err else {
        panic!("{err:?}")
    };
    assert!(!err.is_retryable_before_output());
    assert!(
        err.to_string()
            .contains("stream ended before the final chunk"),
        "{err}"
    );
}

#[tokio::test]
async fn clean_close_without_done_ends_the_answer_as_go_does_but_says_so() {
    // Go's stream() returns nil at a clean EOF: the answer is complete. The added final chunk
    // tells the caller it ended without Ollama's done line.
    let (chunks, err) = run(vec![unframed_ndjson_head(), Step::Send(token("Hi"))]).await;
    assert_eq!((contents(&chunks), err), (vec!["Hi", ""], None));
    let last = chunks.last().unwrap();
    assert!(last.done);
    assert_eq!(
        last.done_reason.as_deref(),
        Some(super::DONE_REASON_END_OF_STREAM)
    );
    // Chunked framing ended properly (the 0-size chunk) but no done line: the same.
    let (chunks, err) = run(vec![ndjson_head(), chunk(&token("Hi")), end_chunks()]).await;
    assert_eq!((contents(&chunks), err), (vec!["Hi", ""], None));
}

#[tokio::test]
async fn clean_close_before_any_line_or_mid_line_is_truncated() {
    let (chunks, err) = run(vec![unframed_ndjson_head()]).await;
    assert!(chunks.is_empty());
    let err = err.unwrap();
    assert_eq!(
        err,
        OllamaError::Truncated {
            chunks: 0,
            detail: "connection closed".into()
        }
    );
    assert!(err.is_retryable_before_output());
    let (chunks, err) = run(vec![
        unframed_ndjson_head(),
        Step::Send(b"{\"model\":\"x\",\"message\":{\"ro".to_vec()),
    ])
    .await;
    assert!(chunks.is_empty());
    let err = err.unwrap();
    assert_eq!(
        err,
        OllamaError::Truncated {
            chunks: 0,
            detail: "connection closed mid-line".into()
        }
    );
    assert!(err.is_retryable_before_output());
}

#[tokio::test]
async fn last_line_without_newline_is_still_accepted() {
    let (chunks, err) = run(vec![
        unframed_ndjson_head(),
        Step::Send([token("Hi"), DONE[..DONE.len() - 1].to_vec()].concat()),
    ])
    .await;
    assert_eq!((contents(&chunks), err), (vec!["Hi", ""], None));
}

#[tokio::test]
async fn stall_mid_stream_is_detected_per_read() {
    // Bytes keep arriving faster than the 200 ms idle timeout for 600 ms: no stall. Then silence.
    let mut script = vec![ndjson_head()];
    for _ in 0..6 {
        script.push(chunk(&token("tick")));
        script.push(Step::Pause(Duration::from_millis(100)));
    }
    script.push(Step::Pause(Duration::from_secs(3)));
    let started = Instant::now();
    let (chunks, err) = run(script).await;
    assert_eq!(chunks.len(), 6);
    assert!(
        matches!(err, Some(OllamaError::Stalled { awaiting_headers: false, limit: StallLimit::Idle, after, .. }) if after == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let mut server = FakeServer::start(vec![vec![
        ndjson_head(),
        chunk(&token("Once")),
        Step::AwaitClientClose(Duration::from_secs(3)),
    ]])
    .await;
    let mut stream = client(&server.url).chat_stream(&hello()).await.unwrap();
    assert_eq!(
        stream.next_chunk().await.unwrap().unwrap().content(),
        "Once"
    );
    drop(stream);
    let event = tokio::time::timeout(Duration::from_secs(5), server.events.recv())
        .await
        .unwrap();
    assert_eq!(event, Some(Event::ClientClosed(true)));
}

#[tokio::test]
async fn over_long_line_fails_without_buffering_it_all() {
    let mut script = vec![ndjson_head(), chunk(&token("a"))];
    let block = vec![b'x'; 1 << 20];
    for _ in 0..=(MAX_LINE_BYTES >> 20) + 1 {
        script.push(chunk(&block));
    }
    script.push(Step::Pause(Duration::from_millis(100)));
    let server = FakeServer::start(vec![script]).await;
    let mut stream = client(&server.url).chat_stream(&hello()).await.unwrap();
    let (chunks, err) = drain(&mut stream).await;
    assert_eq!(chunks.len(), 1);
    match err {
        Some(OllamaError::Protocol(msg)) => {
            assert!(msg.contains("longer than 8000000 bytes"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn huge_idle_timeout_means_never_and_does_not_overflow() {
    let body = futures::stream::iter(vec![Ok(Bytes::from(token("a"))), Ok(Bytes::from(DONE))]);
    let limits = Limits::chat(Duration::MAX, Duration::MAX);
    let mut s = ChatStream::from_byte_stream(body, limits, "mem".into(), "m".into());
    let (chunks, err) = drain(&mut s).await;
    assert_eq!((contents(&chunks), err), (vec!["a", ""], None));
    let cfg = ClientConfig {
        idle_timeout: Duration::MAX,
        load_timeout: Duration::MAX,
        connect_timeout: Duration::MAX,
        ..ClientConfig::default()
    };
    assert!(Client::new(cfg).is_ok());
}

#[tokio::test]
async fn implements_futures_stream() {
    let (tx, body) = futures::channel::mpsc::unbounded::<Result<Bytes, String>>();
    tx.unbounded_send(Ok(Bytes::from(token("x")))).unwrap();
    tx.unbounded_send(Err("connection reset by peer".into()))
        .unwrap();
    let s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
    let items: Vec<_> = s.collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1],
        Err(OllamaError::Truncated {
            chunks: 1,
            detail: "connection reset by peer".into()
        })
    );
}

#[tokio::test]
async fn try_next_buffered_returns_only_what_was_already_read() {
    let (tx, body) = futures::channel::mpsc::unbounded::<Result<Bytes, String>>();
    let mut s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
    assert!(
        s.try_next_buffered().is_none(),
        "nothing read yet, and it must not wait"
    );
    // One network read holding three lines, the last one unfinished.
    let mut read = [token("a"), token("b")].concat();
    read.extend_from_slice(&DONE[..10]);
    tx.unbounded_send(Ok(Bytes::from(read))).unwrap();
    assert_eq!(s.next_chunk().await.unwrap().unwrap().content(), "a");
    assert_eq!(s.try_next_buffered().unwrap().unwrap().content(), "b");
    assert!(
        s.try_next_buffered().is_none(),
        "half a line is not a chunk"
    );
    tx.unbounded_send(Ok(Bytes::copy_from_slice(&DONE[10..])))
        .unwrap();
    let last = s.next_chunk().await.unwrap().unwrap();
    assert!(last.done);
    assert!(s.try_next_buffered().is_none() && s.next_chunk().await.is_none());
    // An error line in the buffer ends the stream there too.
    let body = futures::stream::iter(vec![Ok(Bytes::from(
        [token("x"), b"{\"error\":\"boom\"}\n".to_vec(), token("y")].concat(),
    ))]);
    let mut s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
    assert_eq!(s.next_chunk().await.unwrap().unwrap().content(), "x");
    assert_eq!(
        s.try_next_buffered(),
        Some(Err(OllamaError::Server("boom".into())))
    );
    assert!(s.try_next_buffered().is_none() && s.next_chunk().await.is_none());
}

#[tokio::test]
async fn try_next_buffered_takes_a_frame_the_body_already_holds() {
    // One line per frame, as Ollama's server flushes them: the second frame is received but not
    // split off when the first chunk is handed out.
    let (tx, body) = futures::channel::mpsc::unbounded::<Result<Bytes, String>>();
    let mut s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
    for frame in [token("a"), token("b"), DONE.to_vec()] {
        tx.unbounded_send(Ok(Bytes::from(frame))).unwrap();
    }
    assert_eq!(s.next_chunk().await.unwrap().unwrap().content(), "a");
    assert_eq!(s.try_next_buffered().unwrap().unwrap().content(), "b");
    assert!(s.try_next_buffered().unwrap().unwrap().done);
    assert!(s.try_next_buffered().is_none() && s.next_chunk().await.is_none());
    // A body that ended cleanly without a done line: the end is known without waiting too.
    let (tx, body) = futures::channel::mpsc::unbounded::<Result<Bytes, String>>();
    let mut s = ChatStream::from_byte_stream(body, secs(5), "mem".into(), "m".into());
    tx.unbounded_send(Ok(Bytes::from(token("x")))).unwrap();
    drop(tx);
    assert_eq!(s.next_chunk().await.unwrap().unwrap().content(), "x");
    let end = s.try_next_buffered().unwrap().unwrap();
    assert_eq!((end.done, end.done_reason.as_deref()), (true, Some(super::DONE_REASON_END_OF_STREAM)));
}
