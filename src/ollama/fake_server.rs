//! Test-only: a raw-bytes HTTP/1.1 server on `127.0.0.1:0` that plays scripted replies.
//!
//! Raw bytes (not a framework) so a script can do what a real Ollama or a broken network does:
//! split NDJSON anywhere, stall, cut the connection mid-body, and notice the client hang up.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The streaming transcript of reference/ollama-docs/api-chat.md, compacted to one object per
/// line, with non-ASCII text ("é", an emoji) so that splits fall inside multi-byte characters.
pub(crate) const API_CHAT_LINES: [&str; 3] = [
    r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}"#,
    r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.4-07:00","message":{"role":"assistant","content":" café 🤖"},"done":false}"#,
    r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#,
];

/// [`API_CHAT_LINES`] as a body: each line followed by its ending (`"\n"`, or e.g. `"\r\n\n"`).
pub(crate) fn api_chat_transcript(endings: [&str; 3]) -> String {
    API_CHAT_LINES.iter().zip(endings).map(|(line, end)| format!("{line}{end}")).collect()
}

/// One action of a scripted connection.
#[derive(Clone)]
pub(crate) enum Step {
    /// Write these bytes and flush.
    Send(Vec<u8>),
    /// Do nothing for a while (a stall).
    Pause(Duration),
    /// Wait up to this long for the client to close; reports [`Event::ClientClosed`].
    AwaitClientClose(Duration),
    /// Read the next request on the same (keep-alive) connection; the script ends if the
    /// client closes it instead.
    NextRequest,
    /// Close with a TCP reset (RST) instead of a clean close, ending the script.
    Reset,
}

/// What the server observed, besides requests.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// `true` if the client closed the connection within the wait.
    ClientClosed(bool),
}

/// A request as received.
#[derive(Debug)]
pub(crate) struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A running fake server: one script per accepted connection, in order.
pub(crate) struct FakeServer {
    pub url: String,
    pub requests: mpsc::UnboundedReceiver<Captured>,
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves `scripts`; the listener closes after the last one.
    pub async fn start(scripts: Vec<Vec<Step>>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (req_tx, requests) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for script in scripts {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (req_tx, ev_tx) = (req_tx.clone(), ev_tx.clone());
                tokio::spawn(serve_one(socket, script, req_tx, ev_tx));
            }
        });
        FakeServer {
            url,
            requests,
            events,
        }
    }

    /// The next captured request (waits up to 5 s).
    pub async fn request(&mut self) -> Captured {
        tokio::time::timeout(Duration::from_secs(5), self.requests.recv())
            .await
            .expect("request within 5 s")
            .expect("server alive")
    }
}

async fn serve_one(
    mut socket: TcpStream,
    script: Vec<Step>,
    requests: mpsc::UnboundedSender<Captured>,
    events: mpsc::UnboundedSender<Event>,
) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let _ = requests.send(request);
    for step in script {
        match step {
            Step::Send(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            Step::Pause(d) => tokio::time::sleep(d).await,
            Step::Reset => {
                let _ = socket.set_zero_linger();
                return;
            }
            Step::NextRequest => match read_request(&mut socket).await {
                Some(request) => {
                    let _ = requests.send(request);
                }
                None => return,
            },
            Step::AwaitClientClose(d) => {
                let mut buf = [0u8; 1024];
                let closed = tokio::time::timeout(d, async {
                    loop {
                        if let Ok(0) | Err(_) = socket.read(&mut buf).await {
                            return;
                        }
                    }
                })
                .await
                .is_ok();
                let _ = events.send(Event::ClientClosed(closed));
            }
        }
    }
    // Dropping the socket closes it: mid-body this is a cut connection.
}

async fn read_request(socket: &mut TcpStream) -> Option<Captured> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Captured {
        method,
        path,
        headers,
        body,
    })
}

/// Response head of a streaming chat answer (chunked, as Ollama sends it).
pub(crate) fn ndjson_head() -> Step {
    Step::Send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
}

/// Response head of a body that simply ends when the connection closes (no framing).
pub(crate) fn unframed_ndjson_head() -> Step {
    Step::Send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
}

/// One HTTP chunk carrying `data` (any bytes, e.g. half a line).
pub(crate) fn chunk(data: &[u8]) -> Step {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    Step::Send(out)
}

/// The end of a chunked body.
pub(crate) fn end_chunks() -> Step {
    Step::Send(b"0\r\n\r\n".to_vec())
}

/// A complete response with a fixed-length body.
pub(crate) fn reply(code: u16, reason: &str, content_type: &str, body: &str) -> Step {
    Step::Send(
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A complete JSON response that keeps the connection open for the next request.
pub(crate) fn keep_alive_json(body: &Value) -> Step {
    let body = body.to_string();
    Step::Send(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A JSON response.
pub(crate) fn json_reply(code: u16, reason: &str, body: &Value) -> Step {
    reply(
        code,
        reason,
        "application/json; charset=utf-8",
        &body.to_string(),
    )
}
