//! Node parameters.
//!
//! [`Params`] is what ROS sees (`ros2 param list/get/set/describe`): flat, typed, each field's doc
//! line is its description. [`LiveParams`] wraps it to veto bad values at `ros2 param set` time
//! (the rclcpp on-set callback's job). [`Config`] is the parsed snapshot a request reads; the
//! bridge swaps in a new one whenever a parameter changes, so changes apply to the next request.

use crate::ollama::{ClientConfig, Format, KeepAlive};
use indexmap::IndexMap;
use r2r::{Parameter, ParameterValue, RosParams};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where Ollama listens when neither `ollama_url` nor `OLLAMA_HOST` say otherwise.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";

/// The node's ROS parameters, with their defaults in [`Params::with_defaults`].
#[derive(RosParams, Debug, Clone, Default)]
pub struct Params {
    /// Ollama server URL ("" = $OLLAMA_HOST as Ollama's client reads it, else http://127.0.0.1:11434)
    pub ollama_url: String,
    /// Model used for new requests; changes are checked against the server first
    pub model: String,
    /// System prompt sent first in every conversation ("" = none)
    pub system_prompt: String,
    /// JSON object passed to Ollama as `options` (e.g. {"temperature":0,"seed":42,"num_ctx":4096})
    pub options_json: String,
    /// Ollama keep_alive: "" = server default, seconds ("300", "-1" = forever) or a duration ("10m")
    pub keep_alive: String,
    /// Output format: "" = free text, "json", or a JSON schema object
    pub format: String,
    /// Let thinking models think (thinking is never spoken; false keeps replies fast)
    pub think: bool,
    /// Completed exchanges kept per session (oldest dropped first; the system prompt is always kept)
    pub max_history_turns: i64,
    /// Forget a session after this many idle seconds (0 = never)
    pub session_ttl_s: f64,
    /// Requests streaming at once across all sessions (read at start)
    pub max_concurrent_requests: i64,
    /// Give up when Ollama sends nothing for this many seconds (also mid-stream)
    pub request_timeout_s: f64,
    /// Give up connecting to Ollama after this many seconds
    pub connect_timeout_s: f64,
    /// Retries of a request that failed before any output (connection refused, 503, ...)
    pub max_retries: i64,
    /// Inputs longer than this many characters are rejected with an error response
    pub max_input_chars: i64,
    /// Inputs waiting per session; more are rejected with an error response
    pub max_queue_per_session: i64,
    /// Sessions kept in memory; the least recently used idle one is evicted beyond this
    pub max_sessions: i64,
    /// Folder where completed exchanges are appended (one JSONL file per session; "" = in memory only)
    pub history_dir: String,
    /// Remove Markdown and emoji from the sentence topics and response_text (partials and Response.text stay raw)
    pub speech_filter: bool,
    /// Sentences shorter than this many characters join the next one
    pub min_sentence_chars: i64,
    /// A run-on sentence is cut (at the last comma or space) before this many characters
    pub max_sentence_chars: i64,
    /// An input for a session whose answer is still streaming cancels that answer and is answered next
    pub barge_in: bool,
    /// Load the model at start and after every model change, so the first answer does not wait for it
    pub warm_up: bool,
    /// Unload the model from the server (keep_alive 0) when the node stops
    pub unload_on_exit: bool,
    /// Context window in tokens the history must fit in (0 = auto: num_ctx in options_json, else the model's context length capped at Ollama's default 4096)
    pub context_tokens: i64,
    /// Tokens kept free for the answer when options_json has no num_predict
    pub reply_reserve_tokens: i64,
}

impl Params {
    /// Defaults, with `ollama_url` taken from `OLLAMA_HOST` when set.
    pub fn with_defaults() -> Params {
        Params {
            ollama_url: default_ollama_url(),
            model: "llama3.2".into(),
            system_prompt: "You are a friendly robot assistant. Answer in one to three short spoken \
                            sentences, in plain words without markdown, lists or emoji."
                .into(),
            options_json: "{}".into(),
            keep_alive: String::new(),
            format: String::new(),
            think: false,
            max_history_turns: 20,
            session_ttl_s: 3600.0,
            max_concurrent_requests: 4,
            request_timeout_s: 60.0,
            connect_timeout_s: 5.0,
            max_retries: 2,
            max_input_chars: 8000,
            max_queue_per_session: 32,
            max_sessions: 1000,
            history_dir: String::new(),
            speech_filter: true,
            min_sentence_chars: 10,
            max_sentence_chars: 200,
            barge_in: false,
            warm_up: true,
            unload_on_exit: false,
            context_tokens: 0,
            reply_reserve_tokens: 512,
        }
    }
}

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
    pub ollama_url: String,
    pub model: String,
    pub system_prompt: String,
    pub options: Option<Map<String, Value>>,
    pub keep_alive: Option<KeepAlive>,
    pub format: Option<Format>,
    pub think: bool,
    pub max_history_turns: usize,
    pub session_ttl: Option<Duration>,
    pub max_concurrent_requests: usize,
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
    /// 0 = auto (see `context`).
    pub context_tokens: u32,
    pub reply_reserve_tokens: u32,
}

/// A parameter that failed validation: its name and a message for `ros2 param set` / the log.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidParam {
    pub name: &'static str,
    pub message: String,
}

impl std::fmt::Display for InvalidParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid parameter '{}': {}", self.name, self.message)
    }
}

fn invalid(name: &'static str, message: impl Into<String>) -> InvalidParam {
    InvalidParam { name, message: message.into() }
}

fn seconds(name: &'static str, value: f64, allow_zero: bool) -> Result<Duration, InvalidParam> {
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) || value > 1e9 {
        return Err(invalid(name, format!("{value} is not a valid number of seconds")));
    }
    Ok(Duration::from_secs_f64(value))
}

fn count(name: &'static str, value: i64, min: i64) -> Result<usize, InvalidParam> {
    if value < min {
        return Err(invalid(name, format!("{value} is below the minimum of {min}")));
    }
    usize::try_from(value).map_err(|_| invalid(name, "out of range"))
}

/// A token count parameter: 0 up to u32::MAX.
fn tokens(name: &'static str, value: i64) -> Result<u32, InvalidParam> {
    u32::try_from(count(name, value, 0)?).map_err(|_| invalid(name, format!("{value} is more than {}", u32::MAX)))
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
    /// Validates every parameter; the first bad one is reported.
    pub fn from_params(p: &Params) -> Result<Config, InvalidParam> {
        let ollama_url = match p.ollama_url.trim() {
            "" => default_ollama_url(),
            url => url.trim_end_matches('/').to_string(),
        };
        if !(ollama_url.starts_with("http://") || ollama_url.starts_with("https://")) {
            return Err(invalid("ollama_url", format!("'{}' must start with http:// or https://", p.ollama_url)));
        }
        if p.model.trim().is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        let keep_alive = KeepAlive::parse_param(&p.keep_alive).map_err(|e| invalid("keep_alive", e.message))?;
        let format = Format::parse_param(&p.format).map_err(|e| invalid("format", e.message))?;
        let ttl = seconds("session_ttl_s", p.session_ttl_s, true)?;
        Ok(Config {
            ollama_url,
            model: p.model.trim().to_string(),
            system_prompt: p.system_prompt.clone(),
            options: parse_options(&p.options_json)?,
            keep_alive,
            format,
            think: p.think,
            max_history_turns: count("max_history_turns", p.max_history_turns, 0)?,
            session_ttl: (!ttl.is_zero()).then_some(ttl),
            max_concurrent_requests: count("max_concurrent_requests", p.max_concurrent_requests, 1)?,
            request_timeout: seconds("request_timeout_s", p.request_timeout_s, false)?,
            connect_timeout: seconds("connect_timeout_s", p.connect_timeout_s, false)?,
            max_retries: count("max_retries", p.max_retries, 0)?.min(100) as u32,
            max_input_chars: count("max_input_chars", p.max_input_chars, 1)?,
            max_queue_per_session: count("max_queue_per_session", p.max_queue_per_session, 1)?,
            max_sessions: count("max_sessions", p.max_sessions, 1)?,
            history_dir: match p.history_dir.trim() {
                "" => None,
                dir => Some(PathBuf::from(dir)),
            },
            speech_filter: p.speech_filter,
            min_sentence_chars: count("min_sentence_chars", p.min_sentence_chars, 0)?,
            max_sentence_chars: count("max_sentence_chars", p.max_sentence_chars, 20)?,
            barge_in: p.barge_in,
            warm_up: p.warm_up,
            unload_on_exit: p.unload_on_exit,
            context_tokens: tokens("context_tokens", p.context_tokens)?,
            reply_reserve_tokens: tokens("reply_reserve_tokens", p.reply_reserve_tokens)?,
        })
    }

    /// The Ollama client settings this config asks for, with `api_key` (see [`api_key_from_env`]).
    pub fn client_config(&self, api_key: Option<String>) -> ClientConfig {
        ClientConfig {
            base_url: self.ollama_url.clone(),
            connect_timeout: self.connect_timeout,
            idle_timeout: self.request_timeout,
            api_key,
        }
    }
}

/// The API key for an authenticating proxy in front of Ollama. Read from the environment only:
/// ROS parameters are world-readable.
pub fn api_key_from_env() -> Option<String> {
    std::env::var("OLLAMA_API_KEY").ok().filter(|k| !k.trim().is_empty())
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

/// Checks that a model exists before `ros2 param set model` accepts it.
pub type ModelCheck = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// [`Params`] as registered with r2r: every `ros2 param set` is validated (and a new `model`
/// checked against the server) before it is accepted, so a bad value gets `successful: false`
/// with a reason and never reaches a request.
pub struct LiveParams {
    pub values: Params,
    pub model_check: Option<ModelCheck>,
}

fn to_r2r_error(e: InvalidParam) -> r2r::Error {
    r2r::Error::ParameterValueConv { name: e.name.to_string(), msg: e.message }
}

impl LiveParams {
    fn validate_change(&self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        let mut candidate = self.values.clone();
        candidate.set_parameter(name, value)?;
        Config::from_params(&candidate).map_err(to_r2r_error)?;
        if name == "model" {
            if let (Some(check), ParameterValue::String(model)) = (&self.model_check, value) {
                if model.trim() != self.values.model {
                    check(model.trim()).map_err(|msg| r2r::Error::ParameterValueConv { name: "model".into(), msg })?;
                }
            }
        }
        Ok(())
    }
}

impl RosParams for LiveParams {
    fn register_parameters(
        &mut self, prefix: &str, param: Option<Parameter>, params: &mut IndexMap<String, Parameter>,
    ) -> r2r::Result<()> {
        self.values.register_parameters(prefix, param, params)?;
        Config::from_params(&self.values).map(|_| ()).map_err(to_r2r_error)
    }
    fn get_parameter(&mut self, name: &str) -> r2r::Result<ParameterValue> {
        self.values.get_parameter(name)
    }
    fn set_parameter(&mut self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.validate_change(name, value)?;
        self.values.set_parameter(name, value)
    }
    fn check_parameter(&self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.validate_change(name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_params(&Params::with_defaults()).expect("defaults validate");
        assert_eq!(c.options, None);
        assert_eq!(c.format, None);
        assert!(c.max_concurrent_requests >= 1);
    }

    #[test]
    fn options_must_be_an_object() {
        assert_eq!(parse_options("{\"seed\": 1}").unwrap().unwrap()["seed"], 1);
        assert_eq!(parse_options("  ").unwrap(), None);
        assert_eq!(parse_options("[1]").unwrap_err().name, "options_json");
        assert!(parse_options("{seed: 1").unwrap_err().message.contains("not valid JSON"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut p = Params::with_defaults();
        p.request_timeout_s = 0.0;
        assert_eq!(Config::from_params(&p).unwrap_err().name, "request_timeout_s");
        let mut p = Params::with_defaults();
        p.format = "yaml".into();
        assert_eq!(Config::from_params(&p).unwrap_err().name, "format");
        let mut p = Params::with_defaults();
        p.model = " ".into();
        assert_eq!(Config::from_params(&p).unwrap_err().name, "model");
    }

    #[test]
    fn live_params_veto_bad_sets_and_keep_the_old_value() {
        let mut live = LiveParams { values: Params::with_defaults(), model_check: None };
        let err = live.set_parameter("options_json", &ParameterValue::String("[]".into()));
        assert!(err.is_err());
        assert_eq!(live.values.options_json, "{}");
        live.set_parameter("options_json", &ParameterValue::String("{\"seed\":3}".into())).unwrap();
        assert_eq!(live.values.options_json, "{\"seed\":3}");
        live.model_check = Some(Box::new(|m: &str| if m == "ok" { Ok(()) } else { Err(format!("no model {m}")) }));
        assert!(live.set_parameter("model", &ParameterValue::String("missing".into())).is_err());
        assert_eq!(live.values.model, "llama3.2");
        live.set_parameter("model", &ParameterValue::String("ok".into())).unwrap();
        assert_eq!(live.values.model, "ok");
    }
}
