//! One exchange: the session's history plus the new input → a streaming `/api/chat` (on the
//! server its [`Route`] picks, moving to another before output if one fails) → partials as they
//! arrive → the final response. Retries happen only before anything was published, so a
//! listener never sees a partial twice.

use crate::config::Config;
use crate::fleet::Route;
use crate::ollama::{ChatChunk, ChatRequest, ChatStream, Message, OllamaError, StallLimit, Think, ToolCall};
use crate::answer::Answer;
use crate::outputs::{Counters, Ending, FinalResponse, Outputs};
use crate::senses::Senses;
use crate::context::{self, ContextWindows};
use crate::session::{Job, Turn};
use std::time::{Duration, Instant};

/// What one exchange produced.
pub struct ExchangeOutcome {
    pub response: FinalResponse,
    /// The turn to add to the history; `None` unless Ollama finished the answer.
    pub turn: Option<Turn>,
    /// Oldest exchanges of the job's history left out to fit the context window: the session
    /// forgets them when it commits this exchange.
    pub dropped_turns: usize,
}

/// Builds the request: system prompt, completed turns (those that fit: see `context::fit`), then
/// the new user text.
pub fn chat_request(config: &Config, history: &[Turn], user_text: &str) -> ChatRequest {
    let mut messages = Vec::with_capacity(history.len() * 2 + 2);
    if !config.system_prompt.trim().is_empty() {
        messages.push(Message::system(&config.system_prompt));
    }
    for turn in history {
        messages.push(Message::user(&turn.user));
        messages.push(Message::assistant(&turn.assistant));
    }
    messages.push(Message::user(user_text));
    let mut request = ChatRequest::new(&config.model, messages);
    request.options = config.options.clone();
    request.keep_alive = config.keep_alive;
    request.format = config.format.clone();
    request.think = Some(Think::Bool(config.think));
    request
}

/// Streamed progress of one request, kept across tool rounds and retries.
struct Progress {
    /// What was published of the answer (partials, reasoning, sentences).
    answer: Answer,
    /// Tool calls of the answer being streamed (taken after each answer).
    tool_calls: Vec<ToolCall>,
}

enum Failure {
    Cancelled,
    Ollama(OllamaError),
    /// Refused before asking Ollama (no camera frame for an image request, an input that
    /// cannot fit the context window): the message names the reason.
    Refused(String),
}

/// Runs `job` to its end, publishing every partial. The final response is returned, not
/// published: the caller commits the exchange (history, `history_dir`) first, so whoever sees a
/// final can rely on its exchange being saved.
pub async fn run(
    route: Result<Route, OllamaError>, config: &Config, job: &Job, outputs: &dyn Outputs, senses: Option<&Senses>,
    windows: &ContextWindows,
) -> ExchangeOutcome {
    let request = &job.request;
    let mut progress = Progress { answer: Answer::new(config), tool_calls: Vec::new() };
    let mut fit = None;
    let result = match &route {
        Ok(route) => match fit_history(route, config, job, windows).await {
            Ok(planned) => {
                let mut chat = chat_request(config, &job.history[planned.dropped..], &request.text);
                fit = Some(planned);
                converse(route, config, &mut chat, job, outputs, senses, &mut progress).await
            }
            Err(failure) => Err(failure),
        },
        Err(e) => Err(Failure::Ollama(e.clone())),
    };
    let server = route.as_ref().map_or_else(|_| config.shown_url(), Route::server);
    let (ending, counters) = match result {
        Ok((reason, counters)) => {
            progress.answer.finish(request, outputs);
            (Ending::Done(reason), counters)
        }
        Err(Failure::Cancelled) => (Ending::Cancelled, Counters::default()),
        Err(Failure::Ollama(e)) => (Ending::Error(describe_error(&e, config, &server)), Counters::default()),
        Err(Failure::Refused(why)) => (Ending::Error(why), Counters::default()),
    };
    let answer = progress.answer;
    let turn = match (&ending, &fit) {
        (Ending::Done(_), Some(fit)) => Some(fit.counted_turn(
            &request.text, &answer.text, counters.prompt_eval_count, counters.eval_count, config.think)),
        _ => None,
    };
    let dropped_turns = fit.map_or(0, |f| f.dropped);
    let since = |t: Instant| t.duration_since(request.arrived).as_secs_f64();
    let response = FinalResponse {
        session_id: request.session_id.clone(),
        request_id: request.id,
        prompt: request.text.clone(),
        speech: answer.speech(),
        text: answer.text,
        model: config.model.clone(),
        ending,
        counters,
        time_to_first_chunk_s: answer.first_chunk.map(since).unwrap_or(0.0),
        total_time_s: since(Instant::now()),
        chunk_count: answer.seq,
        server,
    };
    ExchangeOutcome { response, turn, dropped_turns }
}

/// Which exchanges of the job's history fit the context window with its input (see
/// `context::fit`); looking the window up stops when the job is cancelled.
async fn fit_history(route: &Route, config: &Config, job: &Job, windows: &ContextWindows) -> Result<context::Fit, Failure> {
    let request = &job.request;
    let planned = tokio::select! {
        biased;
        _ = job.cancel.cancelled() => return Err(Failure::Cancelled),
        // the window of the server the request goes to, once the route knows which has the model
        planned = async {
            route.settle().await;
            context::plan(windows, &route.client(), config, &job.history, &request.text).await
        } => planned,
    };
    match planned {
        Ok(fit) if fit.dropped > 0 => {
            log::info!("request {} (session '{}'): the oldest {} of {} exchange(s) left out to fit the {}",
                request.id, request.session_id, fit.dropped, job.history.len(), fit.window);
            Ok(fit)
        }
        Ok(fit) => Ok(fit),
        Err(why) => {
            log::warn!("request {} (session '{}'): {why}", request.id, request.session_id);
            Err(Failure::Refused(why))
        }
    }
}

/// Streams answers until one has no tool calls: the camera frame and the tools come from
/// `senses` (see [`Senses::prepare`]), each tool round's results are sent back by the
/// [`crate::tools::ToolRounds`] it returns. Counters add up over the rounds.
async fn converse(
    route: &Route, config: &Config, chat: &mut ChatRequest, job: &Job, outputs: &dyn Outputs, senses: Option<&Senses>,
    progress: &mut Progress,
) -> Result<(String, Counters), Failure> {
    let mut rounds = match senses {
        Some(senses) => senses.prepare(&route.client(), config, &job.request, chat).await.map_err(Failure::Refused)?,
        None => None,
    };
    let mut total = Counters::default();
    loop {
        let answer_start = progress.answer.text.len();
        let (reason, counters) = stream_with_retries(route, config, chat, job, outputs, progress).await?;
        total = add_counters(total, counters);
        let calls = std::mem::take(&mut progress.tool_calls);
        let more = match rounds.as_mut() {
            Some(rounds) => rounds.after_answer(chat, &progress.answer.text[answer_start..], calls, &job.cancel).await
                .map_err(|_| Failure::Cancelled)?,
            None => false,
        };
        if !more {
            return Ok((reason, total));
        }
    }
}

fn add_counters(a: Counters, b: Counters) -> Counters {
    Counters {
        prompt_eval_count: a.prompt_eval_count.saturating_add(b.prompt_eval_count),
        eval_count: a.eval_count.saturating_add(b.eval_count),
        total_duration_ns: a.total_duration_ns.saturating_add(b.total_duration_ns),
        load_duration_ns: a.load_duration_ns.saturating_add(b.load_duration_ns),
        prompt_eval_duration_ns: a.prompt_eval_duration_ns.saturating_add(b.prompt_eval_duration_ns),
        eval_duration_ns: a.eval_duration_ns.saturating_add(b.eval_duration_ns),
    }
}

/// Backoff before retry `attempt` (1-based): 0.25 s, 0.5 s, 1 s, ... capped at 4 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)))
}

async fn stream_with_retries(
    route: &Route, config: &Config, chat: &ChatRequest, job: &Job, outputs: &dyn Outputs, progress: &mut Progress,
) -> Result<(String, Counters), Failure> {
    let mut attempt = 0;
    loop {
        match stream_once(route, chat, job, outputs, progress).await {
            Err(Failure::Ollama(e)) if progress.answer.untouched() && e.is_retryable_before_output() && attempt < config.max_retries => {
                attempt += 1;
                progress.answer.restart(config);
                let wait = backoff(attempt);
                log::warn!("request {} (session '{}'): {e}; retry {attempt}/{} in {:.2}s",
                    job.request.id, job.request.session_id, config.max_retries, wait.as_secs_f64());
                tokio::select! {
                    _ = job.cancel.cancelled() => return Err(Failure::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            other => return other,
        }
    }
}

async fn stream_once(
    route: &Route, chat: &ChatRequest, job: &Job, outputs: &dyn Outputs, progress: &mut Progress,
) -> Result<(String, Counters), Failure> {
    let stream = tokio::select! {
        biased;
        _ = job.cancel.cancelled() => return Err(Failure::Cancelled),
        opened = route.chat_stream(chat) => opened.map_err(Failure::Ollama)?,
    };
    relay(stream, job, outputs, progress).await
}

/// Most streamed chunks published together as one partial when the relay is behind the server:
/// bounds how long the first piece of a batch waits (each take lets the other tasks run once).
pub const MAX_CHUNKS_PER_PARTIAL: usize = 32;

/// Publishes one streamed answer until its done chunk. While the relay keeps up (the next chunk
/// is not received yet when one arrives), every chunk is published at once, as before. When it
/// falls behind (chunks already received, by the HTTP client or split off in `stream`, when one
/// is published), those chunks are taken without waiting and published together as one partial,
/// up to [`MAX_CHUNKS_PER_PARTIAL`]: a burst costs fewer DDS messages, the text is the same.
/// Every piece taken is published before the next wait and before any return, so the
/// partials always add up to `Answer::text`.
async fn relay(mut stream: ChatStream, job: &Job, outputs: &dyn Outputs, progress: &mut Progress) -> Result<(String, Counters), Failure> {
    // The last batch stopped at the cap: the next chunk is already late, it joins the next batch.
    let mut behind = false;
    loop {
        let next = tokio::select! {
            biased;
            // Dropping the stream closes the connection, which stops generation in Ollama.
            _ = job.cancel.cancelled() => return Err(Failure::Cancelled),
            next = stream.next_chunk() => next,
        };
        let Some(next) = next else {
            let detail = "the stream ended before the final chunk".to_string();
            return Err(Failure::Ollama(OllamaError::Truncated { chunks: stream.chunks_received(), detail }));
        };
        if let Some(done) = take(next, job, outputs, progress)? {
            return Ok(done);
        }
        if !behind {
            progress.answer.flush(&job.request, outputs);
        }
        let batch = take_received(&mut stream, job, outputs, progress).await;
        progress.answer.flush(&job.request, outputs);
        behind = match batch? {
            Batch::Done(done) => return Ok(done),
            Batch::CaughtUp => false,
            Batch::Full => true,
        };
    }
}

/// How a batch of already-received chunks ended.
enum Batch {
    /// Nothing more was received yet.
    CaughtUp,
    /// [`MAX_CHUNKS_PER_PARTIAL`] chunks were taken; more may be waiting.
    Full,
    /// The done chunk was taken: `done_reason` and counters.
    Done((String, Counters)),
}

/// Takes the chunks that are already received, without waiting for the server. Between two takes
/// the task yields once: the HTTP client hands a response body over one frame at a time (hyper
/// 1.x: the connection task sends each decoded HTTP chunk through a body channel that holds one,
/// `proto/h1/dispatch.rs` `poll_read`), and only a yield lets that task decode the next frame it
/// has already read. At model pacing the first take finds nothing: one yield, no wait.
async fn take_received(stream: &mut ChatStream, job: &Job, outputs: &dyn Outputs, progress: &mut Progress) -> Result<Batch, Failure> {
    for _ in 0..MAX_CHUNKS_PER_PARTIAL {
        tokio::task::yield_now().await;
        if job.cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let Some(next) = stream.try_next_buffered() else {
            return Ok(Batch::CaughtUp);
        };
        if let Some(done) = take(next, job, outputs, progress)? {
            return Ok(Batch::Done(done));
        }
    }
    Ok(Batch::Full)
}

/// Books one streamed chunk into the answer (not published yet) and its tool calls; the done
/// chunk's reason and counters once it came. An error ends the stream.
fn take(
    next: Result<ChatChunk, OllamaError>, job: &Job, outputs: &dyn Outputs, progress: &mut Progress,
) -> Result<Option<(String, Counters)>, Failure> {
    let chunk = next.map_err(Failure::Ollama)?;
    progress.tool_calls.extend_from_slice(chunk.tool_calls());
    progress.answer.push(&job.request, chunk.content(), chunk.thinking(), outputs);
    if !chunk.done {
        return Ok(None);
    }
    progress.answer.flush(&job.request, outputs);
    let reason = chunk.done_reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "stop".into());
    Ok(Some((reason, counters(&chunk))))
}

fn counters(chunk: &ChatChunk) -> Counters {
    let small = |v: Option<u64>| v.unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    Counters {
        prompt_eval_count: small(chunk.prompt_eval_count),
        eval_count: small(chunk.eval_count),
        total_duration_ns: chunk.total_duration.unwrap_or(0),
        load_duration_ns: chunk.load_duration.unwrap_or(0),
        prompt_eval_duration_ns: chunk.prompt_eval_duration.unwrap_or(0),
        eval_duration_ns: chunk.eval_duration.unwrap_or(0),
    }
}

/// The `error` text of a failed request: the client's own description (cause and what to do),
/// plus which model and `server` (shown URL) it was. (The client already scrubs the API key from
/// every error it returns, including text a server echoes back.)
pub fn describe_error(e: &OllamaError, config: &Config, server: &str) -> String {
    let setting = match e.stall_limit() {
        Some(StallLimit::Load) => " (the wait for the first line is load_timeout_s)",
        Some(StallLimit::Idle) => " (the silence limit between lines is request_timeout_s)",
        None => "",
    };
    format!("{e}{setting} [model '{}' at {server}]", config.model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Params;

    #[test]
    fn request_carries_system_history_then_user() {
        let mut params = Params::with_defaults();
        params.system_prompt = "be brief".into();
        params.options_json = "{\"seed\":7}".into();
        let config = Config::from_params(&params).unwrap();
        let history = [Turn::new("hi", "hello")];
        let body = serde_json::to_value(chat_request(&config, &history, "how are you?")).unwrap();
        let roles: Vec<_> = body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(body["messages"][3]["content"], "how are you?");
        assert_eq!(body["options"]["seed"], 7);
        assert_eq!(body["think"], false);
        assert_eq!(body["model"], "llama3.2");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_millis(4000));
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod relay_tests;
