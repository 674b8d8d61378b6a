//! A load probe for anything that answers `utterance` with `response_partial` messages and one
//! `response_final` (the bridge, or a peer implementation): N sessions, each sending its next
//! utterance as soon as its previous answer is final, for a time or a number of exchanges. It
//! receives every partial (reliable, 200,000 deep, drained after every `spin_once`, so the probe
//! does not lose what it is measuring) and watches a process's CPU and RSS in /proc.
//!
//! It counts what was relayed in answer text, not in messages: a relay may publish several
//! streamed pieces in one message (the bridge does when it falls behind). Every answer of a run is
//! the same `--pieces`-piece text, so bytes convert to pieces exactly on average.
//!
//! ```text
//! cargo run --release --example chunk_probe -- --ns /bench --sessions 100 --seconds 5 \
//!     --pieces 200 --pid $(pgrep -n ollama_bridge)
//! cargo run --release --example chunk_probe -- --ns /bench --sessions 1000 --exchanges 20 --pieces 40
//! ```
//! Prints one JSON line. Over the answers whose final says they completed: `bytes_lost` (the
//! final's text bytes − the partials' bytes; negative for duplicates), `pieces_lost` (the bytes
//! lost in pieces, rounded up), `messages_lost` (`Response.chunk_count` − partials received,
//! when the target sets it), `texts_wrong` (answers whose partials, joined in `seq` order, are not
//! the final's text); also `inputs_lost` (utterances without a final within `--request-timeout`),
//! pieces/s and messages/s, time to the first partial per request (ms), the watched process's CPU
//! seconds and RSS (kB), and the CPU share of `--other-pid` (e.g. the Ollama server) and of the
//! probe itself over the same window.

use futures::{FutureExt, StreamExt};
use r2r::ollama_bridge_msgs::msg::{Response, ResponseChunk, Utterance};
use r2r::QosProfile;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Deep and reliable on the probe's side: the probe must never be what loses a chunk.
const DEEP: QosProfile = QosProfile::default().reliable().keep_last(200_000);

struct Args {
    ns: String,
    sessions: usize,
    seconds: f64,
    exchanges: usize,
    pieces: u64,
    pid: Option<u32>,
    /// Another process whose CPU share is reported for the same window (the Ollama server).
    other_pid: Option<u32>,
    request_timeout: Duration,
    text_chars: usize,
    prefix: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { ns: String::new(), sessions: 1, seconds: 5.0, exchanges: 0, pieces: 0, pid: None, other_pid: None,
        request_timeout: Duration::from_secs(10), text_chars: 60, prefix: format!("p{}", std::process::id()) };
    let mut it = std::env::args().skip(1).take_while(|a| a != "--ros-args");
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<f64>().map_err(|_| format!("{flag} takes a number, not {value:?}"));
        match flag.as_str() {
            "--ns" => a.ns = value.trim_end_matches('/').to_string(),
            "--sessions" => a.sessions = num()?.max(1.0) as usize,
            "--seconds" => a.seconds = num()?,
            "--exchanges" => a.exchanges = num()? as usize,
            "--pieces" => a.pieces = num()? as u64,
            "--pid" => a.pid = Some(num()? as u32),
            "--other-pid" => a.other_pid = Some(num()? as u32),
            "--request-timeout" => a.request_timeout = Duration::from_secs_f64(num()?),
            "--text-chars" => a.text_chars = num()? as usize,
            "--prefix" => a.prefix = value.clone(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.seconds <= 0.0 && a.exchanges == 0 {
        return Err("give --seconds or --exchanges".into());
    }
    Ok(a)
}

/// User + system CPU seconds of `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

/// Resident set size of `pid` in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

struct Session {
    sent_at: Instant,
    first_seen: bool,
    outstanding: bool,
    done: usize,
}

fn text_of(chars: usize, session: usize, exchange: usize) -> String {
    let mut t = format!("session {session} exchange {exchange}:");
    let words = ["tell", "me", "about", "the", "kitchen", "robot", "and", "its", "tray"];
    let mut i = 0;
    while t.len() < chars {
        t.push(' ');
        t.push_str(words[i % words.len()]);
        i += 1;
    }
    t
}

/// What arrived of one request's answer.
#[derive(Default)]
struct Received {
    messages: u64,
    /// The partials' texts joined in `seq` order (a partial out of order marks the text wrong).
    text: String,
    next_seq: u32,
    out_of_order: bool,
}

impl Received {
    fn add(&mut self, p: &ResponseChunk) {
        self.messages += 1;
        self.out_of_order |= p.seq != self.next_seq;
        self.next_seq = p.seq.wrapping_add(1);
        self.text.push_str(&p.text);
    }
}

/// A completed answer as its final reported it.
struct Completed {
    request_id: u64,
    text: String,
    chunk_count: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse().map_err(|e| format!("chunk_probe: {e}"))?;
    let ctx = r2r::Context::create()?;
    let mut node = r2r::Node::create(ctx, &format!("chunk_probe_{}", std::process::id()), "")?;
    let inputs = node.create_publisher::<Utterance>(&format!("{}/utterance", args.ns), DEEP)?;
    let mut partials = node.subscribe::<ResponseChunk>(&format!("{}/response_partial", args.ns), DEEP)?;
    let mut finals = node.subscribe::<Response>(&format!("{}/response_final", args.ns), DEEP)?;

    // Discovery: the target's input must see us, then one answer must come back on both outputs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while inputs.get_inter_process_subscription_count()? == 0 {
        if Instant::now() > deadline {
            return Err("no subscriber on the utterance topic within 30 s".into());
        }
        node.spin_once(Duration::from_millis(10));
    }
    // One warm-up answer (sent again only if nothing at all comes back), then silence: after
    // this, both outputs are matched and nothing of the warm-up is still on its way.
    let warm = format!("{}-warm", args.prefix);
    let (mut got_partial, mut got_final, mut last_heard) = (false, false, None::<Instant>);
    let mut last_send = Instant::now() - Duration::from_secs(60);
    while !(got_partial && got_final) {
        if Instant::now() > deadline {
            return Err("no answer to the warm-up utterance within 30 s".into());
        }
        if last_heard.unwrap_or(last_send).elapsed() > Duration::from_secs(3) {
            inputs.publish(&Utterance { session_id: warm.clone(), text: "warm up".into(), attach_image: false })?;
            last_send = Instant::now();
        }
        node.spin_once(Duration::from_millis(10));
        while let Some(Some(_)) = partials.next().now_or_never() {
            got_partial = true;
            last_heard = Some(Instant::now());
        }
        while let Some(Some(f)) = finals.next().now_or_never() {
            got_final |= f.session_id == warm;
            last_heard = Some(Instant::now());
        }
    }
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(300) {
        node.spin_once(Duration::from_millis(10));
        while let Some(Some(_)) = partials.next().now_or_never() {
            quiet_since = Instant::now();
        }
        while let Some(Some(_)) = finals.next().now_or_never() {
            quiet_since = Instant::now();
        }
    }

    let names: Vec<String> = (0..args.sessions).map(|i| format!("{}-{i}", args.prefix)).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let (mut n_partials, mut n_finals, mut n_errors, mut inputs_lost) = (0u64, 0u64, 0u64, 0u64);
    let mut bytes_in_window = 0u64;
    let mut ttfp_ms: Vec<f64> = Vec::new();
    // What arrived per request, and the requests whose final said they completed: losses are
    // counted over completed answers only (a peer may still be streaming one whose input the
    // probe already gave up on). Keyed by request id alone (unique per target process).
    let mut per_request: HashMap<u64, Received> = HashMap::new();
    let mut completed: Vec<Completed> = Vec::new();
    let (mut rss_max, mut last_sample) = (args.pid.map(rss_kb).unwrap_or(0), Instant::now());
    let cpu0 = args.pid.map(cpu_seconds).unwrap_or(0.0);
    let (other0, own0) = (args.other_pid.map(cpu_seconds).unwrap_or(0.0), cpu_seconds(std::process::id()));
    let t0 = Instant::now();
    let stop_sending = if args.seconds > 0.0 { t0 + Duration::from_secs_f64(args.seconds) } else { t0 + Duration::from_secs(86400) };
    let mut sessions: Vec<Session> = Vec::with_capacity(args.sessions);
    for (i, name) in names.iter().enumerate() {
        inputs.publish(&Utterance { session_id: name.clone(), text: text_of(args.text_chars, i, 0), attach_image: false })?;
        sessions.push(Session { sent_at: Instant::now(), first_seen: false, outstanding: true, done: 0 });
    }
    let mut outstanding = args.sessions;
    let mut t_last_final = t0;
    let mut last_timeout_check = t0;
    let more = |s: &Session, now: Instant| now < stop_sending && (args.exchanges == 0 || s.done < args.exchanges);
    while outstanding > 0 {
        node.spin_once(Duration::from_millis(20));
        let now = Instant::now();
        while let Some(Some(p)) = partials.next().now_or_never() {
            n_partials += 1;
            bytes_in_window += p.text.len() as u64;
            per_request.entry(p.request_id).or_default().add(&p);
            if let Some(&i) = index.get(p.session_id.as_str()) {
                let s = &mut sessions[i];
                // seq 0 is the first piece of an answer (a late piece of the previous one is not).
                if s.outstanding && !s.first_seen && p.seq == 0 {
                    s.first_seen = true;
                    ttfp_ms.push(now.duration_since(s.sent_at).as_secs_f64() * 1e3);
                }
            }
        }
        let mut resend = Vec::new();
        while let Some(Some(f)) = finals.next().now_or_never() {
            let Some(&i) = index.get(f.session_id.as_str()) else { continue };
            let s = &mut sessions[i];
            if !s.outstanding {
                continue;
            }
            s.outstanding = false;
            outstanding -= 1;
            n_finals += 1;
            t_last_final = now;
            if f.done_reason == "error" || f.done_reason == "cancelled" {
                n_errors += 1;
                eprintln!("chunk_probe: {} ended with {}: {}", f.session_id, f.done_reason, f.error);
            } else {
                completed.push(Completed { request_id: f.request_id, text: f.text, chunk_count: f.chunk_count });
            }
            s.done += 1;
            if more(s, now) {
                resend.push(i);
            }
        }
        let check_timeouts = now.duration_since(last_timeout_check) > Duration::from_millis(100);
        if check_timeouts {
            last_timeout_check = now;
        }
        for (i, s) in sessions.iter_mut().enumerate().filter(|_| check_timeouts) {
            if s.outstanding && now.duration_since(s.sent_at) > args.request_timeout {
                inputs_lost += 1;
                s.outstanding = false;
                outstanding -= 1;
                s.done += 1;
                if more(s, now) {
                    resend.push(i);
                }
            }
        }
        for i in resend {
            let s = &mut sessions[i];
            inputs.publish(&Utterance { session_id: names[i].clone(), text: text_of(args.text_chars, i, s.done), attach_image: false })?;
            s.sent_at = Instant::now();
            s.first_seen = false;
            s.outstanding = true;
            outstanding += 1;
        }
        if let Some(pid) = args.pid {
            if last_sample.elapsed() > Duration::from_millis(100) {
                rss_max = rss_max.max(rss_kb(pid));
                last_sample = Instant::now();
            }
        }
    }
    let elapsed = t_last_final.duration_since(t0).as_secs_f64();
    let cpu = args.pid.map(cpu_seconds).unwrap_or(0.0) - cpu0;
    let other_cpu = args.other_pid.map(cpu_seconds).unwrap_or(0.0) - other0;
    let own_cpu = cpu_seconds(std::process::id()) - own0;
    let partials_in_window = n_partials;
    // Partials published before their final but delivered after it still count.
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        node.spin_once(Duration::from_millis(20));
        while let Some(Some(p)) = partials.next().now_or_never() {
            n_partials += 1;
            per_request.entry(p.request_id).or_default().add(&p);
        }
        while let Some(Some(_)) = finals.next().now_or_never() {}
    }
    let empty = Received::default();
    let (mut bytes_expected, mut bytes_received, mut messages_lost, mut texts_wrong) = (0u64, 0u64, 0i64, 0u64);
    for c in &completed {
        let got = per_request.get(&c.request_id).unwrap_or(&empty);
        bytes_expected += c.text.len() as u64;
        bytes_received += got.text.len() as u64;
        if c.chunk_count > 0 {
            messages_lost += i64::from(c.chunk_count) - got.messages as i64;
        }
        texts_wrong += u64::from(got.out_of_order || got.text != c.text);
    }
    let received_messages: u64 = completed.iter().filter_map(|c| per_request.get(&c.request_id)).map(|r| r.messages).sum();
    let ok_finals = n_finals - n_errors;
    // Every answer is the same text of `--pieces` pieces: bytes per piece, on average.
    let answer_bytes = if completed.is_empty() { 0.0 } else { bytes_expected as f64 / completed.len() as f64 };
    let piece_bytes = if args.pieces > 0 && answer_bytes > 0.0 { answer_bytes / args.pieces as f64 } else { 1.0 };
    let bytes_lost = bytes_expected as i64 - bytes_received as i64;
    let pieces_relayed = bytes_in_window as f64 / piece_bytes;
    let result = serde_json::json!({
        "sessions": args.sessions, "exchanges": args.exchanges, "seconds": elapsed,
        "partials": n_partials, "finals": n_finals, "errors": n_errors, "inputs_lost": inputs_lost,
        "pieces_per_answer": args.pieces, "answer_bytes": answer_bytes,
        "expected_pieces": args.pieces * ok_finals, "expected_bytes": bytes_expected,
        "bytes_lost": bytes_lost,
        "pieces_lost": (bytes_lost.max(0) as f64 / piece_bytes).ceil() as i64,
        "messages_lost": messages_lost, "texts_wrong": texts_wrong,
        "partials_of_unfinished": n_partials - received_messages,
        "pieces_relayed": pieces_relayed,
        "pieces_per_s": pieces_relayed / elapsed.max(1e-9),
        "messages_per_s": partials_in_window as f64 / elapsed.max(1e-9),
        "pieces_per_message": pieces_relayed / (partials_in_window as f64).max(1.0),
        "exchanges_per_s": n_finals as f64 / elapsed.max(1e-9),
        "ttfp_ms": ttfp_ms,
        "cpu_s": cpu, "cpu_pct": 100.0 * cpu / elapsed.max(1e-9),
        "other_cpu_pct": 100.0 * other_cpu / elapsed.max(1e-9), "probe_cpu_pct": 100.0 * own_cpu / elapsed.max(1e-9),
        "rss_kb_max": rss_max, "rss_kb_end": args.pid.map(rss_kb).unwrap_or(0),
    });
    println!("{result}");
    Ok(())
}
