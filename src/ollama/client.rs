//! [`Client`]: construction (URL, credentials, timeouts) and the chat, show and version calls.
//! Sending, the stale-connection re-send and error mapping are in `send`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::body::Limits;
use super::client_config::{self, Api, ClientConfig};
use super::credentials::{redact_url, split_userinfo, Credentials, Secrets};
use super::error::{error_chain, OllamaError, StallLimit};
use super::show::ShowResponse;
use super::stream::ChatStream;
use super::types::ChatRequest;

/// A typed Ollama client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    /// The connection pool; credentials live in its default headers, marked sensitive.
    pub(super) http: reqwest::Client,
    /// Same settings, no idle connections kept: the one re-send after a pooled connection
    /// turned out closed always gets a new connection.
    pub(super) fresh: reqwest::Client,
    /// Normalised base URL without user info or trailing slash: where requests go.
    pub(super) base: Arc<str>,
    /// The base URL as shown in texts (password replaced by `***`).
    pub(super) shown: Arc<str>,
    /// For [`OllamaError::ConnectTimeout`] texts and the header wait.
    pub(super) connect_timeout: Duration,
    /// Wait for the headers and first line of generating calls.
    pub(super) load_timeout: Duration,
    /// Silence limit mid-stream, and header wait of quick calls.
    pub(super) idle_timeout: Duration,
    /// Scrubbed from any server text echoed into an error.
    pub(super) secrets: Secrets,
    /// The wire API the server speaks.
    pub(super) api: Api,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.shown)
            .field("connect_timeout", &self.connect_timeout)
            .field("load_timeout", &self.load_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("secrets", &self.secrets)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client; fails on an unusable URL, a zero timeout or credentials that cannot be
    /// put in a header. No request is made. With user info in the URL, it is sent as HTTP Basic
    /// auth and `api_key` is not sent (the URL's credentials belong to that server; the key
    /// comes from the process environment).
    pub fn new(cfg: ClientConfig) -> Result<Client, OllamaError> {
        if cfg.base_url.trim().is_empty() {
            return Err(OllamaError::Config(
                "base_url is empty (use ClientConfig::from_env_host for OLLAMA_HOST rules)".into(),
            ));
        }
        if cfg.connect_timeout.is_zero() || cfg.load_timeout.is_zero() || cfg.idle_timeout.is_zero()
        {
            return Err(OllamaError::Config(
                "connect_timeout, load_timeout and idle_timeout must be > 0".into(),
            ));
        }
        let normalised = client_config::normalise(&cfg.base_url);
        let shown = redact_url(&normalised);
        let (userinfo, base) = split_userinfo(&normalised);
        let credentials = userinfo.and_then(Credentials::from_userinfo);
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            OllamaError::Config(format!("base_url {shown:?} is not a valid URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(OllamaError::Config(format!(
                "base_url {shown:?} must be http:// or https:// with a host"
            )));
        }
        let api_key = cfg
            .api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        let secrets = Secrets::new(api_key.as_deref(), credentials.as_ref());
        let mut headers = HeaderMap::new();
        match (&credentials, &api_key) {
            (Some(credentials), key) => {
                if key.is_some() {
                    log::warn!(
                        "{shown} has user info: it is sent as Basic auth and OLLAMA_API_KEY is not sent"
                    );
                }
                headers.insert(AUTHORIZATION, credentials.header()?);
            }
            (None, Some(key)) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    OllamaError::Config(
                        "api_key contains characters that cannot be sent in an HTTP header".into(),
                    )
                })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            (None, None) => {}
        }
        let loopback = parsed.host_str().is_some_and(client_config::is_loopback);
        let build = |pooled: bool| {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(cfg.connect_timeout)
                .default_headers(headers.clone())
                .user_agent(concat!("ollama_bridge/", env!("CARGO_PKG_VERSION")));
            if loopback {
                // A robot's HTTP(S)_PROXY must not capture the local Ollama (Go's client skips it too).
                builder = builder.no_proxy();
            }
            if !pooled {
                builder = builder.pool_max_idle_per_host(0);
            }
            builder.build().map_err(|e| {
                OllamaError::Config(format!("cannot build the HTTP client: {}", error_chain(&e)))
            })
        };
        Ok(Client {
            http: build(true)?,
            fresh: build(false)?,
            base: base.into(),
            shown: shown.into(),
            connect_timeout: cfg.connect_timeout,
            load_timeout: cfg.load_timeout,
            idle_timeout: cfg.idle_timeout,
            secrets,
            api: cfg.api,
        })
    }

    /// The normalised base URL as it may be shown: `http://127.0.0.1:11434`, or
    /// `http://user:***@host:11434` when the URL carries credentials.
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    /// The wire API this client speaks.
    pub fn api(&self) -> Api {
        self.api
    }

    /// `POST /api/chat` with `stream: true` (set here, whatever `req` says).
    ///
    /// Returns once the response headers arrived with a 2xx status; a non-2xx becomes
    /// [`OllamaError::Status`] carrying the `{"error": ...}` text (or the raw body, truncated).
    /// The headers and the first line must come within `connect_timeout + load_timeout`, later
    /// lines within `idle_timeout` of each other ([`OllamaError::Stalled`] says which).
    ///
    /// With [`Api::OpenAi`]: `POST /v1/chat/completions`, read into the same chunks (see
    /// `openai`).
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, OllamaError> {
        if self.api == Api::OpenAi {
            return self.openai_chat_stream(req).await;
        }
        let mut req = req.clone();
        req.stream = true;
        let (response, limits) = self.start_chat(&req, "application/x-ndjson").await?;
        Ok(ChatStream::new(
            response,
            limits,
            self.shown.to_string(),
            req.model,
            self.secrets.clone(),
        ))
    }

    /// Sends a chat request; returns the response and the limits its body is read under.
    pub(super) async fn start_chat(
        &self,
        req: &ChatRequest,
        accept: &'static str,
    ) -> Result<(reqwest::Response, Limits), OllamaError> {
        let url = self.endpoint("/api/chat");
        let body = serde_json::to_vec(req)
            .map_err(|e| OllamaError::Protocol(format!("cannot encode the chat request: {e}")))?;
        log::debug!(
            "POST {url}: model {} with {} message(s), {} bytes",
            req.model,
            req.messages.len(),
            body.len()
        );
        let request = |http: &reqwest::Client| {
            http.post(&url)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, accept)
                .body(body.clone())
        };
        let (response, first_line_by) = self.send(request, StallLimit::Load).await?;
        let limits = Limits {
            first_line_by,
            load: self.load_timeout,
            idle: self.idle_timeout,
            idle_limit: StallLimit::Idle,
        };
        Ok((response, limits))
    }

    /// `POST /api/show {"model": ..}`: capabilities, details and model info; a missing model is
    /// [`OllamaError::Status`] 404 (see [`OllamaError::is_model_not_found`]). With
    /// [`Api::OpenAi`]: the model's entry of `GET /v1/models` (see `openai`).
    pub async fn show(&self, model: &str) -> Result<ShowResponse, OllamaError> {
        if self.api == Api::OpenAi {
            return self.openai_show(model).await;
        }
        let url = self.endpoint("/api/show");
        log::debug!("POST {url}: model {model}");
        let body = serde_json::json!({ "model": model });
        self.get_json(|http| {
            http.post(&url)
                .header(ACCEPT, "application/json")
                .json(&body)
        })
        .await
    }

    /// `GET /api/version`: the server's version string, e.g. `0.12.3`. A cheap liveness check.
    /// With [`Api::OpenAi`] (no version call): `openai` once `GET /v1/models` answered.
    pub async fn version(&self) -> Result<String, OllamaError> {
        if self.api == Api::OpenAi {
            return self.openai_models().await.map(|_| "openai".to_owned());
        }
        #[derive(Deserialize)]
        struct Version {
            version: String,
        }
        let v: Version = self.get_endpoint_json("/api/version").await?;
        Ok(v.version)
    }

    /// Whether the server answers at all, the cheapest way: `GET /` (Ollama answers `Ollama is
    /// running`), or `GET /v1/models` with [`Api::OpenAi`]. Any 2xx is `Ok`.
    pub async fn ping(&self) -> Result<(), OllamaError> {
        let url = self.endpoint(if self.api == Api::OpenAi { "/v1/models" } else { "/" });
        let (response, _) = self.send(|http| http.get(&url), StallLimit::Idle).await?;
        drop(response);
        Ok(())
    }

    /// The URL of `path` on this server (no user info: credentials go in a header).
    pub(super) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
