//! The polymorphic request fields [`Format`] and [`Think`] (and [`ParamError`]; `KeepAlive`
//! lives in `keep_alive`).
//!
//! Each has hand-written serde (the wire accepts more than one JSON type) and a `parse_param`
//! that turns a user-facing parameter string into the value, `""` meaning "leave it out".

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

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

pub(super) fn param_error(param: &'static str, message: String) -> ParamError {
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
            level => {
                ThinkLevel::from_wire(level)
                    .map(|l| Some(Think::Level(l)))
                    .ok_or_else(|| {
                        param_error(
                    "think",
                    format!("{s:?}: expected \"\", true, false, \"low\", \"medium\" or \"high\""),
                )
                    })
            }
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
            Value::String(s) => ThinkLevel::from_wire(&s).map(Think::Level).ok_or_else(|| {
                de::Error::custom(format!("think level {s:?} is not low|medium|high"))
            }),
            other => Err(de::Error::custom(format!(
                "think must be a bool or a level, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// Serialises to `wire` and parses back to `value`.
    pub(in super::super) fn round_trip<T>(value: &T, wire: Value)
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
        let Value::Object(map) = schema.clone() else {
            unreachable!()
        };
        round_trip(&Format::Schema(map.clone()), schema.clone());
        assert_eq!(Format::parse_param(" "), Ok(None));
        assert_eq!(Format::parse_param("json"), Ok(Some(Format::Json)));
        assert_eq!(
            Format::parse_param(&schema.to_string()),
            Ok(Some(Format::Schema(map)))
        );
        for bad in ["xml", "[1]", "\"json\"", "{not json"] {
            assert_eq!(
                Format::parse_param(bad).unwrap_err().param,
                "format",
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<Format>(json!("yaml")).is_err());
    }

    #[test]
    fn think_round_trips_and_parses() {
        round_trip(&Think::Bool(false), json!(false));
        round_trip(&Think::Bool(true), json!(true));
        round_trip(&Think::Level(ThinkLevel::High), json!("high"));
        round_trip(&Think::Level(ThinkLevel::Low), json!("low"));
        assert_eq!(Think::parse_param(""), Ok(None));
        assert_eq!(Think::parse_param(" False "), Ok(Some(Think::Bool(false))));
        assert_eq!(
            Think::parse_param("medium"),
            Ok(Some(Think::Level(ThinkLevel::Medium)))
        );
        assert!(Think::parse_param("yes").is_err());
        assert!(serde_json::from_value::<Think>(json!("extreme")).is_err());
        assert!(serde_json::from_value::<Think>(json!(1)).is_err());
    }
}
