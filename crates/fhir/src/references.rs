//! Rewriting references inside a resource, for transaction Bundles whose entries refer to each
//! other by `fullUrl` (`urn:uuid:…`) before the server has assigned ids (FHIR R4 §3.1.0.11.2).

use std::collections::HashMap;

use serde_json::Value;

/// Replaces every `reference` string equal to a key of `map` with its value; returns how many
/// references were rewritten.
pub fn rewrite_references(value: &mut Value, map: &HashMap<String, String>) -> usize {
    match value {
        Value::Object(obj) => {
            let mut n = 0;
            for (k, v) in obj.iter_mut() {
                if k == "reference" {
                    if let Value::String(s) = v
                        && let Some(new) = map.get(s.as_str())
                    {
                        *s = new.clone();
                        n += 1;
                    }
                } else {
                    n += rewrite_references(v, map);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| rewrite_references(v, map)).sum(),
        _ => 0,
    }
}

/// Every `urn:uuid:` or `urn:oid:` reference in `value` that `map` cannot resolve.
pub fn unresolved_urn_references(
    value: &Value,
    map: &HashMap<String, String>,
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("reference", Value::String(s))
                        if (s.starts_with("urn:uuid:") || s.starts_with("urn:oid:"))
                            && !map.contains_key(s) =>
                    {
                        out.push(s.clone())
                    }
                    _ => unresolved_urn_references(v, map, out),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| unresolved_urn_references(v, map, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_nested_references_only() {
        let mut v = json!({"subject": {"reference": "urn:uuid:1"}, "note": [{"text": "urn:uuid:1"}],
            "part": [{"x": {"reference": "urn:uuid:2"}}, {"reference": "Patient/keep"}]});
        let map = HashMap::from([
            ("urn:uuid:1".to_owned(), "Patient/a".to_owned()),
            ("urn:uuid:2".to_owned(), "Encounter/b".to_owned()),
        ]);
        assert_eq!(rewrite_references(&mut v, &map), 2);
        assert_eq!(v["subject"]["reference"], "Patient/a");
        assert_eq!(v["note"][0]["text"], "urn:uuid:1");
        assert_eq!(v["part"][0]["x"]["reference"], "Encounter/b");
        let mut missing = Vec::new();
        unresolved_urn_references(
            &json!({"a": {"reference": "urn:uuid:9"}}),
            &map,
            &mut missing,
        );
        assert_eq!(missing, vec!["urn:uuid:9"]);
    }
}
