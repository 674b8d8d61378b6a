//! ROS interface types as a model sees them.
//!
//! Source of the facts: the type description that ROS 2 (Iron and later) installs beside every
//! interface, `<prefix>/share/<pkg>/<msg|srv|action>/<Name>.json`, written by
//! `rosidl_generator_type_description` in the shape of REP 2011's
//! `type_description_interfaces/msg/TypeDescription` (field `type_id`s from its `FieldType.msg`).
//! It is read from the prefixes of `AMENT_PREFIX_PATH`, i.e. the interfaces the ROS graph uses.
//!
//! A type becomes a [`Shape`]: the JSON schema the model is offered ([`Shape::schema`]) and the
//! check of the model's arguments ([`Shape::check`]) before r2r turns them into a message (r2r
//! panics on a fixed-size array of the wrong length and on an action goal that does not
//! deserialize, so nothing unchecked may reach it). Fields the arguments leave out take the
//! message's defaults (r2r's messages deserialize with `#[serde(default)]`).

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// How many elements an array field takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// `T[N]`
    Fixed(u64),
    /// `T[<=N]`
    AtMost(u64),
    /// `T[]`
    Any,
}

/// The JSON form of one ROS field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Bool,
    /// An integer type (`ros` is its name, e.g. `uint8`) and its range.
    Int { ros: &'static str, min: i128, max: i128 },
    /// `float32`, `float64`.
    Float,
    /// `string`, `wstring`; `max_len` in bytes for `string<=N`.
    Text { max_len: Option<u64> },
    List { item: Box<Shape>, len: Length },
    /// A message: its full name (`geometry_msgs/msg/Vector3`) and fields in order.
    Message { type_name: String, fields: Vec<Field> },
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub shape: Shape,
    /// The interface gives it a default value (so the model need not).
    pub has_default: bool,
}

// ---- the installed type description files --------------------------------------------------

#[derive(Deserialize)]
struct DescriptionFile {
    type_description_msg: DescriptionMsg,
}

#[derive(Deserialize)]
struct DescriptionMsg {
    type_description: TypeDescription,
    #[serde(default)]
    referenced_type_descriptions: Vec<TypeDescription>,
}

#[derive(Deserialize)]
struct TypeDescription {
    type_name: String,
    fields: Vec<FieldDescription>,
}

#[derive(Deserialize)]
struct FieldDescription {
    name: String,
    #[serde(rename = "type")]
    field_type: FieldType,
    #[serde(default)]
    default_value: String,
}

#[derive(Deserialize)]
struct FieldType {
    type_id: u8,
    #[serde(default)]
    capacity: u64,
    #[serde(default)]
    string_capacity: u64,
    #[serde(default)]
    nested_type_name: String,
}

/// Finds type descriptions under the prefixes of `AMENT_PREFIX_PATH`.
#[derive(Debug, Clone)]
pub struct TypeLibrary {
    prefixes: Vec<PathBuf>,
}

impl TypeLibrary {
    /// The prefixes of `AMENT_PREFIX_PATH` (colon-separated), as the ROS tools read them.
    pub fn from_env() -> TypeLibrary {
        let path = std::env::var("AMENT_PREFIX_PATH").unwrap_or_default();
        TypeLibrary::new(path.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
    }

    pub fn new(prefixes: Vec<PathBuf>) -> TypeLibrary {
        TypeLibrary { prefixes }
    }

    /// The shape of what a call sends for `interface` (`pkg/srv/Name` → its request,
    /// `pkg/action/Name` → its goal, `pkg/msg/Name` → the message).
    pub fn input_shape(&self, interface: &str) -> Result<Shape, String> {
        let parts: Vec<&str> = interface.split('/').collect();
        let [package, kind, name] = parts[..] else {
            return Err(format!("'{interface}' is not an interface name like std_srvs/srv/SetBool"));
        };
        let top = match kind {
            "srv" => format!("{interface}_Request"),
            "action" => format!("{interface}_Goal"),
            "msg" => interface.to_string(),
            _ => return Err(format!("'{interface}': the middle part must be msg, srv or action")),
        };
        let relative = PathBuf::from("share").join(package).join(kind).join(format!("{name}.json"));
        let file = self.prefixes.iter().map(|p| p.join(&relative)).find(|f| f.is_file()).ok_or_else(|| {
            format!("no type description of {interface}: {} is in none of the AMENT_PREFIX_PATH prefixes ({}); \
                     is the package installed and its setup sourced?",
                relative.display(), self.prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))
        })?;
        let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        shape_from_description(&text, &top).map_err(|e| format!("{}: {e}", file.display()))
    }
}

/// The shape of type `top` from the text of a type description file.
pub fn shape_from_description(text: &str, top: &str) -> Result<Shape, String> {
    let file: DescriptionFile = serde_json::from_str(text).map_err(|e| format!("not a ROS type description ({e})"))?;
    let msg = file.type_description_msg;
    let types: HashMap<&str, &TypeDescription> = std::iter::once(&msg.type_description)
        .chain(&msg.referenced_type_descriptions)
        .map(|t| (t.type_name.as_str(), t))
        .collect();
    message_shape(&types, top, 0)
}

fn message_shape(types: &HashMap<&str, &TypeDescription>, name: &str, depth: usize) -> Result<Shape, String> {
    if depth > 32 {
        return Err(format!("type {name} nests more than 32 levels deep"));
    }
    let description = types.get(name).ok_or_else(|| format!("type {name} is not described"))?;
    let fields = description
        .fields
        .iter()
        // an empty message has one placeholder field in its description
        .filter(|f| !(f.name == "structure_needs_at_least_one_member" && description.fields.len() == 1))
        .map(|f| {
            Ok(Field { name: f.name.clone(), shape: field_shape(types, &f.field_type, depth)?, has_default: !f.default_value.is_empty() })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Shape::Message { type_name: name.to_string(), fields })
}

/// `FieldType.type_id`: 1-48 single values, +48 `T[N]`, +96 `T[<=N]`, +144 `T[]`.
fn field_shape(types: &HashMap<&str, &TypeDescription>, t: &FieldType, depth: usize) -> Result<Shape, String> {
    let (base, len) = match t.type_id {
        1..=48 => (t.type_id, None),
        49..=96 => (t.type_id - 48, Some(Length::Fixed(t.capacity))),
        97..=144 => (t.type_id - 96, Some(Length::AtMost(t.capacity))),
        145..=192 => (t.type_id - 144, Some(Length::Any)),
        other => return Err(format!("unknown field type id {other}")),
    };
    let int = |ros, min: i128, max: i128| Shape::Int { ros, min, max };
    let single = match base {
        1 => message_shape(types, &t.nested_type_name, depth + 1)?,
        2 => int("int8", i8::MIN.into(), i8::MAX.into()),
        3 => int("uint8", 0, u8::MAX.into()),
        4 => int("int16", i16::MIN.into(), i16::MAX.into()),
        5 => int("uint16", 0, u16::MAX.into()),
        6 => int("int32", i32::MIN.into(), i32::MAX.into()),
        7 => int("uint32", 0, u32::MAX.into()),
        8 => int("int64", i64::MIN.into(), i64::MAX.into()),
        9 => int("uint64", 0, u64::MAX.into()),
        10..=12 => Shape::Float,
        13 => int("char", 0, u8::MAX.into()),
        14 => int("wchar", 0, u16::MAX.into()),
        15 => Shape::Bool,
        16 => int("byte", 0, u8::MAX.into()),
        17 | 18 => Shape::Text { max_len: None },
        19..=22 => Shape::Text { max_len: Some(t.string_capacity) },
        other => return Err(format!("unknown field type id {other}")),
    };
    Ok(match len {
        None => single,
        Some(len) => Shape::List { item: Box::new(single), len },
    })
}

// ---- schema and check --------------------------------------------------------------------

impl Shape {
    /// The JSON schema of this shape (objects list their fields without defaults as `required`,
    /// and say `additionalProperties: false`: [`Shape::check`] refuses a field the type lacks).
    pub fn schema(&self) -> Value {
        match self {
            Shape::Bool => json!({"type": "boolean"}),
            Shape::Int { min, max, .. } => json!({"type": "integer", "minimum": number(*min), "maximum": number(*max)}),
            Shape::Float => json!({"type": "number"}),
            Shape::Text { max_len: None } => json!({"type": "string"}),
            Shape::Text { max_len: Some(n) } => json!({"type": "string", "maxLength": n}),
            Shape::List { item, len } => {
                let mut schema = json!({"type": "array", "items": item.schema()});
                match len {
                    Length::Fixed(n) => {
                        schema["minItems"] = json!(n);
                        schema["maxItems"] = json!(n);
                    }
                    Length::AtMost(n) => schema["maxItems"] = json!(n),
                    Length::Any => {}
                }
                schema
            }
            Shape::Message { type_name, fields } => {
                let properties: Map<String, Value> = fields.iter().map(|f| (f.name.clone(), f.shape.schema())).collect();
                let required: Vec<&str> = fields.iter().filter(|f| !f.has_default).map(|f| f.name.as_str()).collect();
                json!({"type": "object", "description": type_name, "properties": properties, "required": required,
                       "additionalProperties": false})
            }
        }
    }

    /// Checks `value` against this shape; `Err` names the field and what is wrong.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        self.check_at(value, "")
    }

    fn check_at(&self, value: &Value, path: &str) -> Result<(), String> {
        let at = if path.is_empty() { String::new() } else { format!("{path}: ") };
        let wrong = |expected: &str| Err(format!("{at}expected {expected}, got {value}"));
        match self {
            Shape::Bool if value.is_boolean() => Ok(()),
            Shape::Bool => wrong("true or false"),
            Shape::Int { ros, min, max } => {
                let n = value.as_i64().map(i128::from).or_else(|| value.as_u64().map(i128::from));
                match n {
                    Some(n) if (*min..=*max).contains(&n) => Ok(()),
                    Some(n) => Err(format!("{at}{n} is out of range for {ros} ({min}..{max})")),
                    None => wrong(&format!("an integer ({ros})")),
                }
            }
            Shape::Float if value.is_number() => Ok(()),
            Shape::Float => wrong("a number"),
            Shape::Text { max_len } => match value.as_str() {
                Some(s) if max_len.is_some_and(|n| s.len() as u64 > n) => {
                    Err(format!("{at}the text is {} bytes long; at most {} fit", s.len(), max_len.unwrap_or(0)))
                }
                Some(_) => Ok(()),
                None => wrong("a string"),
            },
            Shape::List { item, len } => {
                let Some(items) = value.as_array() else { return wrong("an array") };
                let n = items.len() as u64;
                match len {
                    Length::Fixed(k) if n != *k => return Err(format!("{at}expected exactly {k} elements, got {n}")),
                    Length::AtMost(k) if n > *k => return Err(format!("{at}expected at most {k} elements, got {n}")),
                    _ => {}
                }
                items.iter().enumerate().try_for_each(|(i, v)| item.check_at(v, &format!("{path}[{i}]")))
            }
            Shape::Message { type_name, fields } => {
                let Some(object) = value.as_object() else { return wrong(&format!("an object ({type_name})")) };
                for (key, v) in object {
                    let field = fields.iter().find(|f| &f.name == key).ok_or_else(|| {
                        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                        format!("{at}{type_name} has no field '{key}' (its fields: {})", names.join(", "))
                    })?;
                    let inner = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    field.shape.check_at(v, &inner)?;
                }
                Ok(())
            }
        }
    }
}

/// An integer bound as a JSON number (u64/i64 cover every ROS integer type).
fn number(n: i128) -> Value {
    u64::try_from(n).map(Value::from).or_else(|_| i64::try_from(n).map(Value::from)).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
