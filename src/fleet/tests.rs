//! Tests of the fleet: the routing order, which failures move a request on, the probe waits,
//! and failover, affinity, probes and the model check against fake servers on real sockets.

use super::route::{moves_on, order, View};
use super::standing::probe_wait;
use super::*;
use crate::ollama::fake_server::{chunk, end_chunks, json_reply, ndjson_head, FakeServer, Step};
use crate::ollama::{ChatRequest, Message, StallLimit};
use serde_json::json;
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn view(up: bool, in_flight: usize, sessions: usize, has_model: Option<bool>) -> View {
    View { up, in_flight, sessions, has_model }
}

#[test]
fn order_keeps_affinity_then_least_busy_with_the_model_then_down_servers() {
    let idle = view(true, 0, 0, Some(true));
    // (servers, the session's server, the order wanted, why)
    type Case = (Vec<View>, Option<usize>, Vec<usize>, &'static str);
    let cases: Vec<Case> = vec![
        (vec![idle, view(true, 3, 0, Some(true))], Some(1), vec![1, 0], "the session's server while it is up"),
        (vec![idle, view(false, 0, 0, Some(true))], Some(1), vec![0, 1], "not when it is down: tried last"),
        (vec![view(true, 2, 0, Some(true)), view(true, 1, 0, Some(true)), view(true, 1, 5, Some(true))], None, vec![1, 2, 0],
         "fewest in flight, then fewest sessions"),
        (vec![view(true, 0, 0, None), view(true, 4, 0, Some(true))], None, vec![1, 0], "known to have the model first"),
        (vec![view(true, 0, 0, Some(false)), idle, view(false, 0, 0, Some(false))], Some(0), vec![1],
         "servers without the model are left out, even the session's"),
        (vec![view(true, 0, 0, Some(false)), view(false, 0, 0, Some(false))], None, vec![0, 1],
         "every server lacks it: all are tried (and say so)"),
        (vec![view(false, 0, 0, None), view(false, 0, 0, None)], Some(1), vec![0, 1], "all down: all, in order"),
    ];
    for (views, affinity, want, why) in cases {
        assert_eq!(order(&views, affinity), want, "{why}");
    }
}

#[test]
fn which_failures_move_a_request_to_the_next_server() {
    let url = "http://a:1".to_string();
    let status = |code: u16, message: &str| OllamaError::Status { code, message: message.into() };
    let moves = [
        OllamaError::Connect { url: url.clone(), detail: "refused".into() },
        OllamaError::ConnectTimeout { url: url.clone(), after: Duration::from_secs(1) },
        OllamaError::Stalled { url: url.clone(), after: Duration::from_secs(1), limit: StallLimit::Load, awaiting_headers: false },
        OllamaError::Truncated { chunks: 0, detail: "closed".into() },
        OllamaError::Http("broken pipe".into()),
        status(503, "server busy"), status(500, "boom"), status(502, "Bad Gateway"), status(429, "slow down"),
        status(404, "model 'x' not found"),
    ];
    let stays = [
        OllamaError::Truncated { chunks: 2, detail: "closed".into() },
        OllamaError::Stalled { url, after: Duration::from_secs(1), limit: StallLimit::Idle, awaiting_headers: false },
        OllamaError::Server("error while running the model".into()),
        status(400, "bad request"), status(401, "unauthorized"), status(404, "404 page not found"),
        OllamaError::Protocol("bad".into()), OllamaError::Config("bad".into()),
    ];
    for e in &moves {
        assert!(moves_on(e), "{e:?}");
    }
    for e in &stays {
        assert!(!moves_on(e), "{e:?}");
    }
}

#[test]
fn probes_wait_one_second_then_twice_as_long_up_to_thirty() {
    let waits: Vec<u64> = (0..8).map(|n| probe_wait(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(probe_wait(u32::MAX), PROBE_MAX);
}

/// A URL where nothing listens (connection refused).
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

fn config(url: &str) -> ClientConfig {
    ClientConfig { base_url: url.to_string(), connect_timeout: Duration::from_millis(500),
                   load_timeout: Duration::from_millis(500), idle_timeout: Duration::from_millis(500), ..ClientConfig::default() }
}

/// A whole answer "Hi" on Ollama's wire.
fn answer() -> Vec<Step> {
    let line = |done: bool| format!("{{\"model\":\"m\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":{done}}}\n",
                                    if done { "" } else { "Hi" });
    vec![ndjson_head(), chunk(line(false).as_bytes()), chunk(line(true).as_bytes()), end_chunks()]
}

fn hello() -> ChatRequest {
    ChatRequest::new("m", vec![Message::user("hello")])
}

async fn text_of(mut stream: crate::ollama::ChatStream) -> String {
    let mut text = String::new();
    while let Some(chunk) = stream.next_chunk().await {
        text.push_str(chunk.expect("chunk").content());
    }
    text
}

/// `/api/tags` listing model `m`.
fn tags() -> Step {
    json_reply(200, "OK", &json!({"models": [{"name": "m:latest"}]}))
}

#[tokio::test]
async fn a_refused_server_is_passed_over_at_once_marked_down_and_the_session_stays_on_the_next() {
    // the first server lists the model, then refuses connections (its listener is gone)
    let first = FakeServer::start(vec![vec![tags()]]).await;
    let mut good = FakeServer::start(vec![vec![tags()], answer(), answer()]).await;
    let fleet = Arc::new(Fleet::new(vec![config(&first.url), config(&good.url)]).expect("fleet"));
    let route = fleet.route("kitchen", "m");
    let started = Instant::now();
    let stream = route.chat_stream(&hello()).await.expect("answered by the second server");
    assert_eq!(text_of(stream).await, "Hi", "the first chunk handed back is not lost");
    assert!(started.elapsed() < Duration::from_millis(400), "no backoff: {:?}", started.elapsed());
    assert_eq!(route.server(), good.url);
    assert!(!fleet.servers()[0].is_up() && fleet.servers()[1].is_up());
    let paths = [good.request().await.path, good.request().await.path];
    assert_eq!(paths, ["/api/tags", "/api/chat"], "the model list was looked up once, on the miss");
    drop(route);
    let next = fleet.route("kitchen", "m");
    assert_eq!(next.client().base_url(), good.url, "the session stays where it was answered");
    next.chat_stream(&hello()).await.expect("second answer");
    assert_eq!(fleet.servers()[1].in_flight(), 1, "counted while the route lives");
    drop(next);
    assert_eq!(fleet.servers()[1].in_flight(), 0);
}

#[tokio::test]
async fn busy_or_missing_model_moves_on_and_only_the_busy_one_is_marked_down() {
    let busy = FakeServer::start(vec![vec![tags()], vec![json_reply(503, "Service Unavailable", &json!({"error": "server busy"}))]]).await;
    let lacking = FakeServer::start(vec![vec![tags()], vec![json_reply(404, "Not Found", &json!({"error": "model 'm' not found"}))]]).await;
    let good = FakeServer::start(vec![vec![tags()], answer()]).await;
    let fleet = Arc::new(Fleet::new(vec![config(&busy.url), config(&lacking.url), config(&good.url)]).expect("fleet"));
    let route = fleet.route("s", "m");
    let stream = route.chat_stream(&hello()).await.expect("answered by the third server");
    assert_eq!(text_of(stream).await, "Hi");
    let up: Vec<bool> = fleet.servers().iter().map(|s| s.is_up()).collect();
    assert_eq!(up, [false, true, true]);
    assert_eq!(fleet.servers()[1].has_model("m"), Some(false), "a 404 says the model is not there");
    let next = fleet.order_for("t", "m");
    assert_eq!(next, [2, 0], "a new session: the up server with the model, then the down one");
}

#[tokio::test]
async fn one_server_unreachable_is_marked_down_yet_still_tried_and_its_error_is_the_answer() {
    let fleet = Arc::new(Fleet::new(vec![config(&closed_port())]).expect("fleet"));
    let err = fleet.route("s", "m").chat_stream(&hello()).await.expect_err("refused");
    assert_eq!(err.kind(), "connect");
    assert!(!fleet.servers()[0].is_up(), "marked down: its return is noticed by the probes");
    let again = fleet.route("s", "m").chat_stream(&hello()).await.expect_err("tried again, refused again");
    assert_eq!(again.kind(), "connect");
    let busy = FakeServer::start(vec![vec![json_reply(503, "Service Unavailable", &json!({"error": "server busy"}))]]).await;
    let fleet = Arc::new(Fleet::new(vec![config(&busy.url)]).expect("fleet"));
    fleet.route("s", "m").chat_stream(&hello()).await.expect_err("busy");
    assert!(fleet.servers()[0].is_up(), "an answer (even a 503) does not mark one server down");
}

#[tokio::test]
async fn a_down_server_is_probed_and_rejoins_when_it_answers() {
    let url = closed_port();
    let fleet = Arc::new(Fleet::new(vec![config(&url), config(&closed_port())]).expect("fleet"));
    fleet.servers()[0].mark_down(&OllamaError::Connect { url: url.clone(), detail: "refused".into() }, false);
    assert!(!fleet.servers()[0].is_up());
    let listener = tokio::net::TcpListener::bind(url.trim_start_matches("http://")).await.expect("same port");
    let serve = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("the probe connects");
        let mut buf = [0u8; 1024];
        let n = socket.read(&mut buf).await.unwrap_or(0);
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nOllama is running").await;
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
    });
    let started = Instant::now();
    let request_line = tokio::time::timeout(Duration::from_secs(3), serve).await.expect("probed within 3 s").expect("task");
    assert_eq!(request_line, "GET / HTTP/1.1");
    assert!(started.elapsed() >= Duration::from_millis(900), "the first probe waits a second: {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !fleet.servers()[0].is_up() {
        assert!(Instant::now() < deadline, "not back up after its probe answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn set_model_check_names_the_servers_that_lack_it() {
    let has = FakeServer::start(vec![vec![json_reply(200, "OK", &json!({"capabilities": ["completion"]}))]]).await;
    let lacks = FakeServer::start(vec![vec![json_reply(404, "Not Found", &json!({"error": "model 'm' not found"}))]]).await;
    let down = closed_port();
    let fleet = Fleet::new(vec![config(&has.url), config(&lacks.url), config(&down)]).expect("fleet");
    let note = fleet.check_model("m").await.expect("one server has it");
    assert!(note.starts_with(&format!("not on {} (does not have it); {down} (did not answer: cannot connect", lacks.url)), "{note}");
    let lacks2 = FakeServer::start(vec![vec![json_reply(404, "Not Found", &json!({"error": "model 'm' not found"}))]]).await;
    let fleet = Fleet::new(vec![config(&lacks2.url), config(&down)]).expect("fleet");
    let err = fleet.check_model("m").await.expect_err("none has it");
    assert!(err.starts_with("model 'm' is on none of the servers:"), "{err}");
}

#[tokio::test]
async fn a_server_found_unreachable_outside_a_request_is_marked_down_and_waited_for_until_up() {
    let (a, b) = (closed_port(), closed_port());
    let fleet = Fleet::new(vec![config(&a), config(&b)]).expect("fleet");
    let server = fleet.servers()[0].clone();
    let refused = OllamaError::Connect { url: a.clone(), detail: "refused".into() };
    let not_found = OllamaError::Status { code: 404, message: "model 'm' not found".into() };
    assert!(!fleet.unreachable(&server, &not_found) && server.is_up(), "an answer is not unreachable");
    assert!(fleet.unreachable(&server, &refused) && !server.is_up(), "marked down (and probed)");
    let waiting = tokio::spawn({
        let server = server.clone();
        async move { server.until_up().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "waits while the server is down");
    server.mark_up();
    tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("back up: the wait ends").expect("task");
    server.until_up().await; // up: returns at once
    let alone = Fleet::new(vec![config(&a)]).expect("fleet");
    assert!(alone.unreachable(&alone.servers()[0], &refused) && !alone.servers()[0].is_up(), "one server: marked too");
    let mut up = alone.servers()[0].watch_up();
    alone.servers()[0].mark_up();
    tokio::time::timeout(Duration::from_secs(1), up.wait_for(|up| *up)).await.expect("the rejoin is seen").expect("sender");
}

#[tokio::test]
async fn a_settled_route_points_at_the_server_with_the_model_before_anything_is_sent() {
    let lacking = FakeServer::start(vec![vec![json_reply(200, "OK", &json!({"models": [{"name": "other:latest"}]}))]]).await;
    let has = FakeServer::start(vec![vec![tags()]]).await;
    let fleet = Arc::new(Fleet::new(vec![config(&lacking.url), config(&has.url)]).expect("fleet"));
    let route = fleet.route("kitchen", "m");
    assert_eq!(route.client().base_url(), lacking.url, "nothing known yet: the first server");
    route.settle().await;
    assert_eq!(route.client().base_url(), has.url, "the window looked up is that of the server the request goes to");
}
