//! A direct streaming client of Ollama's `/api/chat`, with no ROS: the crate's own
//! `ollama_bridge::ollama::Client` (reqwest) on a tokio runtime shaped like the node's. It times
//! each request from the moment it is sent to its first content chunk; `scripts/bench` subtracts
//! this from the bridge's publish → first `response_partial` time to get what the bridge adds.
//!
//! ```text
//! cargo run --release --example direct_stream -- --url http://127.0.0.1:11434 --model llama3.2 \
//!     --requests 200 --warmup 10 --pause-ms 10
//! ```
//! Prints one JSON line: `{"ttfc_ms": [...], "total_ms": [...], "chunks": [...], "errors": N}`
//! (warm-up requests left out). `--pause-ms` is the idle time between two requests: keep it the
//! same as the run this is compared with, since a CPU waking from idle is part of the latency.

use ollama_bridge::ollama::{ChatRequest, Client, ClientConfig, Message, Think};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    model: String,
    requests: usize,
    warmup: usize,
    pause: Duration,
    system: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { url: "http://127.0.0.1:11434".into(), model: "llama3.2".into(), requests: 200, warmup: 10,
        pause: Duration::from_millis(10), system: String::new() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag} takes a whole number, not {value:?}"));
        match flag.as_str() {
            "--url" => a.url = value.clone(),
            "--model" => a.model = value.clone(),
            "--requests" => a.requests = number()? as usize,
            "--warmup" => a.warmup = number()? as usize,
            "--pause-ms" => a.pause = Duration::from_millis(number()?),
            "--system" => a.system = value.clone(),
            _ => return Err(format!("unknown flag {flag} (--url --model --requests --warmup --pause-ms --system)")),
        }
    }
    Ok(a)
}

/// One streamed request: (send → first content chunk, send → done, content chunks).
async fn one(client: &Client, args: &Args, text: String) -> Result<(f64, f64, usize), String> {
    let mut messages = Vec::new();
    if !args.system.is_empty() {
        messages.push(Message::system(&args.system));
    }
    messages.push(Message::user(&text));
    let mut request = ChatRequest::new(&args.model, messages);
    request.think = Some(Think::Bool(false));
    let sent = Instant::now();
    let mut stream = client.chat_stream(&request).await.map_err(|e| e.to_string())?;
    let (mut first, mut chunks) = (None, 0);
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if !chunk.content().is_empty() {
            first.get_or_insert_with(|| sent.elapsed());
            chunks += 1;
        }
        if chunk.done {
            break;
        }
    }
    let first = first.ok_or("no content chunk")?;
    Ok((first.as_secs_f64() * 1e3, sent.elapsed().as_secs_f64() * 1e3, chunks))
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("direct_stream: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // The node's runtime: two workers, requests run as spawned tasks.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let config = ClientConfig { base_url: args.url.clone(), ..ClientConfig::default() };
    let client = match Client::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("direct_stream: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let task = runtime.spawn(async move {
        let (mut ttfc, mut total, mut chunks, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for i in 0..args.warmup + args.requests {
            if i > 0 && !args.pause.is_zero() {
                tokio::time::sleep(args.pause).await;
            }
            match one(&client, &args, format!("utterance number {i}, please answer")).await {
                Ok((first, all, n)) if i >= args.warmup => {
                    ttfc.push(first);
                    total.push(all);
                    chunks.push(n);
                }
                Ok(_) => {}
                Err(e) => {
                    errors += 1;
                    eprintln!("direct_stream: request {i}: {e}");
                }
            }
        }
        serde_json::json!({"ttfc_ms": ttfc, "total_ms": total, "chunks": chunks, "errors": errors})
    });
    match runtime.block_on(task) {
        Ok(result) => {
            println!("{result}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("direct_stream: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
