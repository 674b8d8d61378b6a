//! Go `encoding/json` semantics on top of serde_json, for decoding what Ollama streams.
//!
//! Ollama's own client (`api/client.go`, `stream()`) decodes each line with `json.Unmarshal`
//! into `api.ChatResponse` (`api/types.go`). To accept every line that client accepts, and read
//! the same text from it, decoding here follows Go's `encoding/json` (`decode.go`, whose doc
//! comment states each rule quoted below):
//!
//! * Keys: "preferring an exact match but also accepting a case-insensitive match" (Unicode
//!   simple folding, so `"DONE"` is `done`, and U+212A KELVIN SIGN matches `k`): [`FoldedKey`].
//! * `null`: "unmarshaling a JSON null into any other Go type [than interface, map, pointer,
//!   slice] has no effect on the value and produces no error": a string, bool or number field
//!   keeps what it had; a list becomes empty.
//! * A key given twice: each occurrence is decoded in turn into the same field, so the last
//!   wins, and an object given twice is merged into the struct decoded so far.
//! * Unknown keys are skipped, whatever their value.
//! * "When unmarshaling quoted strings, invalid UTF-8 or invalid UTF-16 surrogate pairs are not
//!   treated as an error. Instead, they are replaced by the Unicode replacement character
//!   U+FFFD": done on the raw line by [`go_text`](super::go_text::go_text) before parsing.
//! * A value of the wrong type ("done": "yes") fails the line, as in Go. One deliberate
//!   leniency: counts and durations written as `1e3` or `1.0` (Go fails the whole answer on
//!   those) are read when they are whole numbers; see [`GoDecode`] for `Option<u64>`.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// An object key folded for Go's case-insensitive match against our (ASCII, lowercase) field
/// names; `None` if it cannot match any (other non-ASCII characters, or too long).
pub(crate) struct FoldedKey {
    buf: [u8; 32],
    len: usize,
}

impl FoldedKey {
    /// Folds `key`: ASCII letters to lowercase; U+212A KELVIN SIGN to `k` and U+017F LATIN
    /// SMALL LETTER LONG S to `s` (their Unicode simple-fold orbits, as Go's `foldName`).
    pub(crate) fn new(key: &str) -> Option<FoldedKey> {
        let mut folded = FoldedKey {
            buf: [0; 32],
            len: 0,
        };
        for ch in key.chars() {
            let byte = match ch {
                '\u{212A}' => b'k',
                '\u{017F}' => b's',
                c if c.is_ascii() => c.to_ascii_lowercase() as u8,
                _ => return None,
            };
            *folded.buf.get_mut(folded.len)? = byte;
            folded.len += 1;
        }
        Some(folded)
    }

    /// The folded key (ASCII).
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Decodes a JSON value onto an existing value, as Go's `json.Unmarshal` does.
pub(crate) trait GoDecode {
    /// Reads one JSON value from `d` into `self`.
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error>;
}

/// A seed that decodes onto `&mut T` (for `next_value_seed` / `next_element_seed`).
pub(crate) struct Onto<'a, T>(pub &'a mut T);

impl<'de, T: GoDecode> DeserializeSeed<'de> for Onto<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.go_decode(d)
    }
}

/// Decodes a whole line (one JSON value, only whitespace around it) into `T::default()`.
pub(crate) fn decode<T: GoDecode + Default>(text: &str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut value = T::default();
    value.go_decode(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A Go struct: named fields, matched case-insensitively, everything else skipped.
pub(crate) trait GoStruct {
    /// Decodes the value of `key` (folded) into its field; `false` if no field has that name.
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// [`GoDecode`] for a [`GoStruct`]: an object is merged in, `null` changes nothing.
pub(crate) fn decode_struct<'de, T: GoStruct, D: Deserializer<'de>>(
    target: &mut T,
    d: D,
) -> Result<(), D::Error> {
    struct StructVisitor<'a, T>(&'a mut T);
    impl<'de, T: GoStruct> Visitor<'de> for StructVisitor<'_, T> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key_seed(KeySeed)? {
                let known = match key {
                    Some(key) => self.0.field(key.as_str(), &mut map)?,
                    None => false,
                };
                if !known {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    d.deserialize_any(StructVisitor(target))
}

/// Reads an object key straight into a [`FoldedKey`] (no allocation).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<FoldedKey>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<FoldedKey>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(FoldedKey::new(key))
    }
}

/// Implements [`GoDecode`] for types that implement [`GoStruct`]; with a field list
/// (`go_struct!(PullProgress { status, digest, total, completed })`), implements [`GoStruct`]
/// too: each field decoded ([`Onto`]) from the key of its own name, as Go's `json:"name"` tags.
macro_rules! go_struct {
    ($($ty:ident { $($field:ident),+ $(,)? }),+ $(,)?) => {$(
        impl $crate::ollama::go_json::GoStruct for $ty {
            fn field<'de, A: serde::de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
                match key {
                    $(stringify!($field) => map.next_value_seed($crate::ollama::go_json::Onto(&mut self.$field))?,)+
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
        $crate::ollama::go_json::go_struct!($ty);
    )+};
    ($($ty:ty),+) => {$(
        impl $crate::ollama::go_json::GoDecode for $ty {
            fn go_decode<'de, D: serde::Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
                $crate::ollama::go_json::decode_struct(self, d)
            }
        }
    )+};
}
pub(crate) use go_struct;

/// Scalars: one visitor decoding onto `&mut T`, with `null` a no-op.
struct Scalar<'a, T>(&'a mut T);

impl<'de> Visitor<'de> for Scalar<'_, String> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        v.clone_into(self.0);
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        *self.0 = v;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl GoDecode for String {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Scalar(self))
    }
}

/// An optional text (`done_reason`, a tool call `id`): a string sets it, `null` leaves it.
impl<'de> Visitor<'de> for Scalar<'_, Option<String>> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        *self.0 = Some(v.to_owned());
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        *self.0 = Some(v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl GoDecode for Option<String> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Scalar(self))
    }
}

impl<'de> Visitor<'de> for Scalar<'_, bool> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true or false")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        *self.0 = v;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl GoDecode for bool {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Scalar(self))
    }
}

/// A count or a duration in nanoseconds (Go `int` / `time.Duration`). Whole numbers in any
/// JSON form (`26`, `26.0`, `2.6e1`) are read; a negative value, a fraction or a number past
/// `u64` is not representable and leaves the field absent (`None`) instead of failing the line
/// (Go fails the answer on `1.0`; its negatives have no meaning in Ollama's metrics).
impl<'de> Visitor<'de> for Scalar<'_, Option<u64>> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        *self.0 = Some(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        *self.0 = u64::try_from(v).ok();
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // 2^64 is exactly representable; every f64 below it converts without rounding up.
        let whole =
            v.is_finite() && v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v);
        *self.0 = whole.then_some(v as u64);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl GoDecode for Option<u64> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Scalar(self))
    }
}

/// A small index (a tool call's position), read like [`Option<u64>`] and kept if it fits.
impl GoDecode for Option<u32> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        let mut wide = self.map(u64::from);
        wide.go_decode(d)?;
        *self = wide.and_then(|v| u32::try_from(v).ok());
        Ok(())
    }
}

/// A list: an array replaces it (each element decoded onto a default value), `null` empties
/// it ("sets it to nil").
impl<T: GoDecode + Default> GoDecode for Vec<T> {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        struct ListVisitor<'a, T>(&'a mut Vec<T>);
        impl<'de, T: GoDecode + Default> Visitor<'de> for ListVisitor<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                self.0.clear();
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                self.0.clear();
                loop {
                    let mut item = T::default();
                    match seq.next_element_seed(Onto(&mut item))? {
                        Some(()) => self.0.push(item),
                        None => return Ok(()),
                    }
                }
            }
        }
        d.deserialize_any(ListVisitor(self))
    }
}

/// Free-form JSON (tool call `arguments`, a Go map): an object is merged into the object held
/// ("Unmarshal reuses the existing map, keeping existing entries"), `null` empties it, any
/// other value is kept as given.
impl GoDecode for Value {
    fn go_decode<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        match (Value::deserialize(d)?, &mut *self) {
            (Value::Object(new), Value::Object(old)) => old.extend(new),
            (Value::Null, _) => *self = Value::Object(Default::default()),
            (new, _) => *self = new,
        }
        Ok(())
    }
}
