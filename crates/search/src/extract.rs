//! The values a resource holds for a search parameter, read from its JSON.

use serde_json::Value;

use crate::date::{self, Range};
use crate::params::{Kind, Param};

/// One token value: a code with its system, when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    /// `Coding.system`, `Identifier.system`, `ContactPoint.system`; `None` for plain codes.
    pub system: Option<String>,
    /// `Coding.code`, `Identifier.value`, `ContactPoint.value`, or the code itself.
    pub code: String,
}

/// The values of one parameter in one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Token values.
    Tokens(Vec<TokenValue>),
    /// References, as `Type/id`.
    References(Vec<String>),
    /// Strings, as written.
    Strings(Vec<String>),
    /// Date ranges.
    Dates(Vec<Range>),
}

impl Values {
    /// Whether the resource has no value for the parameter.
    pub fn is_empty(&self) -> bool {
        match self {
            Values::Tokens(v) => v.is_empty(),
            Values::References(v) => v.is_empty(),
            Values::Strings(v) => v.is_empty(),
            Values::Dates(v) => v.is_empty(),
        }
    }
}

/// The elements at `path` (dotted, arrays traversed; `a.b@sys` keeps elements whose `system`
/// is `sys`).
pub fn elements<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let (path, system) = match path.split_once('@') {
        Some((p, s)) => (p, Some(s)),
        None => (path, None),
    };
    let mut current = vec![resource];
    for step in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(Value::Null) | None => {}
                Some(other) => next.push(other),
            }
        }
        current = next;
    }
    if let Some(system) = system {
        current.retain(|v| v.get("system").and_then(Value::as_str) == Some(system));
    }
    current
}

/// The values of `param` in `resource`.
pub fn values(resource: &Value, param: &Param) -> Values {
    let elems = param.paths.iter().flat_map(|p| elements(resource, p));
    match param.kind {
        Kind::Token => Values::Tokens(elems.flat_map(token_values).collect()),
        // Only references to a type the parameter may point to (`patient` is not a Group).
        Kind::Reference => Values::References(
            elems
                .filter_map(reference_of)
                .filter(|r| {
                    r.split_once('/')
                        .is_some_and(|(t, _)| param.targets.contains(&t))
                })
                .collect(),
        ),
        Kind::String => Values::Strings(elems.flat_map(string_values).collect()),
        Kind::Date => Values::Dates(elems.filter_map(date_range).collect()),
    }
}

fn token_values(v: &Value) -> Vec<TokenValue> {
    let plain = |code: &str| TokenValue {
        system: None,
        code: code.to_owned(),
    };
    match v {
        Value::String(s) => vec![plain(s)],
        Value::Bool(b) => vec![plain(if *b { "true" } else { "false" })],
        Value::Object(o) => {
            if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                // CodeableConcept.
                return codings.iter().filter_map(coding).collect();
            }
            coding(v).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// A Coding (`system`, `code`), an Identifier or a ContactPoint (`system`, `value`).
fn coding(v: &Value) -> Option<TokenValue> {
    let code = v
        .get("code")
        .or_else(|| v.get("value"))
        .and_then(Value::as_str)?;
    Some(TokenValue {
        system: v.get("system").and_then(Value::as_str).map(str::to_owned),
        code: code.to_owned(),
    })
}

/// `Type/id` of a Reference (relative, or absolute with the type and id as its last two
/// segments); contained (`#…`) and logical-only references have none.
pub fn reference_of(v: &Value) -> Option<String> {
    let r = v.get("reference")?.as_str()?;
    normalize_reference(r)
}

/// `Type/id` of a reference string, dropping a base URL and a `_history` suffix.
pub fn normalize_reference(r: &str) -> Option<String> {
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let mut parts = r.rsplit('/');
    let id = parts.next()?;
    let rt = parts.next()?;
    let typed = rt.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    (typed && !id.is_empty()).then(|| format!("{rt}/{id}"))
}

fn string_values(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) => {
            // HumanName and Address parts read through their own paths; an object reached
            // directly contributes its text.
            o.get("text")
                .and_then(Value::as_str)
                .map(|t| vec![t.to_owned()])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn date_range(v: &Value) -> Option<Range> {
    match v {
        Value::String(s) => date::parse_value(s).ok(),
        Value::Object(o) => {
            // A Period: an absent end is open (ongoing), an absent start unbounded.
            let start = match o.get("start").and_then(Value::as_str) {
                Some(s) => date::parse_value(s).ok()?.start,
                None => i64::MIN,
            };
            let end = match o.get("end").and_then(Value::as_str) {
                Some(s) => date::parse_value(s).ok()?.end,
                None => i64::MAX,
            };
            (start != i64::MIN || end != i64::MAX).then_some(Range { start, end })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::params::param;

    #[test]
    fn reads_codings_identifiers_contact_points_and_codes() {
        let p = json!({
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": "123"}],
            "telecom": [{"system": "phone", "value": "555-1"}, {"system": "email", "value": "a@b"}],
            "gender": "female",
        });
        let toks = |name| match values(&p, param("Patient", name).expect("param")) {
            Values::Tokens(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(toks("identifier")[0].system.as_deref(), Some("urn:mrn"));
        assert_eq!(toks("identifier")[0].code, "123");
        assert_eq!(toks("phone").len(), 1);
        assert_eq!(toks("email")[0].code, "a@b");
        assert_eq!(toks("telecom").len(), 2);
        assert_eq!(toks("gender")[0].code, "female");
    }

    #[test]
    fn references_drop_base_and_history() {
        assert_eq!(
            normalize_reference("https://x/fhir/Patient/1/_history/2").as_deref(),
            Some("Patient/1")
        );
        assert_eq!(normalize_reference("urn:uuid:abc"), None);
        assert_eq!(normalize_reference("#contained"), None);
    }

    #[test]
    fn periods_may_be_open() {
        let o = json!({"period": {"start": "2020-01-01"}});
        let r = date_range(&o["period"]).expect("range");
        assert_eq!(r.end, i64::MAX);
        assert!(date_range(&json!({})).is_none());
    }
}
