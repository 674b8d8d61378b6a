//! [`ClientConfig`]: where Ollama is and how long to wait for it, and `OLLAMA_HOST`
//! normalisation following Ollama's `envconfig.Host()` rules:
//!
//! No scheme → `http` with port 11434; `http://` without a port → 80 and `https://` → 443 (as
//! in Ollama: a scheme makes it a URL); invalid port → the default; quotes and spaces trimmed;
//! bare `ollama.com` → `https://ollama.com:443`. Like Ollama's `ConnectableHost()`, a bind-all
//! address (`0.0.0.0`, `::`), often left in `OLLAMA_HOST` from the server's setup, becomes loopback.
//! User info (`user:password@`, Basic auth at a proxy) is kept as written; Ollama's own
//! `envconfig.Host()` mangles it (its `net.SplitHostPort` sees "too many colons").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::credentials::{redact_url, split_userinfo};

/// Default Ollama port when no scheme is given.
pub const DEFAULT_PORT: &str = "11434";

/// Ollama's own bound on a model load that makes no progress (`OLLAMA_LOAD_TIMEOUT`,
/// default `5m`, `envconfig/config.go`): the default [`ClientConfig::load_timeout`].
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Which wire API a server speaks (parameter `api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Api {
    /// Ollama's own: `POST /api/chat` (NDJSON), `/api/show`, `/api/tags`, `/api/ps`, `/api/pull`.
    #[default]
    Ollama,
    /// The OpenAI-compatible API of vLLM, SGLang, TGI, llama.cpp's server, LiteLLM and Ollama's
    /// own `/v1`: `POST /v1/chat/completions` (server-sent events) and `GET /v1/models`.
    OpenAi,
}

impl Api {
    /// The parameter value: `ollama` or `openai`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Ollama => "ollama",
            Api::OpenAi => "openai",
        }
    }

    /// `ollama` or `openai` (as the parameter is written); `None` for anything else.
    pub fn parse(text: &str) -> Option<Api> {
        match text.trim() {
            "ollama" => Some(Api::Ollama),
            "openai" => Some(Api::OpenAi),
            _ => None,
        }
    }
}

/// How to reach Ollama. `Debug` never shows the API key or the URL's password.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:11434`; `OLLAMA_HOST` forms are accepted and normalised.
    /// `http://user:password@host:port` sends the (percent-decoded) user info as HTTP Basic
    /// auth and never shows the password (see [`redact_url`](super::redact_url)).
    pub base_url: String,
    /// Longest wait for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait, after connecting, for the response headers AND the first streamed line:
    /// model load, queueing behind other requests and prompt evaluation all happen before
    /// Ollama sends anything (it sends headers with the first token). A chat, `load` and `pull`
    /// use it; quick calls (`show`, `version`, `tags`, `ps`) use `idle_timeout` instead.
    pub load_timeout: Duration,
    /// Longest silence between two reads once the first line of an answer arrived (a model
    /// that stalls mid-answer), and the header wait of the quick calls.
    pub idle_timeout: Duration,
    /// Sent as `Authorization: Bearer <key>` when set (remote or proxied Ollama), unless the URL
    /// has user info: that belongs to this server and wins (Basic auth; the key is not sent).
    pub api_key: Option<String>,
    /// The wire API the server speaks.
    pub api: Api,
}

impl Default for ClientConfig {
    /// Local Ollama, 5 s to connect, 300 s to start answering, 60 s of silence mid-answer.
    fn default() -> Self {
        ClientConfig {
            base_url: normalise(""),
            connect_timeout: Duration::from_secs(5),
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            idle_timeout: Duration::from_secs(60),
            api_key: None,
            api: Api::Ollama,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("connect_timeout", &self.connect_timeout)
            .field("load_timeout", &self.load_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api", &self.api)
            .finish()
    }
}

impl ClientConfig {
    /// Normalises an `OLLAMA_HOST` value into a base URL like Ollama's `envconfig.Host()`:
    /// `""` → `http://127.0.0.1:11434`, `robot-gpu` → `http://robot-gpu:11434`,
    /// `https://x` → `https://x:443`, `0.0.0.0:11434` → `http://127.0.0.1:11434`,
    /// `user:pw@robot-gpu` → `http://user:pw@robot-gpu:11434` (the result holds the password:
    /// show it only through [`redact_url`](super::redact_url)).
    pub fn from_env_host(host: &str) -> String {
        normalise(host)
    }

    /// The default config with `base_url` taken from the `OLLAMA_HOST` environment variable.
    pub fn from_env() -> ClientConfig {
        let host = std::env::var("OLLAMA_HOST").unwrap_or_default();
        ClientConfig {
            base_url: Self::from_env_host(&host),
            ..ClientConfig::default()
        }
    }
}

/// Normalises an `OLLAMA_HOST`-style value into a base URL without a trailing slash; user
/// info is set aside, the rest normalised, and the user info put back as written.
pub(crate) fn normalise(raw: &str) -> String {
    let s = raw.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    match split_userinfo(s) {
        (Some(userinfo), rest) => {
            let url = normalise_host(&rest);
            let start = url.find("://").map_or(0, |i| i + 3);
            format!("{}{userinfo}@{}", &url[..start], &url[start..])
        }
        (None, _) => normalise_host(s),
    }
}

/// [`normalise`] for a value without user info.
fn normalise_host(s: &str) -> String {
    let (scheme, rest, default_port) = match s.split_once("://") {
        None if s == "ollama.com" => ("https", "ollama.com:443", "443"),
        None => ("http", s, DEFAULT_PORT),
        Some(("http", rest)) => ("http", rest, "80"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((other, rest)) => (other, rest, DEFAULT_PORT),
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((hostport, path)) => (hostport, path.trim_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match split_host_port(hostport) {
        Some((host, port)) => (host.to_owned(), port),
        None => {
            let bare = hostport.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(ip) => (ip.to_string(), default_port),
                Err(_) => (hostport.to_owned(), default_port),
            }
        }
    };
    let port = match port.parse::<u16>() {
        Ok(_) => port,
        Err(_) => default_port,
    };
    let host = connectable(host);
    let mut url = if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    if !path.is_empty() {
        url.push('/');
        url.push_str(path);
    }
    url
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` when there is no port part.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = hostport.rsplit_once(':')?;
    if host.contains(':') {
        return None; // a bare IPv6 address: "too many colons"
    }
    Some((host, port))
}

/// Empty and unspecified (bind-all) hosts become the matching loopback address.
fn connectable(host: String) -> String {
    match host.parse::<IpAddr>() {
        _ if host.is_empty() => Ipv4Addr::LOCALHOST.to_string(),
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
        _ => host,
    }
}

/// True if `host` (as in a URL, IPv6 without brackets) is this machine, so no proxy applies
/// (Go's `ProxyFromEnvironment` skips localhost and loopback addresses the same way).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_ollama_envconfig_rules() {
        let cases = [
            ("", "http://127.0.0.1:11434"),
            ("127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("  \"127.0.0.1:11434\" ", "http://127.0.0.1:11434"),
            ("http://robot-gpu:11434", "http://robot-gpu:11434"),
            ("http://robot-gpu:11434/", "http://robot-gpu:11434"),
            ("robot-gpu", "http://robot-gpu:11434"),
            ("robot-gpu:8080", "http://robot-gpu:8080"),
            ("'robot-gpu:8080'", "http://robot-gpu:8080"),
            ("http://robot-gpu", "http://robot-gpu:80"),
            ("https://x", "https://x:443"),
            ("https://x/", "https://x:443"),
            ("https://x:8443/ollama/", "https://x:8443/ollama"),
            ("robot-gpu:99999", "http://robot-gpu:11434"),
            ("robot-gpu:", "http://robot-gpu:11434"),
            (":8080", "http://127.0.0.1:8080"),
            ("0.0.0.0", "http://127.0.0.1:11434"),
            ("0.0.0.0:8080", "http://127.0.0.1:8080"),
            ("[::1]:11434", "http://[::1]:11434"),
            ("::1", "http://[::1]:11434"),
            ("[::]", "http://[::1]:11434"),
            ("[fe80::1]", "http://[fe80::1]:11434"),
            ("ollama.com", "https://ollama.com:443"),
            // User info (Basic auth at a proxy) survives, as written.
            ("user:pw@robot-gpu", "http://user:pw@robot-gpu:11434"),
            (
                "http://user:p%40ss@robot-gpu",
                "http://user:p%40ss@robot-gpu:80",
            ),
            (
                "https://u:p/w#x@host:8443/ollama/",
                "https://u:p/w#x@host:8443/ollama",
            ),
            ("u:p@0.0.0.0:8080", "http://u:p@127.0.0.1:8080"),
            ("\"user:pw@[::1]\"", "http://user:pw@[::1]:11434"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input), want, "OLLAMA_HOST={input:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_password_or_the_key() {
        let cfg = ClientConfig {
            base_url: "http://robot:s3cret@gpu:11434".into(),
            api_key: Some("sk-key".into()),
            ..ClientConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(
            shown.contains("robot:***@gpu")
                && !shown.contains("s3cret")
                && !shown.contains("sk-key"),
            "{shown}"
        );
        assert_eq!(
            (cfg.load_timeout, cfg.idle_timeout),
            (DEFAULT_LOAD_TIMEOUT, Duration::from_secs(60))
        );
    }

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["robot-gpu", "10.0.0.1", "[fe80::1]", ""] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
