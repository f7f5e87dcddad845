//! FHIR JSON as it arrives: parsed like `serde_json::Value`, except that an object naming the
//! same member twice is refused. RFC 8259 leaves such an object's meaning open (parsers keep the
//! first, the last, or both) and FHIR's JSON format forbids it; taking one silently would store
//! something other than what a sender's other systems read, `resourceType` included.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The member name serde_json's `arbitrary_precision` uses to pass a number's literal through
/// `deserialize_any` (the same check serde_json's own `Value` makes).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Parses `bytes` as JSON, refusing duplicate object members.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

/// A `Value` deserialized with duplicate members refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.is_empty() && key == NUMBER_TOKEN {
                // serde_json's arbitrary_precision hands a number that is not a plain integer
                // over as a one-member map holding its literal; keep the literal (canonical.rs).
                let literal: String = map.next_value()?;
                return literal
                    .parse::<serde_json::Number>()
                    .map(Value::Number)
                    .map_err(de::Error::custom);
            }
            if out.contains_key(&key) {
                // A member name, not a value: safe to say which.
                return Err(de::Error::custom(format!(
                    "the member '{key}' appears twice in one object"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        for doc in [
            r#"{"resourceType":"Patient","resourceType":"Observation"}"#,
            r#"{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}"#,
            r#"[{"a":1,"a":1}]"#,
        ] {
            let e = parse_strict(doc.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("appears twice"), "{doc}: {e}");
        }
    }

    #[test]
    fn anything_else_parses_exactly_as_serde_json_does() {
        let doc =
            br#"{"a":[1,-2,3.25,1e400,18446744073709551615,true,null,"x\u00e9"],"b":{"c":{}}}"#;
        // 1e400 is out of range for both parsers alike.
        assert_eq!(
            parse_strict(doc).is_err(),
            serde_json::from_slice::<Value>(doc).is_err()
        );
        let doc = br#"{"a":[1,-2,3.25,0.1,18446744073709551615,true,null,"x\u00e9"],"b":{"c":{}}}"#;
        assert_eq!(
            parse_strict(doc).unwrap(),
            serde_json::from_slice::<Value>(doc).unwrap()
        );
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpus/fhir/synthea"
        );
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(
                    parse_strict(&bytes).unwrap(),
                    serde_json::from_slice::<Value>(&bytes).unwrap(),
                    "{}",
                    path.display()
                );
            }
        }
    }
}
