//! Tests of [`OllamaError`]: classification (model not found, retryable) and the texts.

use super::*;

fn status(code: u16, message: &str) -> OllamaError {
    OllamaError::Status {
        code,
        message: message.to_owned(),
    }
}

#[test]
fn model_not_found_matches_both_server_wordings_only() {
    assert!(status(404, "model 'llama9' not found").is_model_not_found());
    assert!(
        status(404, r#"model "llama9" not found, try pulling it first"#).is_model_not_found()
    );
    assert!(!status(404, "404 page not found").is_model_not_found());
    assert!(!status(400, "model is required").is_model_not_found());
    assert!(!OllamaError::Server("model not found".into()).is_model_not_found());
}

#[test]
fn retryable_only_for_transient_faults_before_output() {
    let url = "http://127.0.0.1:11434".to_owned();
    let retry = [
        OllamaError::Connect {
            url: url.clone(),
            detail: "refused".into(),
        },
        OllamaError::ConnectTimeout {
            url: url.clone(),
            after: Duration::from_secs(1),
        },
        status(429, "too many requests"),
        status(
            503,
            "server busy, please try again.  maximum pending requests exceeded",
        ),
        OllamaError::Truncated {
            chunks: 0,
            detail: "connection closed".into(),
        },
    ];
    let no_retry = [
        status(400, "model is required"),
        status(404, "model 'x' not found"),
        status(500, "boom"),
        OllamaError::Truncated {
            chunks: 3,
            detail: "connection closed".into(),
        },
        OllamaError::Server("an error was encountered while running the model".into()),
        OllamaError::Stalled {
            url,
            after: Duration::from_secs(1),
            limit: StallLimit::Load,
            awaiting_headers: true,
        },
        OllamaError::Protocol("bad".into()),
        OllamaError::Http("x".into()),
        OllamaError::Config("x".into()),
    ];
    for e in &retry {
        assert!(e.is_retryable_before_output(), "{e:?}");
    }
    for e in &no_retry {
        assert!(!e.is_retryable_before_output(), "{e:?}");
    }
}

#[test]
fn no_text_calls_the_server_ollama() {
    // the same errors come from OpenAI-compatible engines: only Ollama-only hints name it
    let url = || "http://x:8000".to_owned();
    let after = Duration::from_secs(1);
    let mut all = vec![
        OllamaError::Config("bad".into()),
        OllamaError::Connect { url: url(), detail: "refused".into() },
        OllamaError::ConnectTimeout { url: url(), after },
        OllamaError::Server("boom".into()),
        OllamaError::Protocol("junk".into()),
        OllamaError::Truncated { chunks: 0, detail: "closed".into() },
        OllamaError::Http("reset".into()),
    ];
    for (limit, awaiting_headers) in [(StallLimit::Load, true), (StallLimit::Load, false), (StallLimit::Idle, false)] {
        all.push(OllamaError::Stalled { url: url(), after, limit, awaiting_headers });
    }
    for code in [400, 401, 403, 404, 429, 500, 503] {
        all.push(status(code, "x"));
    }
    all.push(status(404, "The model `m` does not exist."));
    for e in all {
        let text = e.to_string();
        assert!(!text.replace("(Ollama)", "").contains("Ollama"), "{text}");
    }
}

#[test]
fn texts_say_what_failed_and_what_to_do() {
    let e = OllamaError::Connect {
        url: "http://x:11434".into(),
        detail: "Connection refused (os error 111)".into(),
    };
    assert_eq!(
        e.to_string(),
        "cannot connect to the server at http://x:11434 (Connection refused (os error 111)): \
         is it running (`ollama serve`, or the OpenAI-compatible engine) and OLLAMA_HOST/ollama_url right?"
    );
    let e = status(404, "model 'llama9' not found");
    assert!(e
        .to_string()
        .starts_with("the server answered HTTP 404: model 'llama9' not found - pull"));
    let e = OllamaError::Truncated {
        chunks: 2,
        detail: "connection closed".into(),
    };
    assert!(e
        .to_string()
        .contains("stream ended before the final chunk"));
    let e = OllamaError::Stalled {
        url: "http://x:11434".into(),
        after: Duration::from_millis(200),
        limit: StallLimit::Idle,
        awaiting_headers: false,
    };
    assert!(e.to_string().contains("stopped sending for 200ms"), "{e}");
    assert!(e.to_string().contains("(the idle timeout)"), "{e}");
    assert_eq!(
        (e.kind(), e.stall_limit()),
        ("stalled", Some(StallLimit::Idle))
    );
    let e = OllamaError::Stalled {
        url: "http://x:11434".into(),
        after: Duration::from_secs(300),
        limit: StallLimit::Load,
        awaiting_headers: false,
    };
    assert!(
        e.to_string()
            .contains("sent no first line of the answer within 300s (the load timeout)"),
        "{e}"
    );
    assert_eq!(
        e.stall_limit().map(StallLimit::setting),
        Some("load_timeout")
    );
}
