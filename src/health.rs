//! Health of the LLM path, as `/diagnostics` reports it (no ROS here).
//!
//! Three sources: [`Stats`] counts every final response (fed by the [`Counting`] outputs
//! wrapper); a probe asks every server of `ollama_url` every [`PROBE_INTERVAL`] (`/api/version`,
//! `/api/tags`, `/api/ps`, or `/v1/models` with `api: openai`), busy or idle;
//! [`crate::bridge::Bridge::activity`] says what runs and waits. [`news`] says at WARN/INFO what
//! changed between probes (the first runs at start: a server that is not there, or a model that
//! is not on it, is logged at once with the models it has). [`Health::report`] turns them into
//! one status: ERROR when no server can be reached, WARN when some cannot, the model is on none
//! of those that answer, every request slot is taken with inputs waiting, or requests failed on a
//! server in the last [`RECENT_ERRORS_WINDOW`]; OK otherwise. `hardware_id` is the server list.

use crate::bridge::{Activity, Bridge};
use crate::config::{Config, ConfigHandle};
use crate::fleet::Fleet;
use crate::ollama::{Api, Client, OllamaError};
use crate::outputs::{pass_on_speech_outputs, Ending, FinalResponse, Outputs, Partial};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the server is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// A probe that takes longer counts as "unreachable" (Ollama answers these at once, even while
/// a model loads or generates).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Server-side failures this recent make the status WARN.
pub const RECENT_ERRORS_WINDOW: Duration = Duration::from_secs(60);
/// `ttft_p50_s` is the median over this many latest answers.
const TTFT_SAMPLES: usize = 100;

/// Status level, ordered by severity (`diagnostic_msgs/DiagnosticStatus` OK, WARN, ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Error,
}

/// One diagnostic status, ROS-free.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub level: Level,
    /// Why, in words (the reasons joined with "; ").
    pub message: String,
    /// The server URL, password redacted.
    pub hardware_id: String,
    /// Key/value pairs, in a fixed order.
    pub values: Vec<(&'static str, String)>,
}

/// Counters over every final response since start.
#[derive(Default)]
pub struct Stats {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    requests_total: u64,
    errors_total: u64,
    last_error: String,
    /// When requests that reached a server failed (the input refusals are not the server's).
    server_errors: VecDeque<Instant>,
    /// Time to first chunk of the latest answers, seconds.
    ttft: VecDeque<f64>,
}

impl Stats {
    /// Books one final response: every input counts, errors and latencies by kind.
    pub fn record(&self, response: &FinalResponse) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.requests_total += 1;
        if let Ending::Error(why) = &response.ending {
            counts.errors_total += 1;
            counts.last_error = why.clone();
            // `server` is empty for inputs the bridge refused before sending them anywhere.
            if !response.server.is_empty() {
                counts.server_errors.push_back(Instant::now());
                prune(&mut counts.server_errors, Instant::now());
            }
        }
        if response.time_to_first_chunk_s > 0.0 {
            if counts.ttft.len() == TTFT_SAMPLES {
                counts.ttft.pop_front();
            }
            counts.ttft.push_back(response.time_to_first_chunk_s);
        }
    }

    /// (requests_total, errors_total, last_error, server errors in the window, median ttft).
    fn snapshot(&self, now: Instant) -> (u64, u64, String, usize, Option<f64>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut counts.server_errors, now);
        let mut ttft: Vec<f64> = counts.ttft.iter().copied().collect();
        ttft.sort_by(f64::total_cmp);
        let median = ttft.get(ttft.len() / 2).copied();
        (counts.requests_total, counts.errors_total, counts.last_error.clone(), counts.server_errors.len(), median)
    }
}

/// Drops error times older than the window.
fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.duration_since(*t) > RECENT_ERRORS_WINDOW) {
        times.pop_front();
    }
}

/// [`Outputs`] that books every final in [`Stats`], then publishes through `inner`.
pub struct Counting {
    pub inner: Arc<dyn Outputs>,
    pub stats: Arc<Stats>,
}

impl Outputs for Counting {
    fn partial(&self, partial: &Partial<'_>) {
        self.inner.partial(partial);
    }
    fn finished(&self, response: &FinalResponse) {
        self.stats.record(response);
        self.inner.finished(response);
    }
    pass_on_speech_outputs!();
}

/// What one probe found, for the URL and model it asked about.
#[derive(Debug, Clone)]
pub struct Probe {
    pub url: String,
    pub model: String,
    /// `Err` says why the server could not be asked.
    pub outcome: Result<ServerFacts, String>,
}

/// Facts from the servers that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFacts {
    /// `/api/version` (`openai` with `api: openai`), of each server that answered (distinct).
    pub version: String,
    /// The model is in `/api/tags` of one of them.
    pub model_present: bool,
    /// The model is in `/api/ps` of one of them.
    pub model_loaded: bool,
    /// Every model the server has (`/api/tags` names, e.g. `llama3.2:latest`), for the warning
    /// that names them when the configured model is missing.
    pub models: Vec<String>,
    /// Why each server that did not answer did not (empty with one server).
    pub unreachable: Vec<String>,
}

/// Asks every server for its version, models and loaded models, at once. `Err` when none
/// answered (the reasons joined with "; ").
pub async fn probe(fleet: Result<Arc<Fleet>, OllamaError>, model: &str) -> Result<ServerFacts, String> {
    let fleet = fleet.map_err(|e| e.to_string())?;
    let asked = futures::future::join_all(fleet.servers().iter().map(|s| probe_one(&s.client, model))).await;
    let (mut versions, mut unreachable, mut models) = (Vec::new(), Vec::new(), Vec::new());
    let (mut model_present, mut model_loaded) = (false, false);
    for outcome in asked {
        match outcome {
            Ok(facts) => {
                if !versions.contains(&facts.version) {
                    versions.push(facts.version);
                }
                model_present |= facts.model_present;
                model_loaded |= facts.model_loaded;
                models.extend(facts.models.into_iter().filter(|m| !models.contains(m)).collect::<Vec<_>>());
            }
            Err(why) => unreachable.push(why),
        }
    }
    if versions.is_empty() {
        return Err(unreachable.join("; "));
    }
    Ok(ServerFacts { version: versions.join(", "), model_present, model_loaded, models, unreachable })
}

/// [`probe`] of one server (with `api: openai`, one `/v1/models` answers all three).
async fn probe_one(client: &Client, model: &str) -> Result<ServerFacts, String> {
    let asked = async {
        if client.api() == Api::OpenAi {
            let models: Vec<String> = client.ps().await?.into_iter().map(|m| m.name).collect();
            let served = models.iter().any(|m| same_model(m, model));
            let unreachable = Vec::new();
            return Ok(ServerFacts { version: "openai".into(), model_present: served, model_loaded: served, models, unreachable });
        }
        let version = client.version().await?;
        let (tags, loaded) = tokio::join!(client.tags(), client.ps());
        let models = tags?;
        Ok::<_, OllamaError>(ServerFacts {
            version,
            model_present: models.iter().any(|m| same_model(m, model)),
            model_loaded: loaded?.iter().any(|m| same_model(&m.name, model)),
            models,
            unreachable: Vec::new(),
        })
    };
    match tokio::time::timeout(PROBE_TIMEOUT, asked).await {
        // every reason names its server (some transport errors do not), so a fleet's report says which
        Ok(result) => result.map_err(|e| match e.to_string() {
            text if text.contains(client.base_url()) => text,
            text => format!("{}: {text}", client.base_url()),
        }),
        Err(_) => Err(format!("the server at {} did not answer within {:.1}s", client.base_url(), PROBE_TIMEOUT.as_secs_f64())),
    }
}

pub use crate::ollama::same_model;

use crate::ollama::{redact_secrets, redact_url};

/// The node's health: probes the server in the background, reports on demand.
#[derive(Clone)]
pub struct Health {
    bridge: Bridge,
    config: ConfigHandle,
    stats: Arc<Stats>,
    last_probe: Arc<Mutex<Option<Probe>>>,
}

impl Health {
    pub fn new(bridge: Bridge, config: ConfigHandle, stats: Arc<Stats>) -> Health {
        Health { bridge, config, stats, last_probe: Arc::new(Mutex::new(None)) }
    }

    /// Probes every [`PROBE_INTERVAL`] (the first at once, so the node's start is checked),
    /// forever; logs what changed ([`news`]).
    pub async fn run_probes(self) {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let config = self.config.get();
            let outcome = probe(self.bridge.fleet(), &config.model).await;
            let probe = Probe { url: config.ollama_url.clone(), model: config.model.clone(), outcome };
            let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
            for (level, line) in news(last.as_ref(), &probe) {
                log::log!(level, "{line}");
            }
            *last = Some(probe);
        }
    }

    /// The status now.
    pub fn report(&self) -> Report {
        let probe = self.last_probe.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assess(&self.config.get(), probe.as_ref(), self.bridge.activity(), &self.stats, Instant::now())
    }
}

/// Most models named in the missing-model warning.
const MODELS_LISTED: usize = 20;

/// What an operator must hear when it changed since the `previous` probe (none at start): the
/// server unreachable (WARN, with the reason and URL) or answering again (INFO); the configured
/// model not on the server (WARN, with the models it has) or there again (INFO). Each is said
/// once per change, never per probe. The node keeps running either way: every request asks the
/// server anew, so it answers as soon as the server or the model is there.
pub fn news(previous: Option<&Probe>, now: &Probe) -> Vec<(log::Level, String)> {
    let mut out = Vec::new();
    match (&now.outcome, previous.map(|p| p.outcome.is_ok())) {
        (Err(why), Some(true) | None) => out.push((log::Level::Warn, format!(
            "health: the server is unreachable: {}; the node keeps running and checks again every {}s",
            redact_secrets(why, &now.url), PROBE_INTERVAL.as_secs()))),
        (Ok(facts), Some(false)) => out.push((log::Level::Info,
            format!("health: the server answers again (version {})", facts.version))),
        _ => {}
    }
    let Ok(facts) = &now.outcome else { return out };
    // what the previous probe knew of the same model on the same server
    let was_present = previous.filter(|p| p.url == now.url && p.model == now.model)
        .and_then(|p| p.outcome.as_ref().ok()).map(|f| f.model_present);
    let (model, url) = (&now.model, redact_url(&now.url));
    match (facts.model_present, was_present) {
        (false, Some(true) | None) => {
            let mut listed = facts.models.iter().take(MODELS_LISTED).cloned().collect::<Vec<_>>().join(", ");
            if facts.models.len() > MODELS_LISTED {
                listed += &format!(" and {} more", facts.models.len() - MODELS_LISTED);
            }
            let has = if listed.is_empty() { "it has no models".to_string() } else { format!("it has: {listed}") };
            out.push((log::Level::Warn, format!(
                "health: model '{model}' is not on the server at {url} ({has}); requests fail until it is \
                 pulled (Ollama: `ollama pull {model}`, or the pull_model action) or another model is chosen (set_model); \
                 the node keeps running")));
        }
        (true, Some(false)) => out.push((log::Level::Info, format!("health: model '{model}' is on the server now ({url})"))),
        _ => {}
    }
    out
}

/// The status from what is known at `now`.
fn assess(config: &Config, probe: Option<&Probe>, activity: Activity, stats: &Stats, now: Instant) -> Report {
    let (requests_total, errors_total, last_error, recent_errors, ttft) = stats.snapshot(now);
    let probe = probe.filter(|p| p.url == config.ollama_url);
    let facts = probe.and_then(|p| p.outcome.as_ref().ok()).filter(|_| probe.is_some_and(|p| p.model == config.model));
    let url = config.shown_url();
    let mut level = Level::Ok;
    let mut reasons = Vec::new();
    let mut raise = |to: Level, why: String| {
        level = level.max(to);
        reasons.push(why);
    };
    match probe.map(|p| &p.outcome) {
        None => raise(Level::Warn, format!("the server at {url} has not been checked yet")),
        Some(Err(why)) => raise(Level::Error, format!("the server is unreachable: {why}")),
        Some(Ok(facts)) if !facts.unreachable.is_empty() => raise(Level::Warn, format!(
            "{} of {} servers unreachable: {}", facts.unreachable.len(), config.servers.len(), facts.unreachable.join("; "))),
        Some(Ok(_)) => {}
    }
    if facts.is_some_and(|f| !f.model_present) {
        raise(Level::Warn, format!("model '{}' is not on the server: pull it (pull_model)", config.model));
    }
    if activity.slots > 0 && activity.in_flight >= activity.slots && activity.queued > 0 {
        raise(Level::Warn, format!("busy: all {} request slots in use, {} input(s) waiting", activity.slots, activity.queued));
    }
    if recent_errors > 0 {
        raise(Level::Warn, format!("{recent_errors} request(s) failed in the last {}s: {last_error}", RECENT_ERRORS_WINDOW.as_secs()));
    }
    let message = if reasons.is_empty() {
        let loaded = if facts.is_some_and(|f| f.model_loaded) { "loaded" } else { "not loaded" };
        format!("ok: model '{}' ({loaded}) at {url}", config.model)
    } else {
        redact_secrets(&reasons.join("; "), &config.ollama_url)
    };
    let flag = |get: fn(&ServerFacts) -> bool| facts.map(|f| get(f).to_string()).unwrap_or_default();
    let values = vec![
        ("ollama_url", url.clone()),
        ("server_version", probe.and_then(|p| p.outcome.as_ref().ok()).map(|f| f.version.clone()).unwrap_or_default()),
        ("model", config.model.clone()),
        ("model_loaded", flag(|f| f.model_loaded)),
        ("requests_in_flight", activity.in_flight.to_string()),
        ("requests_queued", activity.queued.to_string()),
        ("sessions", activity.sessions.to_string()),
        ("requests_total", requests_total.to_string()),
        ("errors_total", errors_total.to_string()),
        ("last_error", redact_secrets(&last_error, &config.ollama_url)),
        ("ttft_p50_s", ttft.map(|t| format!("{t:.3}")).unwrap_or_default()),
    ];
    Report { level, message, hardware_id: url, values }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
