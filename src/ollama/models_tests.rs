//! Tests of the model-management calls (`tags`, `ps`, `pull`, `load`, `unload`) against the
//! fake server, with the shapes Ollama sends (`api/types.go`; the emulator's transcripts).

use std::time::Duration;

use serde_json::json;

use super::client_tests::client;
use super::fake_server::{
    chunk, end_chunks, json_reply, ndjson_head, reply, Event, FakeServer, Step,
};
use super::{KeepAlive, OllamaError, PullProgress, PullStream};

/// Drains a pull: the progress lines, then the error that ended it (if any).
async fn drain(pull: &mut PullStream) -> (Vec<PullProgress>, Option<OllamaError>) {
    let mut lines = Vec::new();
    while let Some(item) = pull.next_progress().await {
        match item {
            Ok(p) => lines.push(p),
            Err(e) => {
                assert!(
                    pull.next_progress().await.is_none(),
                    "an error ends the pull"
                );
                return (lines, Some(e));
            }
        }
    }
    (lines, None)
}

fn progress(
    status: &str,
    digest: &str,
    total: Option<u64>,
    completed: Option<u64>,
) -> PullProgress {
    PullProgress {
        status: status.into(),
        digest: digest.into(),
        total,
        completed,
    }
}

#[tokio::test]
async fn tags_and_ps() {
    let tags = json!({"models": [
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2025-01-01T00:00:00Z",
         "size": 2019393189u64, "digest": "a80c", "details": {"family": "llama", "families": null}},
        {"name": "qwen3:0.6b", "model": "qwen3:0.6b", "future": 1}]});
    let ps = json!({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 3_000_000_000u64,
        "digest": "a80c", "details": {"family": "llama"}, "expires_at": "2025-01-01T00:05:00.123456789Z",
        "size_vram": 2_000_000_000u64, "context_length": 4096}]});
    let mut server = FakeServer::start(vec![
        vec![json_reply(200, "OK", &tags)],
        vec![json_reply(200, "OK", &ps)],
        vec![json_reply(200, "OK", &json!({"models": null}))],
        vec![json_reply(200, "OK", &json!({"models": []}))],
    ])
    .await;
    let c = client(&server.url);
    assert_eq!(c.tags().await.unwrap(), ["llama3.2:latest", "qwen3:0.6b"]);
    let loaded = c.ps().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        (
            loaded[0].name.as_str(),
            loaded[0].size_vram,
            loaded[0].context_length,
            loaded[0].details.family.as_str()
        ),
        ("llama3.2:latest", 2_000_000_000, 4096, "llama")
    );
    assert_eq!(c.tags().await.unwrap(), Vec::<String>::new());
    assert!(c.ps().await.unwrap().is_empty());
    for path in ["/api/tags", "/api/ps", "/api/tags", "/api/ps"] {
        let req = server.request().await;
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", path));
    }
}

#[tokio::test]
async fn pull_streams_progress_until_success() {
    let lines = concat!(
        "{\"status\":\"pulling manifest\"}\n",
        "{\"status\":\"pulling dde5aa3fc5ff\",\"digest\":\"sha256:dde5\",\"total\":2019377376}\n",
        "{\"status\":\"pulling dde5aa3fc5ff\",\"digest\":\"sha256:dde5\",\"total\":2019377376,\"completed\":1048576}\n",
        "{\"status\":\"verifying sha256 digest\"}\n",
        "{\"status\":\"writing manifest\"}\n",
        "{\"status\":\"success\"}\n",
    );
    let (first, rest) = lines.as_bytes().split_at(70);
    let mut server = FakeServer::start(vec![vec![
        ndjson_head(),
        chunk(first),
        chunk(rest),
        Step::Pause(Duration::from_secs(3)),
    ]])
    .await;
    let mut pull = client(&server.url).pull("llama3.2").await.unwrap();
    let (got, err) = drain(&mut pull).await;
    assert_eq!(err, None);
    assert_eq!(got.len(), 6);
    assert_eq!(
        got[2],
        progress(
            "pulling dde5aa3fc5ff",
            "sha256:dde5",
            Some(2019377376),
            Some(1048576)
        )
    );
    assert!(got[5].is_success());
    let req = server.request().await;
    assert_eq!(
        (req.path.as_str(), req.json()),
        ("/api/pull", json!({"model": "llama3.2", "stream": true}))
    );
}

#[tokio::test]
async fn pull_ends_with_the_servers_error_text_or_a_cut() {
    let unknown = b"{\"status\":\"pulling manifest\"}\n{\"error\":\"pull model manifest: file does not exist\"}\n";
    let (got, err) = run_pull(vec![ndjson_head(), chunk(unknown), end_chunks()]).await;
    assert_eq!(got, [progress("pulling manifest", "", None, None)]);
    assert_eq!(
        err,
        Some(OllamaError::Server(
            "pull model manifest: file does not exist".into()
        ))
    );
    // Refused before streaming: an HTTP status.
    let server = FakeServer::start(vec![vec![json_reply(
        400,
        "Bad Request",
        &json!({"error": "invalid model name"}),
    )]])
    .await;
    let err = client(&server.url).pull("Bad Name!").await.unwrap_err();
    assert_eq!(err.status_code(), Some(400));
    // The body ended without `success`: not a finished pull.
    let (got, err) = run_pull(vec![
        ndjson_head(),
        chunk(b"{\"status\":\"pulling manifest\"}\n"),
        end_chunks(),
    ])
    .await;
    assert_eq!(got.len(), 1);
    assert!(
        matches!(err, Some(OllamaError::Truncated { chunks: 1, .. })),
        "{err:?}"
    );
    // Cut mid-download.
    let (_, err) = run_pull(vec![
        ndjson_head(),
        chunk(b"{\"status\":\"pulling manifest\"}\n"),
    ])
    .await;
    assert!(
        matches!(err, Some(OllamaError::Truncated { chunks: 1, .. })),
        "{err:?}"
    );
    // A line that is not progress.
    let (_, err) = run_pull(vec![ndjson_head(), chunk(b"<html>\n")]).await;
    assert!(matches!(err, Some(OllamaError::Protocol(_))), "{err:?}");
}

async fn run_pull(script: Vec<Step>) -> (Vec<PullProgress>, Option<OllamaError>) {
    let server = FakeServer::start(vec![script]).await;
    let mut pull = client(&server.url).pull("x").await.expect("200");
    drain(&mut pull).await
}

#[tokio::test]
async fn dropping_a_pull_closes_the_connection() {
    let mut server = FakeServer::start(vec![vec![
        ndjson_head(),
        chunk(b"{\"status\":\"pulling manifest\"}\n"),
        Step::AwaitClientClose(Duration::from_secs(3)),
    ]])
    .await;
    let mut pull = client(&server.url).pull("llama3.2").await.unwrap();
    assert_eq!(
        pull.next_progress().await.unwrap().unwrap().status,
        "pulling manifest"
    );
    drop(pull);
    let event = tokio::time::timeout(Duration::from_secs(5), server.events.recv())
        .await
        .unwrap();
    assert_eq!(event, Some(Event::ClientClosed(true)));
}

#[tokio::test]
async fn load_and_unload_send_an_empty_chat_and_read_ollamas_answer() {
    let answer = |reason: &str| {
        json!({"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
               "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": reason})
    };
    let mut server = FakeServer::start(vec![
        vec![json_reply(200, "OK", &answer("load"))],
        vec![json_reply(200, "OK", &answer("unload"))],
        vec![json_reply(
            404,
            "Not Found",
            &json!({"error": "model 'nope' not found"}),
        )],
        vec![reply(
            200,
            "OK",
            "application/json",
            "{\"error\":\"llama runner process has terminated\"}",
        )],
    ])
    .await;
    let c = client(&server.url);
    let loaded = c
        .load("llama3.2", Some(KeepAlive::For(Duration::from_secs(600))))
        .await
        .unwrap();
    assert_eq!(
        (loaded.done, loaded.done_reason.as_deref()),
        (true, Some("load"))
    );
    let unloaded = c.unload("llama3.2").await.unwrap();
    assert_eq!(unloaded.done_reason.as_deref(), Some("unload"));
    assert!(c.load("nope", None).await.unwrap_err().is_model_not_found());
    assert_eq!(
        c.load("llama3.2", None).await.unwrap_err(),
        OllamaError::Server("llama runner process has terminated".into())
    );
    let bodies: Vec<_> = [
        server.request().await,
        server.request().await,
        server.request().await,
    ]
    .into_iter()
    .map(|r| (r.path.clone(), r.json()))
    .collect();
    assert_eq!(
        bodies,
        [
            (
                "/api/chat".into(),
                json!({"model": "llama3.2", "messages": [], "keep_alive": 600, "stream": false})
            ),
            (
                "/api/chat".into(),
                json!({"model": "llama3.2", "messages": [], "keep_alive": 0, "stream": false})
            ),
            (
                "/api/chat".into(),
                json!({"model": "nope", "messages": [], "stream": false})
            ),
        ]
    );
}
