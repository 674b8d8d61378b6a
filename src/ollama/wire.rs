//! One line of an Ollama NDJSON stream as its Go client reads it ([`parse_wire_line`]): the
//! `error` field first, then the item (a chat chunk, a pull progress line).
//!
//! `api/client.go` `stream()`, for every line: `json.Unmarshal(line, &errorResponse)` (a struct
//! with only `Error string`); if that fails, the line is the error (`errors.New(string(bts))`);
//! if `Error` is not empty, it is the error; otherwise the line goes to the caller's decoder.

use serde::de::{Deserializer, MapAccess};
use serde_json::Value;

use super::error::OllamaError;
use super::go_json::{self, decode_struct, go_struct, GoDecode, GoStruct, Onto};
use super::go_text::go_text;
use super::stream::excerpt;

/// A line: the item, plus the `error` field, read in one pass.
#[derive(Default)]
struct WireLine<T> {
    item: T,
    error: String,
}

impl<T: GoStruct> GoStruct for WireLine<T> {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "error" => map.next_value_seed(Onto(&mut self.error)).map(|()| true),
            _ => self.item.field(key, map),
        }
    }
}

impl<T: GoStruct> GoDecode for WireLine<T> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        decode_struct(self, d)
    }
}

/// Go's `errorResponse` alone, for a line whose item did not decode.
#[derive(Default)]
struct ErrorProbe {
    /// The last string `error`.
    error: String,
    /// An `error` that was not a string or null (Go's decode of the line then fails).
    other: Option<Value>,
}

impl GoStruct for ErrorProbe {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        if key != "error" {
            return Ok(false);
        }
        match map.next_value::<Value>()? {
            Value::Null => {}
            Value::String(text) => self.error = text,
            other => self.other = Some(other),
        }
        Ok(true)
    }
}

go_struct!(ErrorProbe);

/// Parses one line into a `T` the way Ollama's client does (rules of `go_json`, text repaired
/// by `go_text`): a non-empty `error` is [`OllamaError::Server`], checked before the item so a
/// bad item field cannot hide it; an `error` that is not a string is a server error too (its
/// `message` if it is an OpenAI-style object, else the line). A line that is not JSON, not an
/// object, or has a field of the wrong type (`"done": "yes"`) is [`OllamaError::Protocol`]
/// naming `what`, as Go fails on it too.
pub(crate) fn parse_wire_line<T: GoStruct + Default>(
    line: &[u8],
    what: &str,
) -> Result<T, OllamaError> {
    let text = go_text(line);
    let item_error = match go_json::decode::<WireLine<T>>(&text) {
        Ok(WireLine { error, .. }) if !error.is_empty() => return Err(OllamaError::Server(error)),
        Ok(WireLine { item, .. }) => return Ok(item),
        Err(e) => e,
    };
    let bad = |why: String| OllamaError::Protocol(format!("{why}: {}", excerpt(&text, 120)));
    Err(match go_json::decode::<ErrorProbe>(&text) {
        Ok(ErrorProbe {
            other: Some(value), ..
        }) => {
            let message = value.get("message").and_then(Value::as_str);
            OllamaError::Server(message.map_or_else(|| excerpt(&text, 500), str::to_owned))
        }
        Ok(ErrorProbe { error, .. }) if !error.is_empty() => OllamaError::Server(error),
        Ok(_) => bad(format!("malformed {what} ({item_error})")),
        Err(_) if text.trim_start().starts_with('{') => {
            bad(format!("invalid JSON line ({item_error})"))
        }
        Err(_) => bad("line is not a JSON object".into()),
    })
}
