//! [`KeepAlive`] and the Go duration syntax it is written in (`"5m"`, `"1h30m"`).

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::params::{param_error, ParamError};

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

/// Whole seconds in Go's largest `time.Duration` (`math.MaxInt64` nanoseconds).
const GO_MAX_DURATION_SECS: u64 = (i64::MAX as u64) / 1_000_000_000;

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Go's time.Duration ends at ~292 years; longer would overflow on the server.
            KeepAlive::Forever => serializer.serialize_i64(-1),
            KeepAlive::For(d) if d.as_secs() >= GO_MAX_DURATION_SECS => {
                serializer.serialize_i64(-1)
            }
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
                None => Err(de::Error::custom(format!(
                    "keep_alive {s:?} is not a Go duration"
                ))),
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
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
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

#[cfg(test)]
mod tests {
    use super::super::params::tests::round_trip;
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_alive_round_trips_as_seconds() {
        round_trip(&KeepAlive::Forever, json!(-1));
        round_trip(&KeepAlive::For(Duration::ZERO), json!(0));
        round_trip(&KeepAlive::For(Duration::from_secs(300)), json!(300));
        round_trip(&KeepAlive::For(Duration::from_millis(1500)), json!(1.5));
        let ages = KeepAlive::parse_param("99999999h").unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(ages).unwrap(),
            json!(-1),
            "beyond Go's range = forever"
        );
        let from_string: KeepAlive = serde_json::from_value(json!("10m")).unwrap();
        assert_eq!(from_string, KeepAlive::For(Duration::from_secs(600)));
        assert_eq!(
            serde_json::from_value::<KeepAlive>(json!("-1h")).unwrap(),
            KeepAlive::Forever
        );
        assert!(
            serde_json::from_value::<KeepAlive>(json!("300")).is_err(),
            "Go rejects unitless"
        );
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
        assert_eq!(
            KeepAlive::parse_param("+2s500ms"),
            Ok(Some(KeepAlive::For(Duration::from_millis(2500))))
        );
        assert_eq!(KeepAlive::parse_param("-1m"), Ok(Some(KeepAlive::Forever)));
        assert_eq!(KeepAlive::parse_param("-0s"), secs(0));
        for bad in ["5 minutes", "m", "1d", "1..5s", "-", "5m3", "NaN", "inf"] {
            assert!(KeepAlive::parse_param(bad).is_err(), "{bad}");
        }
    }
}
