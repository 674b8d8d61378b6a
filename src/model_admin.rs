//! Model management without ROS: what the `list_models` service and the `pull_model` action do.
//!
//! * [`list_models`]: the installed models (`/api/tags`) and the loaded ones (`/api/ps`) of
//!   every server, asked at once; any failure gives `success: false` and the reason, with what
//!   was learnt.
//! * [`pull`]: one `/api/pull` per server, each progress line handed to a callback; the outcome
//!   carries Ollama's own error text (e.g. `pull model manifest: file does not exist` for an
//!   unknown name). Dropping the future closes the connection, which makes Ollama stop the pull.
//!   With `api: openai` it fails: the OpenAI API has no pull.

use crate::fleet::Fleet;
use crate::ollama::{Client, OllamaError, PullProgress};
use std::sync::Arc;

/// The answer of `list_models`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelList {
    pub success: bool,
    /// What went wrong, or a one-line summary.
    pub message: String,
    /// Names from `/api/tags`, e.g. `llama3.2:latest`.
    pub models: Vec<String>,
    /// Names from `/api/ps`.
    pub loaded: Vec<String>,
}

/// Asks every server which models it has and which are loaded: the names of all (each once).
/// With several servers, one that does not answer is named in the message and the others'
/// lists are still given; `success` is false when any failed.
pub async fn list_models(fleet: Result<Arc<Fleet>, OllamaError>) -> ModelList {
    let fleet = match fleet {
        Ok(fleet) => fleet,
        Err(e) => return ModelList { message: e.to_string(), ..ModelList::default() },
    };
    let asked = futures::future::join_all(fleet.servers().iter().map(|server| async move {
        let (tags, loaded) = tokio::join!(server.client.tags(), server.client.ps());
        (server.shown(), tags, loaded)
    }))
    .await;
    let (mut models, mut running, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (url, tags, loaded) in asked {
        let names = tags.clone().unwrap_or_default();
        let loaded_names = loaded.as_ref().map(|l| l.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
        for (all, new) in [(&mut models, names), (&mut running, loaded_names)] {
            for name in new {
                if !all.contains(&name) {
                    all.push(name);
                }
            }
        }
        if let Some(e) = tags.err().or(loaded.err()) {
            log::warn!("list_models: {e}");
            failed.push((url, e));
        }
    }
    let urls: Vec<&str> = fleet.servers().iter().map(|s| s.shown()).collect();
    let message = match failed.as_slice() {
        [] => format!("{} model(s) on {}, {} loaded", models.len(), urls.join(", "), running.len()),
        [(_, e)] if urls.len() == 1 => e.to_string(),
        _ => {
            let why: Vec<String> = failed.iter().map(|(url, e)| format!("{url}: {e}")).collect();
            format!("{} model(s), {} loaded; not answered by {}", models.len(), running.len(), why.join("; "))
        }
    };
    ModelList { success: failed.is_empty(), message, models, loaded: running }
}

/// How a pull ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PullOutcome {
    /// Ollama said `success`; a sentence for the result.
    Pulled(String),
    /// It failed: Ollama's error text (or why it could not be asked).
    Failed(String),
}

/// Pulls `model` onto every server, one after the other, calling `on_progress` for every
/// progress line (the last one of each is `success`). With several servers the outcome names
/// those where it failed.
pub async fn pull(
    fleet: Result<Arc<Fleet>, OllamaError>, model: &str, mut on_progress: impl FnMut(&PullProgress),
) -> PullOutcome {
    let model = model.trim();
    if model.is_empty() {
        return PullOutcome::Failed("the model name is empty".into());
    }
    let fleet = match fleet {
        Ok(fleet) => fleet,
        Err(e) => return PullOutcome::Failed(e.to_string()),
    };
    let (mut pulled, mut failed) = (Vec::new(), Vec::new());
    for server in fleet.servers() {
        match pull_one(&server.client, model, &mut on_progress).await {
            Ok(()) => pulled.push(server.shown()),
            Err(why) => failed.push((server.shown(), why)),
        }
    }
    match (failed.as_slice(), fleet.servers().len()) {
        ([], 1) => PullOutcome::Pulled(format!("pulled '{model}'")),
        ([], n) => PullOutcome::Pulled(format!("pulled '{model}' on all {n} servers")),
        ([(_, why)], 1) => PullOutcome::Failed(why.clone()),
        (failed, _) => {
            let why: Vec<String> = failed.iter().map(|(url, why)| format!("{url}: {why}")).collect();
            let done = if pulled.is_empty() { String::new() } else { format!(" (pulled on {})", pulled.join(", ")) };
            PullOutcome::Failed(format!("{}{done}", why.join("; ")))
        }
    }
}

/// One server's pull; `Err` is Ollama's own words (as `ollama pull` prints them).
async fn pull_one(client: &Client, model: &str, on_progress: &mut impl FnMut(&PullProgress)) -> Result<(), String> {
    let failed = |e: OllamaError| {
        let why = match e {
            OllamaError::Server(text) | OllamaError::Status { message: text, .. } => text,
            other => other.to_string(),
        };
        log::warn!("pull of '{model}' on {} failed: {why}", client.base_url());
        why
    };
    let mut stream = client.pull(model).await.map_err(failed)?;
    log::info!("pulling '{model}' on {}", client.base_url());
    while let Some(progress) = stream.next_progress().await {
        let progress = progress.map_err(failed)?;
        on_progress(&progress);
        if progress.is_success() {
            log::info!("pulled '{model}' on {}", client.base_url());
            return Ok(());
        }
    }
    // next_progress ends with `None` only after `success` or an error, both returned above
    Err(failed(OllamaError::Truncated { chunks: 0, detail: "the pull ended without a \"success\" line".into() }))
}
