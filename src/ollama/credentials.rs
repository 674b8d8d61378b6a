//! Credentials in the server URL (`http://user:password@host:port`, Basic auth at a proxy in
//! front of Ollama) and keeping every secret out of texts: [`redact_url`], [`Credentials`],
//! [`Secrets`].
//!
//! The user info is everything between `://` (or the start, for `OLLAMA_HOST` forms without a
//! scheme) and the LAST `@` of the URL, like Go's `url.Parse`. Taking the last `@` of the whole
//! text, not of the authority alone, means a password with an unescaped `/`, `?` or `#` still
//! counts as the password (an `@` in a path is not supported; Ollama URLs have none). User and
//! password are percent-decoded (RFC 3986 3.2.1: `%40` is `@`, `%3A` is `:`).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use percent_encoding::percent_decode_str;
use reqwest::header::HeaderValue;

use super::error::OllamaError;

/// What stands for a hidden password (or a user info with no `:`) in every text the node writes.
pub const REDACTED_PASSWORD: &str = "***";

/// `url` with its password replaced by `***` (`http://user:***@host:11434`); a user info with
/// no `:` (a token used as the user name) becomes `***` as a whole. Works on any text, parsable
/// or not, so no password is ever shown; a URL without `@` is returned unchanged. Use it
/// everywhere a server URL is written: logs, error texts, service answers, parameter values.
pub fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        (Some(userinfo), _) => {
            let start = scheme_end(url);
            format!(
                "{}{}@{}",
                &url[..start],
                shown_userinfo(userinfo),
                &url[start + userinfo.len() + 1..]
            )
        }
        (None, _) => url.to_owned(),
    }
}

/// A user info as it may be shown: `user:***`, or `***` for one with no `:`.
fn shown_userinfo(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED_PASSWORD}"),
        None => REDACTED_PASSWORD.to_owned(),
    }
}

/// Whether `url`'s user info is as [`redact_url`] shows it (`user:***@` or `***@`): written
/// back, it stands for the hidden password, not for the password `***`.
pub fn is_redacted(url: &str) -> bool {
    split_userinfo(url)
        .0
        .is_some_and(|userinfo| userinfo == shown_userinfo(userinfo))
}

/// `text` without the secrets of the server URLs `urls` (comma-separated, as the
/// `ollama_url` parameter): each `user:password@` as written in a URL becomes `user:***@` (the
/// form of [`redact_url`]), and the password anywhere else (decoded, as written, or inside a
/// Basic token) becomes `<redacted>`, as in the client's own error texts. For texts the node
/// writes that may quote a URL it did not redact itself (errors, `/diagnostics` values).
pub fn redact_secrets(text: &str, urls: &str) -> String {
    urls.split(',').fold(text.to_owned(), |text, url| {
        let Some(userinfo) = split_userinfo(url.trim()).0 else {
            return text;
        };
        let text = text.replace(
            &format!("{userinfo}@"),
            &format!("{}@", shown_userinfo(userinfo)),
        );
        match Credentials::from_userinfo(userinfo) {
            Some(credentials) => Secrets::new(None, Some(&credentials)).scrub(text),
            None => text,
        }
    })
}

/// Where the authority begins: after `://`, or at 0 for a bare `host:port` form.
fn scheme_end(url: &str) -> usize {
    url.find("://").map_or(0, |i| i + 3)
}

/// Splits `url` into its raw user info (as written, `None` if there is no `@`) and the URL
/// without it (`http://user:pw@host` → `("user:pw", "http://host")`). The last `@` ends the
/// user info, so a password written with raw `/`, `?`, `#` or `@` is never shown (a base URL
/// has no `@` in its path).
pub(crate) fn split_userinfo(url: &str) -> (Option<&str>, String) {
    let start = scheme_end(url);
    match url[start..].rfind('@') {
        Some(at) => {
            let rest = &url[start + at + 1..];
            (
                Some(&url[start..start + at]),
                format!("{}{rest}", &url[..start]),
            )
        }
        None => (None, url.to_owned()),
    }
}

/// User and password for HTTP Basic auth, decoded from a URL's user info.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The user name (percent-decoded).
    pub user: String,
    /// The password (percent-decoded); `None` for `http://user@host`.
    pub password: Option<String>,
    /// What [`redact_url`] hides, as written in the URL (maybe percent-encoded), to scrub that
    /// form too: the password, or the user name when there is no `:` (a token).
    raw_hidden: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// Decodes `user[:password]`; `None` when both are empty (`http://@host`, `http://:@host`).
    pub(crate) fn from_userinfo(userinfo: &str) -> Option<Credentials> {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (user, raw_password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if user.is_empty() && raw_password.map_or(true, str::is_empty) {
            return None;
        }
        Some(Credentials {
            user: decode(user),
            password: raw_password.map(decode),
            raw_hidden: raw_password.unwrap_or(user).to_owned(),
        })
    }

    /// `base64(user ":" password)`, the token of `Authorization: Basic` (RFC 7617).
    fn token(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password.as_deref().unwrap_or(""));
        base64::engine::general_purpose::STANDARD.encode(pair)
    }

    /// The `Authorization` header value, marked sensitive (never printed by the HTTP stack).
    pub(crate) fn header(&self) -> Result<HeaderValue, OllamaError> {
        let mut value = HeaderValue::from_str(&format!("Basic {}", self.token()))
            .map_err(|_| OllamaError::Config("the URL's user info cannot be sent".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Everything that reveals what [`redact_url`] hides (the password, or the user name when
    /// there is no password): decoded, as written, and the Basic token.
    fn secrets(&self) -> impl Iterator<Item = String> + '_ {
        let hidden = self.password.as_ref().unwrap_or(&self.user).clone();
        [hidden, self.raw_hidden.clone(), self.token()].into_iter()
    }
}

/// The texts that must never appear in an error, log line or `Debug` output: the API key and
/// whatever reveals the URL's password. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Arc<[String]>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets(<{} redacted>)", self.0.len())
    }
}

impl Secrets {
    /// The secrets of a client: its API key and its URL credentials.
    pub(crate) fn new(api_key: Option<&str>, credentials: Option<&Credentials>) -> Secrets {
        let mut all: Vec<String> = api_key.map(str::to_owned).into_iter().collect();
        all.extend(credentials.into_iter().flat_map(Credentials::secrets));
        all.retain(|s| !s.is_empty());
        // Longest first, so a secret containing another is removed whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Secrets(all.into())
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub(crate) fn scrub(&self, text: String) -> String {
        self.0
            .iter()
            .fold(text, |text, secret| scrub(text, secret))
    }

    /// `err` with every secret removed from its texts.
    pub(crate) fn redact(&self, err: OllamaError) -> OllamaError {
        self.0.iter().fold(err, |err, secret| err.redacted(secret))
    }
}

/// Secrets shorter than this are removed only where they stand as a word: replacing every
/// `a` of a one-letter password would garble the text (and hide "model ... not found").
const SHORT_SECRET: usize = 4;

/// `text` with every occurrence of `secret` replaced by `<redacted>` (a short secret: only
/// where no letter or digit touches it).
pub(crate) fn scrub(text: String, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text;
    }
    if secret.chars().count() >= SHORT_SECRET {
        return text.replace(secret, "<redacted>");
    }
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        if alnum(text[..at].chars().next_back()) || alnum(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str("<redacted>");
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_never_shows_a_password() {
        let cases = [
            (
                "http://user:password@host:11434",
                "http://user:***@host:11434",
            ),
            (
                "https://u:p@ollama.example:443/ollama",
                "https://u:***@ollama.example:443/ollama",
            ),
            ("user:password@robot-gpu", "user:***@robot-gpu"),
            ("http://token@host:80", "http://***@host:80"),
            ("http://user:p@ss/w?rd#x@host:1", "http://user:***@host:1"),
            ("http://user:p%40ss@host", "http://user:***@host"),
            ("http://user:@host", "http://user:***@host"),
            ("not a url :pw@", "not a url :***@"),
            ("http://host:11434", "http://host:11434"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        for url in [
            "http://user:s3cret@host",
            "ftp:/x:s3cret@@",
            "s3cret@",
            ":s3cret@h",
            "a:b:s3cret@h",
        ] {
            assert!(
                !redact_url(url).contains("s3cret"),
                "{url} -> {}",
                redact_url(url)
            );
        }
    }

    #[test]
    fn redact_secrets_shows_urls_as_redact_url_does_and_removes_the_password_elsewhere() {
        let urls = "http://gpu0:11434, http://bob:s3cret@gpu:11434,tok3n@gpu2";
        let cases = [
            (
                "cannot connect to the server at http://bob:s3cret@gpu:11434 (refused)",
                "cannot connect to the server at http://bob:***@gpu:11434 (refused)",
            ),
            ("proxy said: bad password s3cret", "proxy said: bad password <redacted>"),
            // Basic token of bob:s3cret, echoed by a proxy
            ("Authorization: Basic Ym9iOnMzY3JldA==", "Authorization: Basic <redacted>"),
            ("at http://tok3n@gpu2:11434", "at http://***@gpu2:11434"),
            ("token tok3n refused", "token <redacted> refused"),
            ("already shown: http://bob:***@gpu:11434", "already shown: http://bob:***@gpu:11434"),
            ("no secret here", "no secret here"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_secrets(text, urls), want, "{text}");
        }
        assert_eq!(redact_secrets("http://u:p%40ss@h", "http://u:p%40ss@h"), "http://u:***@h");
        assert_eq!(redact_secrets("said p@ss", "http://u:p%40ss@h"), "said <redacted>");
        assert_eq!(redact_secrets("any text", ""), "any text");
    }

    #[test]
    fn is_redacted_knows_the_shown_forms() {
        for url in ["http://u:***@h", "http://***@h", "u:***@h"] {
            assert!(is_redacted(url), "{url}");
        }
        for url in ["http://u:pw@h", "http://tok@h", "http://h", "http://u:***x@h", ""] {
            assert!(!is_redacted(url), "{url}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_basic_encoded() {
        let c = Credentials::from_userinfo("ro%62ot:p%40ss:w%3Ard").unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_deref()),
            ("robot", Some("p@ss:w:rd"))
        );
        // RFC 7617's example: "Aladdin:open sesame".
        let c = Credentials::from_userinfo("Aladdin:open%20sesame").unwrap();
        assert_eq!(c.header().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(c.header().unwrap().is_sensitive());
        assert_eq!(
            Credentials::from_userinfo("token").unwrap().token(),
            "dG9rZW46"
        );
        assert_eq!(Credentials::from_userinfo(""), None);
        assert_eq!(Credentials::from_userinfo(":"), None);
        assert!(!format!("{c:?}").contains("sesame"));
    }

    #[test]
    fn secrets_cover_every_form_of_the_password() {
        let c = Credentials::from_userinfo("bob:p%40ss").unwrap();
        let secrets = Secrets::new(Some("sk-key"), Some(&c));
        let echoed = "key sk-key, pw p@ss, raw p%40ss, header Basic Ym9iOnBAc3M=".to_owned();
        let clean = secrets.scrub(echoed);
        for leak in ["sk-key", "p@ss", "p%40ss", "Ym9iOnBAc3M="] {
            assert!(!clean.contains(leak), "{clean}");
        }
        assert!(!format!("{secrets:?}").contains("p@ss"));
        let err = secrets.redact(OllamaError::Server("bad p@ss".into()));
        assert_eq!(err, OllamaError::Server("bad <redacted>".into()));
    }

    #[test]
    fn a_short_secret_is_removed_where_it_stands_alone() {
        let text = "model 'llama' not found; auth o:o failed (o)".to_owned();
        assert_eq!(
            scrub(text, "o"),
            "model 'llama' not found; auth <redacted>:<redacted> failed (<redacted>)"
        );
        assert_eq!(scrub("pw=ab, abc".into(), "ab"), "pw=<redacted>, abc");
        assert_eq!(
            scrub("key sk-123 sk-1234".into(), "sk-123"),
            "key <redacted> <redacted>4"
        );
    }
}
