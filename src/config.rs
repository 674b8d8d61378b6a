//! The node's parameters and the validated [`Config`] a request reads. No ROS here.
//!
//! [`Params`] is declared once below (one documented field per parameter, with its default, type,
//! range and whether it is read-only); the `parameters!` macro (see [`params`]) derives the
//! [`PARAMS`] table from it, which the ROS layer (`ros::params`) serves to `ros2 param` and
//! `--help` prints. [`Config`] is the parsed snapshot a request uses; the ROS layer swaps in a
//! new one after every accepted change, so changes apply to the next request.

pub mod params;
pub mod servers;

use crate::images::AttachImage;
use crate::ollama::{Api, ClientConfig, Format, KeepAlive};
use params::{parameters, Kind};
pub use params::{redact_url, spec, ParamSpec};
pub use servers::ApiKeys;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where Ollama listens when neither `ollama_url` nor `OLLAMA_HOST` say otherwise.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";

/// Seconds: from 1 ms to about 31 years.
const SECONDS: Kind = Kind::Float { min: 0.001, max: 1e9 };
/// Largest count a user could mean (inputs of a billion characters, ...).
const MANY: i64 = 1_000_000_000;

parameters! {
    /// Ollama server URL, or several separated by commas (a fleet: sessions stay on their server, failover to the others) ("" = $OLLAMA_HOST as Ollama's client reads it, else http://127.0.0.1:11434); a password in it is shown as ***
    ollama_url: String = default_ollama_url(), Kind::Text, false;
    /// Wire API of the servers: ollama (/api/chat) or openai (/v1/chat/completions of vLLM, SGLang, TGI, llama.cpp's server, LiteLLM, Ollama's /v1)
    api: String = "ollama", Kind::Choice(&["ollama", "openai"]), false;
    /// Model used for new requests; changes are checked against the server first
    model: String = "llama3.2", Kind::Text, false;
    /// System prompt sent first in every conversation ("" = none)
    system_prompt: String = DEFAULT_SYSTEM_PROMPT, Kind::Text, false;
    /// JSON object passed to Ollama as `options` (e.g. {"temperature":0,"seed":42,"num_ctx":4096})
    options_json: String = "{}", Kind::Text, false;
    /// Ollama keep_alive: "" = server default, seconds (300, -1 = forever) or a duration ("10m")
    keep_alive: String = "", Kind::TextOrNumber, false;
    /// Output format: "" = free text, "json", or a JSON schema object
    format: String = "", Kind::Text, false;
    /// Let thinking models think (thinking is never spoken; false keeps replies fast)
    think: bool = false, Kind::Bool, false;
    /// Completed exchanges kept per session (past it the oldest half go at once; the system prompt is always kept)
    max_history_turns: i64 = 20, Kind::Int { min: 0, max: MANY }, false;
    /// Forget a session after this many idle seconds (0 = never)
    session_ttl_s: f64 = 3600.0, Kind::Float { min: 0.0, max: 1e9 }, false;
    /// Requests streaming at once across all sessions (read at start)
    max_concurrent_requests: i64 = 4, Kind::Int { min: 1, max: 1024 }, true;
    /// Give up when the first streamed line has not come after this many seconds (model load, queue, prompt evaluation)
    load_timeout_s: f64 = 300.0, SECONDS, false;
    /// Give up when Ollama is silent this many seconds between two streamed lines
    request_timeout_s: f64 = 60.0, SECONDS, false;
    /// Give up connecting to Ollama after this many seconds
    connect_timeout_s: f64 = 5.0, SECONDS, false;
    /// Retries of a request that failed before any output (connection refused, 503, ...)
    max_retries: i64 = 2, Kind::Int { min: 0, max: 100 }, false;
    /// Inputs longer than this many characters are rejected with an error response
    max_input_chars: i64 = 8000, Kind::Int { min: 1, max: MANY }, false;
    /// Inputs waiting per session; more are rejected with an error response
    max_queue_per_session: i64 = 32, Kind::Int { min: 1, max: MANY }, false;
    /// Sessions kept in memory; the least recently used idle one is evicted beyond this
    max_sessions: i64 = 1000, Kind::Int { min: 1, max: MANY }, false;
    /// Folder where completed exchanges are appended (one JSONL file per session; "" = in memory only; read at start)
    history_dir: String = "", Kind::Text, true;
    /// QoS reliability of the speech_text and utterance subscriptions: reliable, or best_effort to hear sensor-data publishers (read at start)
    input_reliability: String = "reliable", Kind::Choice(&["reliable", "best_effort"]), true;
    /// Not used (the node times everything by the wall clock); declared as on every ROS 2 node so launch files may pass it
    use_sim_time: bool = false, Kind::Bool, true;
    /// Remove Markdown and emoji from the sentence topics and response_text (partials and Response.text stay raw)
    speech_filter: bool = true, Kind::Bool, false;
    /// Sentences shorter than this many characters join the next one
    min_sentence_chars: i64 = 10, Kind::Int { min: 0, max: 1000 }, false;
    /// A run-on sentence is cut (at its last comma or space) before this many characters
    max_sentence_chars: i64 = 200, Kind::Int { min: 20, max: 100_000 }, false;
    /// An input for a session whose answer is still streaming cancels that answer and is answered next
    barge_in: bool = false, Kind::Bool, false;
    /// Load the model at start and after every model change, so the first answer does not wait for the load
    warm_up: bool = true, Kind::Bool, false;
    /// Unload the model from the server (keep_alive 0) when the node stops
    unload_on_exit: bool = false, Kind::Bool, false;
    /// Camera topic (sensor_msgs/msg/Image) whose latest frame a vision model can get ("" = none; read at start)
    image_topic: String = "", Kind::Text, true;
    /// Camera topic (sensor_msgs/msg/CompressedImage, JPEG or PNG) ("" = none; read at start)
    compressed_image_topic: String = "", Kind::Text, true;
    /// Frames older than this many seconds are not sent (age from the header stamp, else from arrival)
    image_max_age_s: f64 = 2.0, SECONDS, false;
    /// Frames are shrunk so that their longer side is at most this many pixels
    image_max_side: i64 = 672, Kind::Int { min: 32, max: 8192 }, false;
    /// Which inputs get the latest frame: never, on_request (Utterance.attach_image) or always
    attach_image: String = "on_request", Kind::Choice(&["never", "on_request", "always"]), false;
    /// YAML file of tools bound to ROS services, actions and topics ("" = no tools; read at start)
    tools_file: String = "", Kind::Text, true;
    /// Tool rounds per request; after them the model answers without tools
    max_tool_rounds: i64 = 4, Kind::Int { min: 1, max: 64 }, false;
    /// Publish tool calls on tool_calls without executing them (the model is told so)
    tools_dry_run: bool = false, Kind::Bool, false;
    /// Context window in tokens the history must fit in (0 = auto: num_ctx in options_json, else the model's context length capped at Ollama's default 4096)
    context_tokens: i64 = 0, Kind::Int { min: 0, max: 4_294_967_295 }, false;
    /// Tokens kept free for the answer when options_json has no num_predict
    reply_reserve_tokens: i64 = 512, Kind::Int { min: 0, max: 4_294_967_295 }, false;
}

/// The default `system_prompt`: a short spoken-style robot persona.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a friendly robot assistant. Answer in one to three short spoken \
    sentences, in plain words without markdown, lists or emoji.";

/// `OLLAMA_HOST` as Ollama's own client reads it, else [`DEFAULT_OLLAMA_URL`].
pub fn default_ollama_url() -> String {
    match std::env::var("OLLAMA_HOST") {
        Ok(host) if !host.trim().is_empty() => ClientConfig::from_env_host(&host),
        _ => DEFAULT_OLLAMA_URL.to_string(),
    }
}

/// The parsed, validated form of [`Params`] that one request uses from start to end.
#[derive(Debug, Clone)]
pub struct Config {
    /// The servers joined with `,` (normalised: trimmed, no trailing `/`).
    pub ollama_url: String,
    /// The servers of `ollama_url`, in order (one or more).
    pub servers: Vec<String>,
    pub api: Api,
    pub model: String,
    pub system_prompt: String,
    pub options: Option<Map<String, Value>>,
    pub keep_alive: Option<KeepAlive>,
    pub format: Option<Format>,
    pub think: bool,
    pub max_history_turns: usize,
    pub session_ttl: Option<Duration>,
    pub max_concurrent_requests: usize,
    /// Longest wait for the first streamed line (`load_timeout_s`).
    pub load_timeout: Duration,
    /// Longest silence between two streamed lines (`request_timeout_s`).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub max_input_chars: usize,
    pub max_queue_per_session: usize,
    pub max_sessions: usize,
    pub history_dir: Option<PathBuf>,
    pub speech_filter: bool,
    pub min_sentence_chars: usize,
    pub max_sentence_chars: usize,
    pub barge_in: bool,
    pub warm_up: bool,
    pub unload_on_exit: bool,
    pub image_topic: String,
    pub compressed_image_topic: String,
    pub image_max_age: Duration,
    pub image_max_side: u32,
    pub attach_image: AttachImage,
    pub tools_file: Option<PathBuf>,
    pub max_tool_rounds: u32,
    pub tools_dry_run: bool,
    /// 0 = auto (see `context`).
    pub context_tokens: u32,
    pub reply_reserve_tokens: u32,
}

/// A parameter that failed validation: its name and a message for `ros2 param set` / the log.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidParam {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for InvalidParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid parameter '{}': {}", self.name, self.message)
    }
}

fn invalid(name: &str, message: impl Into<String>) -> InvalidParam {
    InvalidParam { name: name.to_string(), message: message.into() }
}

/// A count the table's range already holds, as `usize`.
fn count(name: &str, value: i64) -> Result<usize, InvalidParam> {
    usize::try_from(value).map_err(|_| invalid(name, format!("{value} is out of range")))
}

/// A token count parameter: 0 up to u32::MAX.
fn tokens(name: &'static str, value: i64) -> Result<u32, InvalidParam> {
    u32::try_from(value).map_err(|_| invalid(name, format!("{value} is outside 0 to {}", u32::MAX)))
}

/// Parses `options_json`: empty or a JSON object.
pub fn parse_options(text: &str) -> Result<Option<Map<String, Value>>, InvalidParam> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) if map.is_empty() => Ok(None),
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(invalid("options_json", format!("must be a JSON object like {{\"temperature\": 0}}, got {other}"))),
        Err(e) => Err(invalid("options_json", format!("not valid JSON ({e})"))),
    }
}

impl Config {
    /// Validates every parameter (types and ranges from [`PARAMS`], then the texts: URL, JSON,
    /// keep_alive, format); the first bad one is reported.
    pub fn from_params(p: &Params) -> Result<Config, InvalidParam> {
        p.check()?;
        let servers = servers::parse_servers(&p.ollama_url, default_ollama_url).map_err(|e| invalid("ollama_url", e))?;
        let api = Api::parse(&p.api).ok_or_else(|| invalid("api", "must be 'ollama' or 'openai'"))?;
        if p.model.trim().is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        let keep_alive = KeepAlive::parse_param(&p.keep_alive).map_err(|e| invalid("keep_alive", e.message))?;
        let format = Format::parse_param(&p.format).map_err(|e| invalid("format", e.message))?;
        let ttl = Duration::from_secs_f64(p.session_ttl_s);
        let attach_image = AttachImage::parse(&p.attach_image).map_err(|e| invalid("attach_image", e))?;
        if attach_image == AttachImage::Always && p.image_topic.trim().is_empty() && p.compressed_image_topic.trim().is_empty() {
            return Err(invalid("attach_image", "'always' needs image_topic or compressed_image_topic"));
        }
        let sentences = crate::speech::sentences::SentenceConfig {
            min_sentence_chars: usize::try_from(p.min_sentence_chars).unwrap_or(usize::MAX),
            max_sentence_chars: usize::try_from(p.max_sentence_chars).unwrap_or(0),
        };
        sentences.validate().map_err(|e| invalid("min_sentence_chars", e))?;
        // ranges were checked against the table above
        let in_range = |name, value: i64| u32::try_from(value).map_err(|_| invalid(name, "out of range"));
        Ok(Config {
            ollama_url: servers.join(","),
            servers,
            api,
            model: p.model.trim().to_string(),
            system_prompt: p.system_prompt.clone(),
            options: parse_options(&p.options_json)?,
            keep_alive,
            format,
            think: p.think,
            max_history_turns: count("max_history_turns", p.max_history_turns)?,
            session_ttl: (!ttl.is_zero()).then_some(ttl),
            max_concurrent_requests: count("max_concurrent_requests", p.max_concurrent_requests)?,
            load_timeout: Duration::from_secs_f64(p.load_timeout_s),
            request_timeout: Duration::from_secs_f64(p.request_timeout_s),
            connect_timeout: Duration::from_secs_f64(p.connect_timeout_s),
            max_retries: u32::try_from(p.max_retries).map_err(|_| invalid("max_retries", "out of range"))?,
            max_input_chars: count("max_input_chars", p.max_input_chars)?,
            max_queue_per_session: count("max_queue_per_session", p.max_queue_per_session)?,
            max_sessions: count("max_sessions", p.max_sessions)?,
            history_dir: match p.history_dir.trim() {
                "" => None,
                dir => Some(PathBuf::from(dir)),
            },
            speech_filter: p.speech_filter,
            min_sentence_chars: count("min_sentence_chars", p.min_sentence_chars)?,
            max_sentence_chars: count("max_sentence_chars", p.max_sentence_chars)?,
            barge_in: p.barge_in,
            warm_up: p.warm_up,
            unload_on_exit: p.unload_on_exit,
            image_topic: p.image_topic.trim().to_string(),
            compressed_image_topic: p.compressed_image_topic.trim().to_string(),
            image_max_age: Duration::from_secs_f64(p.image_max_age_s),
            image_max_side: in_range("image_max_side", p.image_max_side)?,
            attach_image,
            tools_file: match p.tools_file.trim() {
                "" => None,
                file => Some(PathBuf::from(file)),
            },
            max_tool_rounds: in_range("max_tool_rounds", p.max_tool_rounds)?,
            tools_dry_run: p.tools_dry_run,
            context_tokens: tokens("context_tokens", p.context_tokens)?,
            reply_reserve_tokens: tokens("reply_reserve_tokens", p.reply_reserve_tokens)?,
        })
    }

    /// `ollama_url` as the node shows it anywhere (logs, errors, answers): password as `***`.
    pub fn shown_url(&self) -> String {
        redact_url(&self.ollama_url)
    }

    /// The client settings of each server, in `ollama_url`'s order, with the key for `api`.
    pub fn client_configs(&self, keys: &ApiKeys) -> Vec<ClientConfig> {
        let api_key = keys.for_api(self.api);
        self.servers.iter().map(|url| ClientConfig {
            base_url: url.clone(),
            connect_timeout: self.connect_timeout,
            load_timeout: self.load_timeout,
            idle_timeout: self.request_timeout,
            api_key: api_key.clone(),
            api: self.api,
        }).collect()
    }
}

/// The current [`Config`], shared between the ROS layer (which updates it) and the requests
/// (which each take a snapshot). The lock is held only to clone or swap an `Arc`.
#[derive(Clone)]
pub struct ConfigHandle(Arc<RwLock<Arc<Config>>>);

impl ConfigHandle {
    pub fn new(config: Config) -> ConfigHandle {
        ConfigHandle(Arc::new(RwLock::new(Arc::new(config))))
    }
    /// The config in force now.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces the config; requests already running keep their snapshot.
    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
