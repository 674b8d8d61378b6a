//! Model management without ROS: what the `list_models` service and the `pull_model` action do.
//!
//! * [`list_models`]: the installed models (`/api/tags`) and the loaded ones (`/api/ps`), asked
//!   at once; any failure gives `success: false` and the reason, with what was learnt.
//! * [`pull`]: one `/api/pull`, each progress line handed to a callback; the outcome carries
//!   Ollama's own error text (e.g. `pull model manifest: file does not exist` for an unknown
//!   name). Dropping the future closes the connection, which makes Ollama stop the pull.

use crate::ollama::{Client, OllamaError, PullProgress};

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

/// Asks the server which models it has and which are loaded.
pub async fn list_models(client: Result<Client, OllamaError>) -> ModelList {
    let client = match client {
        Ok(client) => client,
        Err(e) => return ModelList { message: e.to_string(), ..ModelList::default() },
    };
    let (tags, loaded) = tokio::join!(client.tags(), client.ps());
    let models: Vec<String> = tags.as_ref().map(|t| t.clone()).unwrap_or_default();
    let running: Vec<String> = loaded.as_ref().map(|l| l.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    match tags.err().or(loaded.err()) {
        None => {
            let message = format!("{} model(s) on {}, {} loaded", models.len(), client.base_url(), running.len());
            ModelList { success: true, message, models, loaded: running }
        }
        Some(e) => {
            log::warn!("list_models: {e}");
            ModelList { success: false, message: e.to_string(), models, loaded: running }
        }
    }
}

/// How a pull ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PullOutcome {
    /// Ollama said `success`; a sentence for the result.
    Pulled(String),
    /// It failed: Ollama's error text (or why it could not be asked).
    Failed(String),
}

/// Pulls `model`, calling `on_progress` for every progress line (the last one is `success`).
pub async fn pull(
    client: Result<Client, OllamaError>, model: &str, mut on_progress: impl FnMut(&PullProgress),
) -> PullOutcome {
    let model = model.trim();
    if model.is_empty() {
        return PullOutcome::Failed("the model name is empty".into());
    }
    let failed = |e: OllamaError| {
        let why = match e {
            // Ollama's own words, as `ollama pull` prints them
            OllamaError::Server(text) | OllamaError::Status { message: text, .. } => text,
            other => other.to_string(),
        };
        log::warn!("pull of '{model}' failed: {why}");
        PullOutcome::Failed(why)
    };
    let mut stream = match client {
        Ok(client) => match client.pull(model).await {
            Ok(stream) => stream,
            Err(e) => return failed(e),
        },
        Err(e) => return failed(e),
    };
    log::info!("pulling '{model}'");
    while let Some(progress) = stream.next_progress().await {
        match progress {
            Ok(progress) => {
                on_progress(&progress);
                if progress.is_success() {
                    log::info!("pulled '{model}'");
                    return PullOutcome::Pulled(format!("pulled '{model}'"));
                }
            }
            Err(e) => return failed(e),
        }
    }
    // next_progress ends with `None` only after `success` or an error, both returned above
    failed(OllamaError::Truncated { chunks: 0, detail: "the pull ended without a \"success\" line".into() })
}
