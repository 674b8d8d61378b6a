//! Tests of the health assessment: every level and reason, the counters, name matching.

use super::*;
use crate::config::Params;
use crate::outputs::Counters;

fn config() -> Config {
    let mut params = Params::with_defaults();
    params.ollama_url = "http://gpu:11434".into();
    Config::from_params(&params).unwrap()
}

fn reachable(model_present: bool, model_loaded: bool) -> Probe {
    let models = ["qwen3:0.6b"].into_iter().chain(model_present.then_some("llama3.2:latest")).map(String::from).collect();
    let facts = ServerFacts { version: "0.12.3".into(), model_present, model_loaded, models, unreachable: Vec::new() };
    Probe { url: "http://gpu:11434".into(), model: "llama3.2".into(), outcome: Ok(facts) }
}

const IDLE: Activity = Activity { in_flight: 0, queued: 0, sessions: 0, slots: 4 };

fn response(ending: Ending, server: &str, ttft: f64) -> FinalResponse {
    FinalResponse {
        session_id: "s".into(), request_id: 1, prompt: "p".into(), text: String::new(), model: "m".into(), ending,
        counters: Counters::default(), time_to_first_chunk_s: ttft, total_time_s: 1.0, chunk_count: 0,
        server: server.into(), speech: String::new(),
    }
}

fn value<'a>(report: &'a Report, key: &str) -> &'a str {
    report.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).unwrap()
}

#[test]
fn ok_with_every_value_in_order() {
    let stats = Stats::default();
    for ttft in [0.3, 0.1, 0.2] {
        stats.record(&response(Ending::Done("stop".into()), "http://gpu:11434", ttft));
    }
    let activity = Activity { in_flight: 1, queued: 2, sessions: 3, slots: 4 };
    let report = assess(&config(), Some(&reachable(true, true)), activity, &stats, Instant::now());
    assert_eq!(report.level, Level::Ok, "{report:?}");
    assert_eq!(report.message, "ok: model 'llama3.2' (loaded) at http://gpu:11434");
    assert_eq!(report.hardware_id, "http://gpu:11434");
    let keys: Vec<_> = report.values.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["ollama_url", "server_version", "model", "model_loaded", "requests_in_flight", "requests_queued",
        "sessions", "requests_total", "errors_total", "last_error", "ttft_p50_s"]);
    let got: Vec<_> = ["server_version", "model_loaded", "requests_in_flight", "requests_queued", "sessions",
        "requests_total", "errors_total", "last_error", "ttft_p50_s"].iter().map(|k| value(&report, k)).collect();
    assert_eq!(got, ["0.12.3", "true", "1", "2", "3", "3", "0", "", "0.200"]);
}

#[test]
fn unreachable_is_error_and_unknown_facts_are_empty() {
    let mut probe = reachable(true, true);
    probe.outcome = Err("cannot connect to the server at http://gpu:11434 (Connection refused)".into());
    let report = assess(&config(), Some(&probe), IDLE, &Stats::default(), Instant::now());
    assert_eq!(report.level, Level::Error);
    assert!(report.message.contains("unreachable") && report.message.contains("Connection refused"), "{}", report.message);
    assert_eq!((value(&report, "server_version"), value(&report, "model_loaded")), ("", ""));
}

#[test]
fn warn_reasons_missing_model_busy_recent_server_errors_and_not_checked() {
    let now = Instant::now();
    let missing = assess(&config(), Some(&reachable(false, false)), IDLE, &Stats::default(), now);
    assert_eq!(missing.level, Level::Warn);
    assert!(missing.message.contains("model 'llama3.2' is not on the server"), "{}", missing.message);
    let busy = Activity { in_flight: 4, queued: 1, sessions: 5, slots: 4 };
    let report = assess(&config(), Some(&reachable(true, false)), busy, &Stats::default(), now);
    assert_eq!(report.level, Level::Warn);
    assert!(report.message.contains("all 4 request slots in use, 1 input(s) waiting"), "{}", report.message);
    let full_but_nothing_waits = Activity { queued: 0, ..busy };
    assert_eq!(assess(&config(), Some(&reachable(true, false)), full_but_nothing_waits, &Stats::default(), now).level, Level::Ok);
    let stats = Stats::default();
    stats.record(&response(Ending::Error("the server answered HTTP 500: boom".into()), "http://gpu:11434", 0.0));
    let report = assess(&config(), Some(&reachable(true, true)), IDLE, &stats, Instant::now());
    assert_eq!(report.level, Level::Warn);
    assert!(report.message.contains("1 request(s) failed in the last 60s: the server answered HTTP 500: boom"), "{}", report.message);
    let later = Instant::now() + RECENT_ERRORS_WINDOW + Duration::from_secs(1);
    let report = assess(&config(), Some(&reachable(true, true)), IDLE, &stats, later);
    assert_eq!(report.level, Level::Ok, "old errors do not warn");
    assert_eq!((value(&report, "errors_total"), value(&report, "last_error")), ("1", "the server answered HTTP 500: boom"));
    let not_yet = assess(&config(), None, IDLE, &Stats::default(), now);
    assert_eq!(not_yet.level, Level::Warn);
    assert!(not_yet.message.contains("not been checked yet"));
}

#[test]
fn refused_inputs_count_but_do_not_warn() {
    let stats = Stats::default();
    stats.record(&response(Ending::Error("session id contains control characters".into()), "", 0.0));
    stats.record(&response(Ending::Cancelled, "http://gpu:11434", 0.0));
    let report = assess(&config(), Some(&reachable(true, true)), IDLE, &stats, Instant::now());
    assert_eq!(report.level, Level::Ok, "{report:?}");
    assert_eq!((value(&report, "requests_total"), value(&report, "errors_total")), ("2", "1"));
    assert_eq!(value(&report, "ttft_p50_s"), "", "no answer, no latency");
}

#[test]
fn a_probe_of_another_url_or_model_is_not_this_ones() {
    let mut other_url = reachable(false, false);
    other_url.url = "http://old:11434".into();
    assert!(assess(&config(), Some(&other_url), IDLE, &Stats::default(), Instant::now()).message.contains("not been checked"));
    let mut other_model = reachable(false, false);
    other_model.model = "qwen3".into();
    let report = assess(&config(), Some(&other_model), IDLE, &Stats::default(), Instant::now());
    assert_eq!(report.level, Level::Ok, "the missing model was another one: {report:?}");
    assert_eq!(value(&report, "model_loaded"), "");
}

#[test]
fn latency_median_keeps_the_latest_samples() {
    let stats = Stats::default();
    for _ in 0..TTFT_SAMPLES {
        stats.record(&response(Ending::Done("stop".into()), "u", 5.0));
    }
    for _ in 0..TTFT_SAMPLES / 2 + 1 {
        stats.record(&response(Ending::Done("stop".into()), "u", 0.5));
    }
    assert_eq!(stats.snapshot(Instant::now()).4, Some(0.5));
}

#[test]
fn model_names() {
    assert!(same_model("llama3.2", "llama3.2:latest") && same_model("Llama3.2:Latest", "llama3.2"));
    assert!(same_model("me/model", "me/model:latest") && same_model("host:5000/me/m", "host:5000/me/m:latest"));
    assert!(!same_model("llama3.2", "llama3.2:1b") && !same_model("llama3", "llama3.2"));
}

#[test]
fn a_password_in_the_url_never_reaches_the_report() {
    let mut params = Params::with_defaults();
    params.ollama_url = "http://bob:s3cret@gpu:11434".into();
    let config = Config::from_params(&params).unwrap();
    let stats = Stats::default();
    stats.record(&response(Ending::Error("failed at http://bob:s3cret@gpu:11434".into()), "u", 0.0));
    let probe = Probe { url: config.ollama_url.clone(), model: "llama3.2".into(),
        outcome: Err("cannot connect to the server at http://bob:s3cret@gpu:11434".into()) };
    let report = assess(&config, Some(&probe), IDLE, &stats, Instant::now());
    assert_eq!(report.level, Level::Error);
    let everything = format!("{report:?}");
    assert!(!everything.contains("s3cret"), "{everything}");
    assert_eq!(report.hardware_id, "http://bob:***@gpu:11434");
    // a quoted URL is shown as everywhere else (`user:***@host`)
    assert!(report.message.contains("cannot connect to the server at http://bob:***@gpu:11434"), "{}", report.message);
    assert_eq!(value(&report, "last_error"), "failed at http://bob:***@gpu:11434");
    let said = news(None, &probe);
    assert!(said[0].1.contains("at http://bob:***@gpu:11434") && !said[0].1.contains("s3cret"), "{said:?}");
}

#[test]
fn news_says_each_change_once_with_the_models_the_server_has() {
    let said = |previous: Option<&Probe>, now: &Probe| -> Vec<(log::Level, String)> { news(previous, now) };
    let (present, missing) = (reachable(true, false), reachable(false, false));
    let mut down = reachable(true, false);
    down.outcome = Err("cannot connect to the server at http://gpu:11434 (Connection refused)".into());
    // at start: a missing model is named with the server's models; a present one says nothing
    let start = said(None, &missing);
    assert_eq!(start.len(), 1, "{start:?}");
    assert_eq!(start[0].0, log::Level::Warn);
    assert!(start[0].1.contains("model 'llama3.2' is not on the server at http://gpu:11434 (it has: qwen3:0.6b)"),
        "{}", start[0].1);
    assert!(said(None, &present).is_empty());
    // once per change, not per probe
    assert!(said(Some(&missing), &missing).is_empty() && said(Some(&present), &present).is_empty());
    let back = said(Some(&missing), &present);
    assert_eq!(back, [(log::Level::Info, "health: model 'llama3.2' is on the server now (http://gpu:11434)".to_string())]);
    assert_eq!(said(Some(&present), &missing)[0].0, log::Level::Warn, "a model deleted from the server");
    // unreachable, then up without the model: both said; up with it: only that it answers
    let unreachable = said(None, &down);
    assert!(unreachable.len() == 1 && unreachable[0].1.contains("unreachable") && unreachable[0].1.contains("keeps running"));
    assert!(said(Some(&down), &down).is_empty());
    let up = said(Some(&down), &missing);
    assert_eq!(up.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [log::Level::Info, log::Level::Warn], "{up:?}");
    assert_eq!(said(Some(&down), &present).len(), 1);
    // another model or server is news again; a server without models says so
    let mut other = missing.clone();
    other.model = "qwen3".into();
    assert_eq!(said(Some(&missing), &other).len(), 1);
    let mut empty = missing.clone();
    if let Ok(facts) = &mut empty.outcome {
        facts.models.clear();
    }
    assert!(said(None, &empty)[0].1.contains("(it has no models)"));
}

#[test]
fn news_lists_at_most_twenty_models_and_never_a_password() {
    let mut probe = reachable(false, false);
    probe.url = "http://bob:s3cret@gpu:11434".into();
    if let Ok(facts) = &mut probe.outcome {
        facts.models = (0..25).map(|i| format!("m{i}:latest")).collect();
    }
    let line = &news(None, &probe)[0].1;
    assert!(line.contains("m19:latest and 5 more") && !line.contains("m20:"), "{line}");
    assert!(line.contains("http://bob:***@gpu:11434") && !line.contains("s3cret"), "{line}");
    let mut down = probe.clone();
    down.outcome = Err("cannot connect to the server at http://bob:s3cret@gpu:11434".into());
    assert!(!news(None, &down)[0].1.contains("s3cret"));
}

#[test]
fn several_servers_warn_while_some_do_not_answer_and_show_the_list() {
    let mut params = Params::with_defaults();
    params.ollama_url = "http://gpu:11434,http://bob:s3cret@gpu2:11434".into();
    let config = Config::from_params(&params).unwrap();
    let mut probe = reachable(true, false);
    probe.url = config.ollama_url.clone();
    if let Ok(facts) = probe.outcome.as_mut() {
        facts.unreachable = vec!["cannot connect to the server at http://bob:s3cret@gpu2:11434 (Connection refused)".into()];
    }
    let report = assess(&config, Some(&probe), IDLE, &Stats::default(), Instant::now());
    assert_eq!(report.level, Level::Warn, "{report:?}");
    assert!(report.message.starts_with("1 of 2 servers unreachable: cannot connect"), "{}", report.message);
    assert!(!report.message.contains("s3cret"), "{}", report.message);
    assert_eq!(report.hardware_id, "http://gpu:11434,http://bob:***@gpu2:11434");
    assert_eq!(value(&report, "ollama_url"), report.hardware_id);
}
