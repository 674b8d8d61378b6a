//! Context budget: how many tokens a request may use, what each stored exchange costs, and which
//! oldest exchanges to leave out so that system prompt + history + input + reply reserve fit.
//!
//! # The window (tokens), first that applies
//! 1. parameter `context_tokens` (> 0);
//! 2. `num_ctx` in `options_json` (what Ollama will load the model with);
//! 3. the server's: the model's trained length (`/api/show` → `model_info["<arch>.context_length"]`)
//!    capped at Ollama's default context, [`OLLAMA_DEFAULT_NUM_CTX`]. Ollama's rule (server/routes.go,
//!    `Serve`): `OLLAMA_CONTEXT_LENGTH` if set, else by the server's total VRAM: ≥ 47 GiB → 262144,
//!    ≥ 23 GiB → 32768, else 4096; llm/server.go then clamps `num_ctx` to the trained length. The node
//!    cannot see the server's VRAM or environment, so it assumes the smallest tier; a bigger server
//!    window is used by setting `context_tokens` (or `num_ctx`). Looked up once per server and model
//!    and kept for [`WINDOW_TTL`]. With `api: openai` the lookup is the model's `/v1/models` entry
//!    (see `ollama::openai`): the window the engine serves (vLLM `max_model_len`, llama.cpp's
//!    server `meta.n_ctx`), capped the same way. With several servers each has its own (its URL is
//!    part of the cache key): a request is fitted to the window of the server it is routed to (the
//!    first of its route; a request that fails over before any output keeps that fit).
//!
//! # The reply reserve
//! `num_predict` from `options_json` when > 0, else parameter `reply_reserve_tokens`.
//!
//! # What each exchange costs
//! Ollama's own counters from the final chunk: `eval_count` is the answer (not used with `think`,
//! where it includes the thinking, which the history does not keep). The user turn is what the prompt
//! grew by, derived from `prompt_eval_count` P. Ollama's Go runners report the whole prompt there
//! (runner/ollamarunner/runner.go: `numPromptInputs = len(inputs)` in `NewSequence`, before
//! `LoadCacheSlot` reuses the cache), llama.cpp's server only what it evaluated (`prompt_n`, the rest
//! is `cache_n`). So P = (system + history + user turn) − cached prefix, and the cached prefix is one
//! of: nothing (Ollama), the system prompt (llama.cpp after a trim), or system + history (llama.cpp
//! extending the previous prompt). [`Fit::user_tokens`] takes the hypothesis whose user turn is
//! closest to the input's estimate. With Ollama the result is the exact growth of the prompt, and it
//! also absorbs the estimation error of the turns before it (system prompt, restored or cancelled
//! turns), so system prompt + history add up to what the server counted. Text never counted (the
//! system prompt, the new input, turns restored from files without counts, cancelled answers) is
//! estimated with [`estimate_tokens`].
//!
//! # Trimming in blocks
//! When the history does not fit, the oldest exchanges are left out until it takes at most half the
//! room left for history (at least the newest exchange when that alone fits), so the next requests
//! extend this one's prompt and the server's prompt cache stays useful.

use crate::config::Config;
use crate::ollama::Client;
use crate::session::Turn;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ollama's default context (`num_ctx`) on a server with less than 23 GiB of VRAM and no
/// `OLLAMA_CONTEXT_LENGTH` (server/routes.go, `Serve`): the smallest of its defaults.
pub const OLLAMA_DEFAULT_NUM_CTX: u32 = 4096;
/// Tokens a chat template adds around one message (role header and end marker), for estimates.
pub const TEMPLATE_TOKENS_PER_MESSAGE: u32 = 4;
/// How long a window looked up on the server is trusted.
pub const WINDOW_TTL: Duration = Duration::from_secs(300);
/// How long a failed lookup is remembered (so a server that is down is not asked every request).
const FAILED_LOOKUP_TTL: Duration = Duration::from_secs(5);

/// Estimated tokens of text the server never counted: its UTF-8 bytes / 4, rounded up (chars / 4
/// for ASCII, more for other scripts, which tokenise into more pieces), plus one message's framing.
pub fn estimate_tokens(text: &str) -> u32 {
    let bytes = u32::try_from(text.len()).unwrap_or(u32::MAX);
    bytes.div_ceil(4).saturating_add(TEMPLATE_TOKENS_PER_MESSAGE)
}

/// Tokens one stored exchange takes in a prompt: its counts, or estimates where it has none.
pub fn turn_tokens(turn: &Turn) -> u32 {
    let user = turn.user_tokens.unwrap_or_else(|| estimate_tokens(&turn.user));
    user.saturating_add(turn.assistant_tokens.unwrap_or_else(|| estimate_tokens(&turn.assistant)))
}

/// Where a window size came from.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowSource {
    /// Parameter `context_tokens`.
    Param,
    /// `num_ctx` in `options_json`.
    NumCtx,
    /// The server's, for `model`; `trained` is its `context_length` (None: not reported or the
    /// lookup failed).
    Server { model: String, trained: Option<u64> },
}

/// A context window: its size in tokens and where that came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub tokens: u32,
    pub source: WindowSource,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.tokens;
        match &self.source {
            WindowSource::Param => write!(f, "{n}-token context window (context_tokens)"),
            WindowSource::NumCtx => write!(f, "{n}-token context window (num_ctx in options_json)"),
            WindowSource::Server { model, trained: Some(t) } if u64::from(n) < *t => write!(f,
                "{n}-token context window (model '{model}' supports {t}, Ollama's default context is {OLLAMA_DEFAULT_NUM_CTX}; \
                 set context_tokens if the server runs a larger one)"),
            WindowSource::Server { model, trained: Some(_) } => write!(f, "{n}-token context window (model '{model}')"),
            WindowSource::Server { model, trained: None } => write!(f,
                "{n}-token context window (Ollama's default context; model '{model}' reported no context length)"),
        }
    }
}

/// `num_ctx` of the options, when it is a positive whole number.
fn num_ctx(config: &Config) -> Option<u32> {
    let value = config.options.as_ref()?.get("num_ctx")?;
    let n = value.as_u64().or_else(|| value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))?;
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// The window set by the node's configuration (`context_tokens`, else `num_ctx`), if any.
pub fn configured_window(config: &Config) -> Option<Window> {
    if config.context_tokens > 0 {
        return Some(Window { tokens: config.context_tokens, source: WindowSource::Param });
    }
    num_ctx(config).map(|tokens| Window { tokens, source: WindowSource::NumCtx })
}

/// The server's window for a model whose trained context length is `trained`.
pub fn server_window(model: &str, trained: Option<u64>) -> Window {
    let tokens = trained
        .map(|t| u32::try_from(t).unwrap_or(u32::MAX).min(OLLAMA_DEFAULT_NUM_CTX))
        .filter(|t| *t > 0)
        .unwrap_or(OLLAMA_DEFAULT_NUM_CTX);
    Window { tokens, source: WindowSource::Server { model: model.to_string(), trained } }
}

/// Tokens kept free for the answer: `num_predict` when > 0, else `reply_reserve_tokens`.
pub fn reply_reserve(config: &Config) -> u32 {
    config.options.as_ref()
        .and_then(|o| o.get("num_predict"))
        .and_then(|v| v.as_i64())
        .filter(|n| *n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(config.reply_reserve_tokens)
}

/// A window looked up on a server: when, and whether the lookup worked.
struct Lookup {
    at: Instant,
    window: Window,
    ok: bool,
}

/// Windows looked up on servers, per (server, model), shared by every request of the node: a
/// request uses the window of the server it is routed to.
#[derive(Default)]
pub struct ContextWindows {
    known: Mutex<HashMap<(String, String), Lookup>>,
}

impl ContextWindows {
    pub fn new() -> ContextWindows {
        ContextWindows::default()
    }

    /// The window for the next request with `config` on `client`'s server (see the module doc),
    /// looked up there when not known for that server and model. Never fails: a lookup
    /// that fails (it is logged) gives Ollama's default, and the request itself reports the fault.
    pub async fn window(&self, client: &Client, config: &Config) -> Window {
        if let Some(window) = configured_window(config) {
            return window;
        }
        // per server (its API and URL as shown), not per `ollama_url`: the servers of a fleet
        // may run the model with different windows
        let key = (format!("{} {}", client.api().as_str(), client.base_url()), config.model.clone());
        if let Some(known) = self.lock().get(&key) {
            if known.at.elapsed() < if known.ok { WINDOW_TTL } else { FAILED_LOOKUP_TTL } {
                return known.window.clone();
            }
        }
        let (trained, ok) = match client.show(&config.model).await {
            Ok(show) => (show.context_length(), true),
            Err(e) => {
                log::warn!("could not look up the context length of model '{}' on {} ({e}); assuming Ollama's default {}",
                    config.model, client.base_url(), OLLAMA_DEFAULT_NUM_CTX);
                (None, false)
            }
        };
        let window = server_window(&config.model, trained);
        self.lock().insert(key, Lookup { at: Instant::now(), window: window.clone(), ok });
        window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Lookup>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What fits in a window: how many of the oldest exchanges to leave out, and the token numbers the
/// exchange's own count is derived from when it completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The oldest exchanges of the history that are not sent (the session forgets them when this
    /// exchange is committed, so the next prompts start the same way).
    pub dropped: usize,
    pub window: Window,
    /// Estimated tokens of the system prompt (0 without one).
    pub system_tokens: u32,
    /// Tokens of the exchanges sent (counted or estimated).
    pub history_tokens: u32,
    /// Estimated tokens of the new input.
    pub input_tokens: u32,
}

/// Decides which exchanges of `history` (oldest first) are sent with `input`, or why nothing fits:
/// an input that cannot fit even without history gets a message naming the numbers and parameters.
pub fn fit(window: Window, reserve: u32, system_prompt: &str, history: &[Turn], input: &str) -> Result<Fit, String> {
    let system_tokens = if system_prompt.trim().is_empty() { 0 } else { estimate_tokens(system_prompt) };
    let input_tokens = estimate_tokens(input);
    let base = u64::from(system_tokens) + u64::from(input_tokens) + u64::from(reserve);
    if base > u64::from(window.tokens) {
        return Err(format!(
            "the input does not fit the context window: system prompt ~{system_tokens} + input ~{input_tokens} + reply \
             reserve {reserve} = {base} tokens, more than the {window}; shorten the input, lower reply_reserve_tokens \
             (or num_predict), or raise context_tokens (or num_ctx) if the model allows"));
    }
    let room = window.tokens - base as u32;
    let sizes: Vec<u32> = history.iter().map(turn_tokens).collect();
    let total: u64 = sizes.iter().map(|s| u64::from(*s)).sum();
    let keep = if total <= u64::from(room) {
        sizes.len()
    } else {
        // newest first, while within half the room: the next prompts have room to grow
        let mut kept = 0u64;
        let n = sizes.iter().rev().take_while(|s| { kept += u64::from(**s); kept <= u64::from(room / 2) }).count();
        if n == 0 && sizes.last().is_some_and(|s| *s <= room) { 1 } else { n }
    };
    let dropped = sizes.len() - keep;
    let history_tokens = sizes[dropped..].iter().fold(0u32, |a, s| a.saturating_add(*s));
    Ok(Fit { dropped, window, system_tokens, history_tokens, input_tokens })
}

impl Fit {
    /// The user turn's tokens in the prompt (with its template framing), from the final chunk's
    /// `prompt_eval_count` (0 = not reported → None). See the module doc for the hypotheses.
    pub fn user_tokens(&self, prompt_eval_count: u32) -> Option<u32> {
        if prompt_eval_count == 0 {
            return None;
        }
        let p = i64::from(prompt_eval_count);
        let known = i64::from(self.system_tokens) + i64::from(self.history_tokens);
        let estimate = i64::from(self.input_tokens);
        // the cached prefix: none (Ollama), the system prompt, or system prompt + history
        let candidates = [0, i64::from(self.system_tokens), known].map(|cached| p - known + cached);
        let (index, best) = candidates.iter().copied().enumerate()
            .filter(|(_, u)| *u >= 1)
            .min_by_key(|(_, u)| (u - estimate).abs())?;
        // Ollama's reading is taken as it is (it also carries the corrections); a cache reading
        // far from the estimate is more likely a misreading than a fact
        let plausible = index == 0 || (best * 3 >= estimate && best <= 3 * estimate + 16);
        Some(u32::try_from(if plausible { best } else { estimate }).unwrap_or(u32::MAX))
    }

    /// The completed exchange with its token counts: the user turn from `prompt_eval_count`, the
    /// answer from `eval_count` (not with thinking on: it counts the thinking too).
    pub fn counted_turn(&self, user: &str, assistant: &str, prompt_eval_count: u32, eval_count: u32, think: bool) -> Turn {
        let assistant_tokens = (eval_count > 0 && !think).then_some(eval_count);
        Turn::new(user, assistant).with_tokens(self.user_tokens(prompt_eval_count), assistant_tokens)
    }
}

/// [`fit`] for the next request of `config`, with the window looked up as needed.
pub async fn plan(windows: &ContextWindows, client: &Client, config: &Config, history: &[Turn], input: &str) -> Result<Fit, String> {
    let window = windows.window(client, config).await;
    fit(window, reply_reserve(config), &config.system_prompt, history, input)
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
