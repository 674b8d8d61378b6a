//! The polymorphic request fields: [`Format`], [`KeepAlive`], [`Think`].
//!
//! Each has hand-written serde (the wire accepts more than one JSON type) and a `parse_param`
//! that turns a user-facing parameter string into the value, `""` meaning "leave it out".

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A parameter string that could not be understood; the text says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name (`format`, `keep_alive`, `think`).
    pub param: &'static str,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

fn param_error(param: &'static str, message: String) -> ParamError {
    ParamError { param, message }
}

/// `format`: constrain the answer to JSON, or to a JSON schema (structured output).
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// `"json"`: any JSON value.
    Json,
    /// A JSON-schema object the answer must match.
    Schema(Map<String, Value>),
}

impl Format {
    /// `""` → `None` (free text), `"json"` → [`Format::Json`], a JSON object → [`Format::Schema`].
    pub fn parse_param(s: &str) -> Result<Option<Format>, ParamError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s == "json" {
            return Ok(Some(Format::Json));
        }
        match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(schema)) => Ok(Some(Format::Schema(schema))),
            _ => Err(param_error(
                "format",
                format!("{s:?}: expected \"\" (free text), \"json\" or a JSON schema object"),
            )),
        }
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Format::Json => serializer.serialize_str("json"),
            Format::Schema(schema) => schema.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if s == "json" => Ok(Format::Json),
            Value::Object(schema) => Ok(Format::Schema(schema)),
            other => Err(de::Error::custom(format!(
                "format must be \"json\" or a schema object, got {other}"
            ))),
        }
    }
}

/// `keep_alive`: how long Ollama keeps the model loaded after the request.
///
/// Sent as a number of seconds (`-1` for [`KeepAlive::Forever`]), which every server version
/// accepts; read from a number or a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Never unload (any negative value on the wire).
    Forever,
    /// Unload after this long; zero unloads as soon as the request is done.
    For(Duration),
}

impl KeepAlive {
    /// Parses a parameter: `""` → `None` (server default, 5m); seconds (`"300"`, `"-1"`, `"0"`);
    /// or a Go duration (`"5m"`, `"1h30m"`, `"90s"`, `"-1m"`). Negative means [`KeepAlive::Forever`].
    pub fn parse_param(s: &str) -> Result<Option<KeepAlive>, ParamError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if let Ok(secs) = s.parse::<f64>() {
            if secs.is_finite() {
                return Ok(Some(Self::from_secs_f64(secs)));
            }
        }
        match parse_go_duration(s) {
            Some((true, _)) => Ok(Some(KeepAlive::Forever)),
            Some((false, d)) => Ok(Some(KeepAlive::For(d))),
            None => Err(param_error(
                "keep_alive",
                format!(
                    "{s:?}: expected seconds (300; -1 keeps the model loaded; 0 unloads at once) \
                     or a duration like \"5m\", \"1h30m\""
                ),
            )),
        }
    }

    fn from_secs_f64(secs: f64) -> KeepAlive {
        if secs < 0.0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }
}

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepAlive::Forever => serializer.serialize_i64(-1),
            KeepAlive::For(d) if d.subsec_nanos() == 0 => serializer.serialize_u64(d.as_secs()),
            KeepAlive::For(d) => serializer.serialize_f64(d.as_secs_f64()),
        }
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) => match n.as_f64() {
                Some(secs) => Ok(KeepAlive::from_secs_f64(secs)),
                None => Err(de::Error::custom("keep_alive is not a usable number")),
            },
            // The server accepts only Go durations in strings ("5m"; a bare "300" is rejected).
            Value::String(s) => match parse_go_duration(&s) {
                Some((true, _)) => Ok(KeepAlive::Forever),
                Some((false, d)) => Ok(KeepAlive::For(d)),
                None => Err(de::Error::custom(format!("keep_alive {s:?} is not a Go duration"))),
            },
            other => Err(de::Error::custom(format!(
                "keep_alive must be seconds or a duration string, got {other}"
            ))),
        }
    }
}

/// Parses Go's `time.ParseDuration` syntax: `[-+]` then one or more `<decimal><unit>` with units
/// `ns us µs μs ms s m h`; `"0"` alone needs no unit. Returns (negative, magnitude).
pub(crate) fn parse_go_duration(s: &str) -> Option<(bool, Duration)> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some((false, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    // Go rejects durations past ~292 years; saturate instead (only "forever-ish" values get here).
    let d = Duration::try_from_secs_f64(total / 1e9).unwrap_or(Duration::MAX);
    Some((negative && !d.is_zero(), d))
}

/// `think`: whether (and how hard) a thinking model reasons before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Think {
    /// `true` / `false`. A speech bridge usually wants `false`, so no thinking tokens are spent.
    Bool(bool),
    /// `"low"`, `"medium"`, `"high"` (some models, e.g. gpt-oss, take a level, not a bool).
    Level(ThinkLevel),
}

/// A thinking effort level for [`Think::Level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkLevel {
    /// `"low"`
    Low,
    /// `"medium"`
    Medium,
    /// `"high"`
    High,
    /// `"max"` (newer servers only; older ones answer 400).
    Max,
}

impl ThinkLevel {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
            ThinkLevel::Max => "max",
        }
    }

    fn from_wire(s: &str) -> Option<ThinkLevel> {
        Some(match s {
            "low" => ThinkLevel::Low,
            "medium" => ThinkLevel::Medium,
            "high" => ThinkLevel::High,
            "max" => ThinkLevel::Max,
            _ => return None,
        })
    }
}

impl Think {
    /// `""` → `None` (server default), `"true"`/`"false"`, or `"low"|"medium"|"high"|"max"`.
    pub fn parse_param(s: &str) -> Result<Option<Think>, ParamError> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "" => Ok(None),
            "true" => Ok(Some(Think::Bool(true))),
            "false" => Ok(Some(Think::Bool(false))),
            level => ThinkLevel::from_wire(level).map(|l| Some(Think::Level(l))).ok_or_else(|| {
                param_error(
                    "think",
                    format!("{s:?}: expected \"\", true, false, \"low\", \"medium\" or \"high\""),
                )
            }),
        }
    }
}

impl Serialize for Think {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::Bool(b) => serializer.serialize_bool(*b),
            Think::Level(level) => serializer.serialize_str(level.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(b) => Ok(Think::Bool(b)),
            Value::String(s) => ThinkLevel::from_wire(&s)
                .map(Think::Level)
                .ok_or_else(|| de::Error::custom(format!("think level {s:?} is not low|medium|high"))),
            other => Err(de::Error::custom(format!("think must be a bool or a level, got {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T>(value: &T, wire: Value)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        assert_eq!(serde_json::to_value(value).unwrap(), wire);
        assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), value);
    }

    #[test]
    fn format_round_trips_and_parses() {
        round_trip(&Format::Json, json!("json"));
        let schema = json!({"type": "object", "properties": {"age": {"type": "integer"}}});
        let Value::Object(map) = schema.clone() else { unreachable!() };
        round_trip(&Format::Schema(map.clone()), schema.clone());
        assert_eq!(Format::parse_param(" "), Ok(None));
        assert_eq!(Format::parse_param("json"), Ok(Some(Format::Json)));
        assert_eq!(Format::parse_param(&schema.to_string()), Ok(Some(Format::Schema(map))));
        for bad in ["xml", "[1]", "\"json\"", "{not json"] {
            assert_eq!(Format::parse_param(bad).unwrap_err().param, "format", "{bad}");
        }
        assert!(serde_json::from_value::<Format>(json!("yaml")).is_err());
    }

    #[test]
    fn keep_alive_round_trips_as_seconds() {
        round_trip(&KeepAlive::Forever, json!(-1));
        round_trip(&KeepAlive::For(Duration::ZERO), json!(0));
        round_trip(&KeepAlive::For(Duration::from_secs(300)), json!(300));
        round_trip(&KeepAlive::For(Duration::from_millis(1500)), json!(1.5));
        let from_string: KeepAlive = serde_json::from_value(json!("10m")).unwrap();
        assert_eq!(from_string, KeepAlive::For(Duration::from_secs(600)));
        assert_eq!(serde_json::from_value::<KeepAlive>(json!("-1h")).unwrap(), KeepAlive::Forever);
        assert!(serde_json::from_value::<KeepAlive>(json!("300")).is_err(), "Go rejects unitless");
        assert!(serde_json::from_value::<KeepAlive>(json!(true)).is_err());
    }

    #[test]
    fn keep_alive_parses_seconds_and_go_durations() {
        let secs = |s| Ok(Some(KeepAlive::For(Duration::from_secs(s))));
        assert_eq!(KeepAlive::parse_param(""), Ok(None));
        assert_eq!(KeepAlive::parse_param("-1"), Ok(Some(KeepAlive::Forever)));
        assert_eq!(KeepAlive::parse_param("0"), secs(0));
        assert_eq!(KeepAlive::parse_param("300"), secs(300));
        assert_eq!(KeepAlive::parse_param("5m"), secs(300));
        assert_eq!(KeepAlive::parse_param("1h30m"), secs(5400));
        assert_eq!(KeepAlive::parse_param("1.5h"), secs(5400));
        assert_eq!(KeepAlive::parse_param("+2s500ms"), Ok(Some(KeepAlive::For(Duration::from_millis(2500)))));
        assert_eq!(KeepAlive::parse_param("-1m"), Ok(Some(KeepAlive::Forever)));
        assert_eq!(KeepAlive::parse_param("-0s"), secs(0));
        for bad in ["5 minutes", "m", "1d", "1..5s", "-", "5m3", "NaN", "inf"] {
            assert!(KeepAlive::parse_param(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn think_round_trips_and_parses() {
        round_trip(&Think::Bool(false), json!(false));
        round_trip(&Think::Bool(true), json!(true));
        round_trip(&Think::Level(ThinkLevel::High), json!("high"));
        round_trip(&Think::Level(ThinkLevel::Low), json!("low"));
        assert_eq!(Think::parse_param(""), Ok(None));
        assert_eq!(Think::parse_param(" False "), Ok(Some(Think::Bool(false))));
        assert_eq!(Think::parse_param("medium"), Ok(Some(Think::Level(ThinkLevel::Medium))));
        assert!(Think::parse_param("yes").is_err());
        assert!(serde_json::from_value::<Think>(json!("extreme")).is_err());
        assert!(serde_json::from_value::<Think>(json!(1)).is_err());
    }
}
