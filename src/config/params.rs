//! The machinery of the parameter table (no ROS here): [`Value`], [`Kind`] (type and range),
//! [`ParamSpec`] (one row: name, type, range, read-only, description) and the `parameters!`
//! macro that turns the one list in `config.rs` into the plain [`Params`](super::Params) struct,
//! its defaults, the [`PARAMS`](super::PARAMS) table and by-name get/set.
//!
//! The ROS layer (`ros::params`) builds descriptors, `ros2 param` answers and parameter events
//! from this table; `--help` prints it. Values are coerced the way a user writes them: an integer
//! where seconds are expected (`request_timeout_s:=120`), a number where a duration text is
//! expected (`keep_alive:=-1`), a whole double where a count is expected.

use super::InvalidParam;
use crate::ollama::REDACTED_PASSWORD;

/// A parameter value, as ROS carries it (the scalar types this node uses).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The declared type of a parameter, with its inclusive range where it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    Int { min: i64, max: i64 },
    /// Seconds and other real numbers; integers are accepted and stored as doubles.
    Float { min: f64, max: f64 },
    Text,
    /// Text that may also be written as a number (`keep_alive: 300`, `-1`), stored as its text.
    TextOrNumber,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

impl Kind {
    /// The ROS type name shown by `--help` (`ros2 param describe` says the same).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int { .. } => "integer",
            Kind::Float { .. } => "double",
            Kind::Text | Kind::TextOrNumber | Kind::Choice(_) => "string",
        }
    }

    /// `value` converted to this type and checked against the range; `Err` says why not.
    pub fn accept(&self, value: Value) -> Result<Value, String> {
        let got = |v: &Value| match v {
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a double",
            Value::Text(_) => "a string",
        };
        match (*self, value) {
            (Kind::Bool, v @ Value::Bool(_)) => Ok(v),
            (Kind::Int { min, max }, Value::Int(i)) => in_range(i, min, max).map(Value::Int),
            (Kind::Int { min, max }, Value::Float(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
                in_range(x as i64, min, max).map(Value::Int)
            }
            (Kind::Float { min, max }, Value::Float(x)) if x.is_finite() => in_range(x, min, max).map(Value::Float),
            (Kind::Float { min, max }, Value::Int(i)) => in_range(i as f64, min, max).map(Value::Float),
            (Kind::Text, v @ Value::Text(_)) | (Kind::TextOrNumber, v @ Value::Text(_)) => Ok(v),
            (Kind::TextOrNumber, Value::Int(i)) => Ok(Value::Text(i.to_string())),
            (Kind::TextOrNumber, Value::Float(x)) if x.is_finite() => Ok(Value::Text(number_text(x))),
            (Kind::Choice(words), Value::Text(s)) => match words.iter().find(|w| **w == s.trim()) {
                Some(w) => Ok(Value::Text(w.to_string())),
                None => Err(format!("{s:?} is not one of: {}", words.join(", "))),
            },
            (kind, v) => Err(format!("expected {}, got {} ({v})", kind.expected(), got(&v))),
        }
    }

    fn expected(&self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Int { .. } => "an integer",
            Kind::Float { .. } => "a number",
            Kind::Text | Kind::Choice(_) => "a string",
            Kind::TextOrNumber => "a string or a number",
        }
    }

    /// The range or the allowed words, for `--help` and `additional_constraints`.
    pub fn constraint(&self) -> Option<String> {
        match self {
            Kind::Int { min, max } => Some(format!("{min} to {max}")),
            Kind::Float { min, max } => Some(format!("{min} to {max}")),
            Kind::Choice(words) => Some(format!("one of: {}", words.join(", "))),
            _ => None,
        }
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(v: T, min: T, max: T) -> Result<T, String> {
    if v < min || v > max {
        return Err(format!("{v} is out of range: allowed {min} to {max}"));
    }
    Ok(v)
}

/// `300.0` → `"300"`, `1.5` → `"1.5"`.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        (x as i64).to_string()
    } else {
        x.to_string()
    }
}

/// One row of the parameter table.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Read once at start: `ros2 param set` refuses it (start-time overrides still apply).
    pub read_only: bool,
    /// The field's doc comment (one sentence; leading space included, see [`Self::description`]).
    pub doc: &'static str,
}

impl ParamSpec {
    /// What the parameter means, for descriptors and `--help`.
    pub fn description(&self) -> &'static str {
        self.doc.trim()
    }
}

/// The row of `name`, or the error a `ros2 param set` of an unknown name gets.
pub fn spec(name: &str) -> Result<&'static ParamSpec, InvalidParam> {
    super::PARAMS.iter().find(|s| s.name == name).ok_or_else(|| InvalidParam {
        name: name.to_string(),
        message: "this node has no such parameter (see `ollama_bridge --help` or `ros2 param list`)".into(),
    })
}

/// Conversion of a field to and from [`Value`] (what the macro's get/set use).
pub trait FieldValue: Sized {
    fn to_value(&self) -> Value;
    fn from_value(v: Value) -> Option<Self>;
}

macro_rules! field_value {
    ($t:ty, $variant:ident) => {
        impl FieldValue for $t {
            fn to_value(&self) -> Value {
                Value::$variant(self.clone())
            }
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
field_value!(bool, Bool);
field_value!(i64, Int);
field_value!(f64, Float);
field_value!(String, Text);

/// Declares the node's parameters once: the plain `Params` struct (one documented field per
/// parameter), `Params::with_defaults`, the `PARAMS` table and `Params::get` / `Params::assign`.
macro_rules! parameters {
    ($( $(#[doc = $doc:literal])+ $name:ident: $ty:ty = $default:expr, $kind:expr, $ro:literal; )+) => {
        /// The node's parameters as plain values (what ROS sees, before parsing into `Config`).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Params {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        /// One row per parameter, in declaration order.
        pub const PARAMS: &[$crate::config::params::ParamSpec] = &[
            $( $crate::config::params::ParamSpec {
                name: stringify!($name),
                kind: $kind,
                read_only: $ro,
                doc: concat!($($doc),+),
            }, )+
        ];

        impl Params {
            /// Every parameter at its default (`ollama_url` from `OLLAMA_HOST` when set).
            pub fn with_defaults() -> Params {
                Params { $( $name: $default.into(), )+ }
            }

            /// The stored value of `name` (`None`: no such parameter).
            pub fn get(&self, name: &str) -> Option<$crate::config::params::Value> {
                use $crate::config::params::FieldValue;
                match name {
                    $( stringify!($name) => Some(self.$name.to_value()), )+
                    _ => None,
                }
            }

            /// Stores a value already converted by its `Kind`; false if name or type do not fit.
            fn assign(&mut self, name: &str, value: $crate::config::params::Value) -> bool {
                use $crate::config::params::FieldValue;
                match name {
                    $( stringify!($name) => match FieldValue::from_value(value) {
                        Some(v) => { self.$name = v; true }
                        None => false,
                    }, )+
                    _ => false,
                }
            }
        }
    };
}
pub(crate) use parameters;

impl super::Params {
    /// Sets `name` from a value as a user wrote it: converted and range-checked by its [`Kind`].
    /// Read-only parameters are settable here (start-time overrides); the ROS layer refuses them
    /// at run time. An `ollama_url` with a password that is the redaction mark `***` is taken only
    /// when it is exactly the URL (list) shown now, and then keeps the real password (a client that read the
    /// parameter and writes it back must not replace the password with `***`).
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), InvalidParam> {
        let spec = spec(name)?;
        let value = spec.kind.accept(value).map_err(|message| InvalidParam { name: name.to_string(), message })?;
        if let (true, Value::Text(url)) = (name == "ollama_url", &value) {
            if url.split(',').any(crate::ollama::is_redacted) {
                if *url == redact_url(&self.ollama_url) {
                    return Ok(());
                }
                return Err(InvalidParam {
                    name: name.to_string(),
                    message: format!("'{REDACTED_PASSWORD}' stands for a hidden password: give the URL with the real password"),
                });
            }
        }
        match self.assign(name, value) {
            true => Ok(()),
            false => Err(InvalidParam { name: name.to_string(), message: "internal: value and field types differ".into() }),
        }
    }

    /// The value of `name` as the node shows it to the world: `ollama_url` without its password.
    pub fn exposed(&self, name: &str) -> Option<Value> {
        match self.get(name)? {
            Value::Text(url) if name == "ollama_url" => Some(Value::Text(redact_url(&url))),
            value => Some(value),
        }
    }

    /// Every value against its row's type and range (a `Params` built field by field skips `set`).
    pub fn check(&self) -> Result<(), InvalidParam> {
        for spec in super::PARAMS {
            let value = self.get(spec.name).ok_or_else(|| InvalidParam { name: spec.name.into(), message: "missing".into() })?;
            spec.kind.accept(value).map_err(|message| InvalidParam { name: spec.name.into(), message })?;
        }
        Ok(())
    }
}

/// `ollama_url` as it may be shown: each of its comma-separated URLs with the password replaced
/// by `***` ([`crate::ollama::redact_url`], the one place that knows how a server URL is shown).
pub fn redact_url(urls: &str) -> String {
    urls.split(',').map(crate::ollama::redact_url).collect::<Vec<_>>().join(",")
}
