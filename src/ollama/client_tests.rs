//! Tests of [`Client`] against the in-process fake server: request shape, status errors,
//! connection faults and timeouts. Stream-level faults are in `stream_tests`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::fake_server::{json_reply, reply, Event, FakeServer, Step};
use super::{Api, ChatRequest, Client, ClientConfig, KeepAlive, Message, OllamaError, Think};

/// A client for `url` with short timeouts (real sockets, so real time).
pub(crate) fn client(url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: url.to_owned(),
        connect_timeout: Duration::from_millis(500),
        load_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        api_key: None,
        api: Api::Ollama,
    })
    .expect("client")
}

pub(crate) fn hello() -> ChatRequest {
    ChatRequest::new("llama3.2", vec![Message::user("why is the sky blue?")])
}

async fn chat_error(scripts: Vec<Vec<Step>>) -> OllamaError {
    let server = FakeServer::start(scripts).await;
    client(&server.url)
        .chat_stream(&hello())
        .await
        .expect_err("status error")
}

#[tokio::test]
async fn request_has_stream_true_exact_field_names_and_headers() {
    let mut server = FakeServer::start(vec![vec![json_reply(
        503,
        "Service Unavailable",
        &json!({"error": "busy"}),
    )]])
    .await;
    let mut req = hello();
    req.think = Some(Think::Bool(false));
    req.keep_alive = Some(KeepAlive::Forever);
    req.options = Some(
        json!({"temperature": 0, "seed": 101})
            .as_object()
            .cloned()
            .unwrap(),
    );
    assert!(!req.stream());
    let _ = client(&server.url).chat_stream(&req).await;
    let got = server.request().await;
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/api/chat")
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("accept"), Some("application/x-ndjson"));
    assert_eq!(got.header("authorization"), None);
    assert_eq!(
        got.json(),
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
               "options": {"temperature": 0, "seed": 101}, "keep_alive": -1, "think": false, "stream": true})
    );
}

#[tokio::test]
async fn api_key_is_sent_as_bearer_and_never_shown() {
    let key = "sk-very-secret-123";
    // A (misbehaving) proxy that echoes the header back in its error body.
    let echo = format!("bad token Bearer {key}");
    let mut server = FakeServer::start(vec![vec![json_reply(
        401,
        "Unauthorized",
        &json!({"error": echo}),
    )]])
    .await;
    let cfg = ClientConfig {
        api_key: Some(key.into()),
        ..ClientConfig {
            base_url: server.url.clone(),
            ..Default::default()
        }
    };
    assert!(!format!("{cfg:?}").contains(key));
    let c = Client::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(key));
    let err = c.chat_stream(&hello()).await.unwrap_err();
    assert_eq!(
        server.request().await.header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    assert_eq!(err.status_code(), Some(401));
    assert!(
        !err.to_string().contains(key) && !format!("{err:?}").contains(key),
        "{err}"
    );
    assert!(err.to_string().contains("check the credentials for this server"), "{err}");
}

#[tokio::test]
async fn status_404_with_ollama_error_body_is_model_not_found() {
    let body = json!({"error": "model 'llama9' not found"});
    let err = chat_error(vec![vec![json_reply(404, "Not Found", &body)]]).await;
    assert_eq!(
        err,
        OllamaError::Status {
            code: 404,
            message: "model 'llama9' not found".into()
        }
    );
    assert!(err.is_model_not_found() && !err.is_retryable_before_output());
}

#[tokio::test]
async fn status_500_and_400_keep_the_server_text() {
    let err = chat_error(vec![vec![json_reply(
        500,
        "Internal Server Error",
        &json!({"error": "llama runner process has terminated"}),
    )]])
    .await;
    assert_eq!(
        err,
        OllamaError::Status {
            code: 500,
            message: "llama runner process has terminated".into()
        }
    );
    let err = chat_error(vec![vec![json_reply(
        400,
        "Bad Request",
        &json!({"error": "\"gemma\" does not support thinking"}),
    )]])
    .await;
    assert!(
        err.to_string()
            .contains("HTTP 400: \"gemma\" does not support thinking"),
        "{err}"
    );
    assert!(!err.is_retryable_before_output());
}

#[tokio::test]
async fn non_json_502_body_is_reported_raw_and_truncated() {
    let html = format!("<html><body>Bad Gateway {}</body></html>", "x".repeat(2000));
    let err = chat_error(vec![vec![reply(502, "Bad Gateway", "text/html", &html)]]).await;
    let OllamaError::Status { code: 502, message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("<html><body>Bad Gateway xxx") && message.ends_with("..."),
        "{message}"
    );
    assert!(message.len() < 600);
}

#[tokio::test]
async fn busy_503_with_empty_body_uses_the_reason_and_is_retryable() {
    let err = chat_error(vec![vec![reply(
        503,
        "Service Unavailable",
        "text/plain",
        "",
    )]])
    .await;
    assert_eq!(
        err,
        OllamaError::Status {
            code: 503,
            message: "Service Unavailable".into()
        }
    );
    assert!(err.is_retryable_before_output());
}

#[tokio::test]
async fn no_headers_within_the_load_timeout_is_a_stall_awaiting_headers() {
    let server = FakeServer::start(vec![vec![Step::Pause(Duration::from_secs(3))]]).await;
    let started = Instant::now();
    let err = client(&server.url).chat_stream(&hello()).await.unwrap_err();
    assert!(
        matches!(
            err,
            OllamaError::Stalled {
                awaiting_headers: true,
                limit: super::StallLimit::Load,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .contains("did not start answering within 200ms"),
        "{err}"
    );
}

#[tokio::test]
async fn closed_before_any_answer_is_sent_once_more_then_truncated_and_retryable() {
    // Both connections are accepted and closed without an answer: one re-send, not more.
    let mut server = FakeServer::start(vec![vec![], vec![], vec![]]).await;
    let err = client(&server.url).chat_stream(&hello()).await.unwrap_err();
    let OllamaError::Truncated { chunks: 0, detail } = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("closed"), "{detail}");
    assert!(err.is_retryable_before_output());
    server.request().await;
    server.request().await;
    assert!(server.requests.try_recv().is_err(), "sent a third time");
}

#[tokio::test]
async fn dropping_the_request_while_waiting_for_headers_closes_the_connection() {
    let mut server =
        FakeServer::start(vec![vec![Step::AwaitClientClose(Duration::from_secs(3))]]).await;
    let c = client(&server.url);
    let req = hello();
    let pending = c.chat_stream(&req);
    // Give up after 100 ms (as a barge-in would), well before the header wait bound.
    assert!(tokio::time::timeout(Duration::from_millis(100), pending)
        .await
        .is_err());
    let event = tokio::time::timeout(Duration::from_secs(5), server.events.recv()).await;
    assert_eq!(event.unwrap(), Some(Event::ClientClosed(true)));
}

#[tokio::test]
async fn refused_connection_says_where_and_what_to_check() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&url).chat_stream(&hello()).await.unwrap_err();
    let OllamaError::Connect { url: at, detail } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(at, &url);
    assert!(detail.to_lowercase().contains("refused"), "{detail}");
    assert!(
        err.to_string().contains("is it running (`ollama serve`"),
        "{err}"
    );
    assert!(err.is_retryable_before_output());
}

#[tokio::test]
async fn connect_timeout_when_the_peer_never_completes_the_handshake() {
    // A listener whose accept queue is full makes Linux drop further SYNs (with the default
    // net.ipv4.tcp_abort_on_overflow=0), so the connect hangs: no outside address is needed.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let started = Instant::now();
    let err = client(&format!("http://{addr}"))
        .version()
        .await
        .unwrap_err();
    let OllamaError::ConnectTimeout { after, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*after, Duration::from_millis(500));
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
    assert!(err.is_retryable_before_output());
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[tokio::test]
async fn show_and_version() {
    let show = json!({"details": {"family": "llama", "families": null}, "capabilities": ["completion", "tools"],
                      "model_info": {"llama.context_length": 131072}, "license": "..."});
    let mut server = FakeServer::start(vec![
        vec![json_reply(200, "OK", &show)],
        vec![json_reply(
            404,
            "Not Found",
            &json!({"error": "model 'nope' not found"}),
        )],
        vec![json_reply(200, "OK", &json!({"version": "0.12.3"}))],
        vec![reply(200, "OK", "application/json", "{\"version\": ")],
    ])
    .await;
    let c = client(&server.url);
    let got = c.show("llama3.2").await.unwrap();
    assert!(got.has_capability("tools") && got.context_length() == Some(131072));
    let req = server.request().await;
    assert_eq!(
        (req.method.as_str(), req.path.as_str(), req.json()),
        ("POST", "/api/show", json!({"model": "llama3.2"}))
    );
    assert!(c.show("nope").await.unwrap_err().is_model_not_found());
    assert_eq!(c.version().await.unwrap(), "0.12.3");
    assert_eq!(server.request().await.path, "/api/show");
    assert_eq!(server.request().await.path, "/api/version");
    assert!(matches!(
        c.version().await.unwrap_err(),
        OllamaError::Protocol(_)
    ));
}

#[test]
fn bad_configs_are_rejected_with_a_reason() {
    let cfg = |base_url: &str, api_key: Option<&str>| ClientConfig {
        base_url: base_url.into(),
        api_key: api_key.map(Into::into),
        ..ClientConfig::default()
    };
    for (c, why) in [
        (cfg("", None), "empty"),
        (cfg("ftp://x", None), "http"),
        (cfg("http://x", Some("bad\nkey")), "api_key"),
        (
            ClientConfig {
                idle_timeout: Duration::ZERO,
                ..ClientConfig::default()
            },
            "> 0",
        ),
    ] {
        match Client::new(c) {
            Err(OllamaError::Config(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
    let c = Client::new(cfg("robot-gpu", Some("  "))).unwrap();
    assert_eq!(c.base_url(), "http://robot-gpu:11434");
    assert!(format!("{c:?}").contains("Secrets(<0 redacted>)"), "{c:?}");
}
