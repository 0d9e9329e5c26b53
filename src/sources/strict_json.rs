//! JSON decoding that refuses duplicate object keys, at any depth.
//!
//! The webhook routes decode into typed structs, whose derived
//! `Deserialize` already refuses a field given twice (serde's `duplicate
//! field` error). The task APIs validate a [`serde_json::Value`] field by
//! field, and `Value` silently keeps the last of duplicate keys — so a
//! proxy or a validator that reads the first one would see another
//! document than this service. [`from_slice`] decodes the same `Value` but
//! answers an error naming the first key it sees twice (serde_json's
//! recursion limit still applies).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Decodes `bytes` as JSON, refusing a duplicate key in any object.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Seed and visitor building a [`Value`] without duplicate keys.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} (each key may appear once per object)"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_duplicates_decodes_as_serde_json_does() {
        let text = br#"{"a":1,"b":[true,null,-2,1.5,"x",{"c":{}}],"d":{"e":"f"}}"#;
        let strict = from_slice(text).expect("valid");
        let plain: Value = serde_json::from_slice(text).expect("valid");
        assert_eq!(strict, plain);
    }

    #[test]
    fn a_duplicate_key_is_refused_naming_it_at_any_depth() {
        for (text, key) in [
            (r#"{"title":"a","title":"b"}"#, "\"title\""),
            (r#"{"repository":{"url":"x","url":"y"}}"#, "\"url\""),
            (r#"[{"ok":1},{"k":1,"k":2}]"#, "\"k\""),
        ] {
            let e = from_slice(text.as_bytes()).expect_err(text).to_string();
            assert!(
                e.contains("duplicate key") && e.contains(key),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn trailing_text_and_malformed_json_are_refused() {
        assert!(from_slice(br#"{"a":1} {"#).is_err());
        assert!(from_slice(br#"{"a":"#).is_err());
    }
}
