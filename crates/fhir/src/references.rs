//! References inside a resource: rewriting them for transaction Bundles whose entries refer to
//! each other by `fullUrl` (`urn:uuid:…`) before the server has assigned ids (FHIR R4
//! §3.1.0.11.2), and checking that a relative one names a resource at all.

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

/// Whether a `reference` string can name a resource: a contained one (`#id`), a `urn:uuid:` or
/// `urn:oid:` (resolved within a Bundle), an absolute URL, or relative `Type/id` or
/// `Type/id/_history/vid` with valid ids. A conditional reference (`Patient?identifier=…`) or an
/// id that is not an id (`Patient/..`) names nothing stored here.
pub fn valid_reference(r: &str) -> bool {
    if r.starts_with('#') || r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
        return true;
    }
    if let Some((scheme, _)) = r.split_once("://") {
        return !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic());
    }
    let parts: Vec<&str> = r.split('/').collect();
    let type_name = |t: &str| {
        t.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && t.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    match parts.as_slice() {
        [t, id] => type_name(t) && crate::valid_id(id),
        [t, id, "_history", vid] => type_name(t) && crate::valid_id(id) && crate::valid_id(vid),
        _ => false,
    }
}

/// The path of the first `reference` in `value` that names no resource ([`valid_reference`]).
pub fn first_invalid_reference(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::Object(obj) => obj.iter().find_map(|(k, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = match (k.as_str(), v) {
                ("reference", Value::String(s)) if !valid_reference(s) => Some(path.clone()),
                _ => first_invalid_reference(v, path),
            };
            path.truncate(len);
            found
        }),
        Value::Array(items) => items.iter().find_map(|v| first_invalid_reference(v, path)),
        _ => None,
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

    #[test]
    fn relative_references_must_name_a_resource() {
        for ok in [
            "Patient/p-1",
            "Observation/o.1/_history/2",
            "#contained",
            "urn:uuid:0b1c",
            "urn:oid:1.2.3",
            "https://other.example/fhir/Patient/7",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in [
            "Patient/..",
            "Patient/.",
            "Patient/",
            "Patient",
            "Patient/a/b",
            "patient/1",
            "Patient?identifier=x|1",
            "Patient/1/_history/..",
            "://x",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
        let v = serde_json::json!({"subject": {"reference": "Patient/1"},
            "performer": [{"reference": "Practitioner/ok"}, {"reference": "Practitioner/.."}]});
        assert_eq!(
            first_invalid_reference(&v, &mut String::new()).as_deref(),
            Some("performer.reference")
        );
    }
}
