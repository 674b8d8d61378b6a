//! Tests of the stream loop (`relay`): chunks that were already received when the relay fell
//! behind are published together as one partial, with the same text; at model pacing every
//! chunk is its own partial, published before the next one arrives.

use super::*;
use crate::config::Params;
use crate::ollama::fake_server::{chunk, end_chunks, ndjson_head, FakeServer, Step};
use crate::ollama::{ClientConfig, Limits};
use crate::outputs::{Partial, SentenceOut, SessionState};
use crate::session::Request;
use bytes::Bytes;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// What the relay published, in order.
#[derive(Default)]
struct Recorded {
    partials: Vec<(u32, String)>,
    thinking: Vec<(u32, String)>,
    sentences: Vec<String>,
}

/// Records every output; optionally reports each partial on a channel and cancels a token at
/// the first partial.
#[derive(Default)]
struct Recording {
    got: Mutex<Recorded>,
    on_partial: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    cancel_at_first: Option<CancellationToken>,
}

impl Recording {
    fn partials(&self) -> Vec<(u32, String)> {
        self.got.lock().unwrap().partials.clone()
    }
}

impl Outputs for Recording {
    fn partial(&self, partial: &Partial<'_>) {
        self.got.lock().unwrap().partials.push((partial.seq, partial.text.to_owned()));
        if let Some(tx) = &self.on_partial {
            let _ = tx.send(partial.text.to_owned());
        }
        if let Some(cancel) = &self.cancel_at_first {
            cancel.cancel();
        }
    }
    fn finished(&self, _: &FinalResponse) {}
    fn thinking(&self, piece: &Partial<'_>) {
        self.got.lock().unwrap().thinking.push((piece.seq, piece.text.to_owned()));
    }
    fn sentence(&self, sentence: &SentenceOut<'_>) {
        self.got.lock().unwrap().sentences.push(sentence.text.to_owned());
    }
    fn state(&self, _: &str, _: u64, _: SessionState) {}
}

fn line(content: &str, thinking: &str) -> String {
    serde_json::json!({"model": "m", "created_at": "t", "done": false,
        "message": {"role": "assistant", "content": content, "thinking": thinking}}).to_string() + "\n"
}

fn done_line() -> String {
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\
     \"done_reason\":\"stop\",\"eval_count\":7,\"prompt_eval_count\":3}\n".to_owned()
}

/// `n` distinct pieces of 4 characters ("w00 ", "w01 ", ...).
fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i:02} ")).collect()
}

fn job() -> Job {
    let request = Request { id: 1, session_id: "s".into(), text: "hi".into(), arrived: Instant::now(), attach_image: false };
    Job { request, history: Vec::new(), epoch: 0, cancel: CancellationToken::new() }
}

fn config(think: bool) -> Config {
    let mut params = Params::with_defaults();
    params.think = think;
    Config::from_params(&params).unwrap()
}

fn progress(config: &Config) -> Progress {
    Progress { answer: Answer::new(config), tool_calls: Vec::new() }
}

fn stream_of<S>(body: S) -> ChatStream
where
    S: futures::Stream<Item = Result<Bytes, String>> + Send + 'static,
{
    let limits = Limits::chat(Duration::from_secs(5), Duration::from_secs(5));
    ChatStream::from_byte_stream(body, limits, "mem".into(), "m".into())
}

/// The whole answer as one network read: everything is already received when the first piece is.
fn one_read(lines: &[String]) -> ChatStream {
    stream_of(futures::stream::iter(vec![Ok(Bytes::from(lines.concat()))]))
}

fn check_numbered(partials: &[(u32, String)]) {
    let seqs: Vec<u32> = partials.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..partials.len() as u32).collect::<Vec<_>>(), "seq counts messages from 0");
}

#[tokio::test]
async fn a_burst_already_received_is_published_as_fewer_partials_with_the_same_text() {
    let pieces = words(10);
    let mut lines: Vec<String> = pieces.iter().map(|p| line(p, "")).collect();
    lines.push(done_line());
    let (config, job, outputs) = (config(false), job(), Recording::default());
    let mut progress = progress(&config);
    let (reason, counters) = relay(one_read(&lines), &job, &outputs, &mut progress).await.ok().unwrap();
    assert_eq!((reason.as_str(), counters.eval_count, counters.prompt_eval_count), ("stop", 7, 3));
    let partials = outputs.partials();
    check_numbered(&partials);
    // The first piece goes out as it came; the nine behind it were already received: one message.
    assert_eq!(partials.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), [pieces[0].clone(), pieces[1..].concat()]);
    assert_eq!(progress.answer.text, pieces.concat());
    assert_eq!(progress.answer.seq as usize, partials.len(), "chunk_count counts messages");
}

#[tokio::test]
async fn a_long_burst_is_cut_into_partials_of_at_most_the_cap() {
    let pieces = words(100);
    let mut lines: Vec<String> = pieces.iter().map(|p| line(p, "")).collect();
    lines.push(done_line());
    let (config, job, outputs) = (config(false), job(), Recording::default());
    let mut progress = progress(&config);
    relay(one_read(&lines), &job, &outputs, &mut progress).await.ok().unwrap();
    let partials = outputs.partials();
    check_numbered(&partials);
    let sizes: Vec<usize> = partials.iter().map(|(_, t)| t.len() / 4).collect();
    // 1 at once, then batches: the cap, and cap + 1 once behind (the awaited chunk joins the batch).
    assert_eq!(sizes, [1, 32, 33, 33, 1], "pieces per partial");
    assert_eq!(partials.iter().map(|(_, t)| t.as_str()).collect::<String>(), pieces.concat());
}

#[tokio::test]
async fn at_model_pacing_every_chunk_is_published_before_the_next_one_arrives() {
    let pieces = words(6);
    let (tx, body) = futures::channel::mpsc::unbounded::<Result<Bytes, String>>();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (config, job) = (config(false), job());
    let outputs = Recording { on_partial: Some(seen_tx), ..Recording::default() };
    let mut progress = progress(&config);
    let server = async {
        for piece in &pieces {
            tx.unbounded_send(Ok(Bytes::from(line(piece, "")))).unwrap();
            // The next piece only once this one was published: a relay that held it would hang.
            let published = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
            assert_eq!(published.ok().flatten().as_deref(), Some(piece.as_str()));
        }
        tx.unbounded_send(Ok(Bytes::from(done_line()))).unwrap();
    };
    let (relayed, ()) = tokio::join!(relay(stream_of(body), &job, &outputs, &mut progress), server);
    assert!(relayed.is_ok());
    let partials = outputs.partials();
    check_numbered(&partials);
    assert_eq!(partials.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), pieces);
}

#[tokio::test]
async fn an_error_line_in_a_burst_fails_after_publishing_every_piece_before_it() {
    let lines = [line("one ", ""), line("two ", ""), line("three", ""), "{\"error\":\"out of memory\"}\n".to_owned()];
    let (config, job, outputs) = (config(false), job(), Recording::default());
    let mut progress = progress(&config);
    let failed = relay(one_read(&lines), &job, &outputs, &mut progress).await;
    assert!(matches!(failed, Err(Failure::Ollama(OllamaError::Server(ref m))) if m == "out of memory"));
    let published: String = outputs.partials().into_iter().map(|(_, t)| t).collect();
    assert_eq!((published.as_str(), progress.answer.text.as_str()), ("one two three", "one two three"));
    assert!(!progress.answer.untouched(), "no retry after published pieces");
}

#[tokio::test]
async fn a_cancel_during_a_burst_publishes_what_was_taken_and_stops() {
    let pieces = words(20);
    let mut lines: Vec<String> = pieces.iter().map(|p| line(p, "")).collect();
    lines.push(done_line());
    let (config, job) = (config(false), job());
    let outputs = Recording { cancel_at_first: Some(job.cancel.clone()), ..Recording::default() };
    let mut progress = progress(&config);
    let cancelled = relay(one_read(&lines), &job, &outputs, &mut progress).await;
    assert!(matches!(cancelled, Err(Failure::Cancelled)));
    let published: String = outputs.partials().into_iter().map(|(_, t)| t).collect();
    assert_eq!(published, progress.answer.text, "the partials add up to the final text");
    assert_eq!(published, pieces[0], "nothing is taken after the cancel");
}

#[tokio::test]
async fn reasoning_tool_calls_and_sentences_of_a_burst_are_all_kept() {
    let call = serde_json::json!({"model": "m", "created_at": "t", "done": false, "message": {"role": "assistant",
        "content": "", "tool_calls": [{"function": {"name": "set_led", "arguments": {"data": true}}}]}});
    let lines = [line("", "Think "), line("", "twice."), line("First sentence here. ", ""),
                 line("Second one is here.", ""), call.to_string() + "\n", done_line()];
    let (config, job, outputs) = (config(true), job(), Recording::default());
    let mut progress = progress(&config);
    relay(one_read(&lines), &job, &outputs, &mut progress).await.ok().unwrap();
    progress.answer.finish(&job.request, &outputs);
    let got = outputs.got.lock().unwrap();
    assert_eq!(got.thinking, [(0, "Think ".to_owned()), (1, "twice.".to_owned())], "first alone, then the batch");
    assert_eq!(got.partials, [(0, "First sentence here. Second one is here.".to_owned())]);
    assert_eq!(got.sentences, ["First sentence here.", "Second one is here."]);
    assert_eq!(progress.tool_calls.len(), 1);
    assert_eq!(progress.tool_calls[0].function.name, "set_led");
}

/// An answer that a server wrote in one go (one HTTP chunk per line, as Ollama does) through the
/// real client: hyper hands frames over one at a time, the relay still coalesces them. On one
/// thread, so that every yield of the relay lets hyper's connection task run (on the node's
/// two-worker runtime that task may run on the other worker, so how much is coalesced depends
/// on timing there: `scripts/bench` measures it).
#[tokio::test]
async fn a_burst_over_http_is_coalesced() {
    let pieces = words(60);
    let mut body: Vec<u8> = Vec::new();
    for step in [ndjson_head()].into_iter()
        .chain(pieces.iter().map(|p| chunk(line(p, "").as_bytes())))
        .chain([chunk(done_line().as_bytes()), end_chunks()])
    {
        if let Step::Send(bytes) = step {
            body.extend(bytes);
        }
    }
    let server = FakeServer::start(vec![vec![Step::Send(body), Step::AwaitClientClose(Duration::from_secs(2))]]).await;
    let fleet = std::sync::Arc::new(crate::fleet::Fleet::new(vec![ClientConfig {
        base_url: server.url.clone(),
        connect_timeout: Duration::from_secs(2),
        load_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        api_key: None,
        api: Default::default(),
    }]).unwrap());
    let route = fleet.route("s", "m");
    let (config, job, outputs) = (config(false), job(), Recording::default());
    let mut progress = progress(&config);
    let chat = ChatRequest::new("m", vec![Message::user("hi")]);
    stream_once(&route, &chat, &job, &outputs, &mut progress).await.ok().unwrap();
    let partials = outputs.partials();
    check_numbered(&partials);
    assert_eq!(partials.iter().map(|(_, t)| t.as_str()).collect::<String>(), pieces.concat());
    assert!(partials.len() <= 10, "60 pieces received at once became {} partials", partials.len());
}
