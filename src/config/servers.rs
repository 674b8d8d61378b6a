//! Where the model servers are: `ollama_url` as a list of servers ([`parse_servers`]), and the
//! API keys of the environment ([`ApiKeys`]).

use crate::ollama::Api;
use std::fmt;

/// The servers of an `ollama_url` value: one URL, or several separated by commas
/// (`http://gpu1:11434,http://gpu2:11434`), each trimmed, without a trailing `/`. `""` is
/// `default` (the `OLLAMA_HOST` rule). `Err` names the entry that is not an `http://` or
/// `https://` URL, or is listed twice. A comma inside a password must be written `%2C`.
pub fn parse_servers(raw: &str, default: impl FnOnce() -> String) -> Result<Vec<String>, String> {
    if raw.trim().is_empty() {
        return Ok(vec![default()]);
    }
    let mut servers: Vec<String> = Vec::new();
    for entry in raw.split(',') {
        let url = entry.trim().trim_end_matches('/');
        let shown = super::redact_url(url);
        if url.is_empty() {
            return Err(format!("'{}' has an empty entry: separate server URLs with single commas", super::redact_url(raw)));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("'{shown}' must start with http:// or https://"));
        }
        if servers.iter().any(|s| s == url) {
            return Err(format!("'{shown}' is listed twice"));
        }
        servers.push(url.to_string());
    }
    Ok(servers)
}

/// The API keys, read from the environment once at start: never from a parameter, which anyone
/// on the ROS graph can read. `Debug` shows whether a key is set, never the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    /// `OLLAMA_API_KEY`.
    pub ollama: Option<String>,
    /// `OPENAI_API_KEY`.
    pub openai: Option<String>,
}

impl ApiKeys {
    /// `OLLAMA_API_KEY` and `OPENAI_API_KEY` (blank values count as unset).
    pub fn from_env() -> ApiKeys {
        let read = |name: &str| std::env::var(name).ok().filter(|k| !k.trim().is_empty());
        ApiKeys { ollama: read("OLLAMA_API_KEY"), openai: read("OPENAI_API_KEY") }
    }

    /// The key sent (as `Authorization: Bearer`) to servers of `api`: `OLLAMA_API_KEY`; with
    /// `api: openai`, `OPENAI_API_KEY` when it is set, else `OLLAMA_API_KEY`.
    pub fn for_api(&self, api: Api) -> Option<String> {
        match api {
            Api::OpenAi => self.openai.clone().or_else(|| self.ollama.clone()),
            Api::Ollama => self.ollama.clone(),
        }
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |k: &Option<String>| if k.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ApiKeys").field("ollama", &set(&self.ollama)).field("openai", &set(&self.openai)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_several_servers() {
        let none = || "http://127.0.0.1:11434".to_string();
        assert_eq!(parse_servers("", none).unwrap(), ["http://127.0.0.1:11434"]);
        assert_eq!(parse_servers(" http://gpu:11434/ ", none).unwrap(), ["http://gpu:11434"]);
        assert_eq!(parse_servers("http://a:1, https://u:p@b:2/x/", none).unwrap(), ["http://a:1", "https://u:p@b:2/x"]);
        for (bad, why) in [("http://a:1,,http://b:2", "empty entry"), ("http://a:1,gpu2:11434", "'gpu2:11434' must start"),
                           ("http://a:1,http://a:1/", "listed twice"), ("http://a:1,", "empty entry")] {
            let err = parse_servers(bad, none).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = parse_servers("http://a:1,ftp://u:s3cret@b", none).unwrap_err();
        assert!(err.contains("u:***@b") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_list_is_shown_and_written_back_without_its_passwords() {
        use crate::config::params::Value;
        use crate::config::Params;
        let mut p = Params::with_defaults();
        let list = "http://a:1,http://robot:s3cret@b:2,http://tok3n@c:3";
        p.set("ollama_url", Value::Text(list.into())).unwrap();
        let shown = p.exposed("ollama_url").unwrap();
        assert_eq!(shown, Value::Text("http://a:1,http://robot:***@b:2,http://***@c:3".into()));
        p.set("ollama_url", shown).unwrap();
        assert_eq!(p.ollama_url, list, "the shown list written back keeps the passwords");
        let err = p.set("ollama_url", Value::Text("http://a:1,http://robot:***@evil:2".into())).unwrap_err();
        assert!(err.message.contains("hidden password"), "{err}");
    }

    #[test]
    fn keys_by_api_never_shown() {
        let keys = ApiKeys { ollama: Some("o-key".into()), openai: None };
        assert_eq!(keys.for_api(Api::OpenAi).as_deref(), Some("o-key"), "OLLAMA_API_KEY when no OPENAI_API_KEY");
        let keys = ApiKeys { ollama: Some("o-key".into()), openai: Some("sk-key".into()) };
        assert_eq!(keys.for_api(Api::OpenAi).as_deref(), Some("sk-key"));
        assert_eq!(keys.for_api(Api::Ollama).as_deref(), Some("o-key"));
        let shown = format!("{keys:?}");
        assert!(!shown.contains("key\"") && !shown.contains("sk-") && !shown.contains("o-key"), "{shown}");
    }
}
