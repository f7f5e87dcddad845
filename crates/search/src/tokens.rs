//! The blind index entries of a resource: one tag per searchable value form, for every search
//! parameter of its type.

use serde_json::Value;

use crate::blind::{Form, IndexKey, Tag};
use crate::date;
use crate::extract::{Values, values};
use crate::normalize::fold;
use crate::params::{Param, params_of};

/// Longest folded prefix filed under its own tag (in characters); a longer search value is
/// looked up by its first this many characters and then checked exactly.
pub const MAX_PREFIX: usize = 32;

/// Length of the substrings filed for `:contains` (every 1-, 2- and 3-character run): a longer
/// needle is looked up by its runs of three and then checked exactly.
pub const GRAM: usize = 3;

/// The tags of `resource` (of type `resource_type`) under each of `keys`, sorted and without
/// repeats. Writers pass the current index key and, while a rotation is under way, the next one
/// (architecture §4.1): values are extracted once, whatever the number of keys.
pub fn index_tags(keys: &[IndexKey], resource_type: &str, resource: &Value) -> Vec<Tag> {
    let mut out = Vec::new();
    for p in params_of(resource_type) {
        param_tags(keys, resource_type, p, resource, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn param_tags(
    keys: &[IndexKey],
    rt: &str,
    p: &'static Param,
    resource: &Value,
    out: &mut Vec<Tag>,
) {
    let vals = values(resource, p);
    if vals.is_empty() {
        return;
    }
    let mut tag = |form, v: &str| out.extend(keys.iter().map(|k| k.tag(rt, p.name, form, v)));
    // Every stored version has the elements FHIR requires: `:missing` on them needs no tag.
    if !crate::params::is_required(rt, p.name) {
        tag(Form::Present, "");
    }
    match vals {
        Values::Tokens(ts) => {
            for t in ts {
                tag(Form::Code, &t.code);
                match &t.system {
                    Some(s) => {
                        tag(Form::SystemCode, &format!("{s}|{}", t.code));
                        tag(Form::System, s);
                    }
                    None => tag(Form::NoSystem, &t.code),
                }
            }
        }
        // A narrowed parameter's references are the broader one's tags (`filed_under`).
        Values::References(rs) => {
            if crate::params::filed_under(rt, p).name == p.name {
                rs.iter().for_each(|r| tag(Form::Reference, r));
            }
        }
        Values::Strings(ss) => {
            for s in ss {
                tag(Form::Exact, &s);
                let folded: Vec<char> = fold(&s).chars().collect();
                for n in 1..=folded.len().min(MAX_PREFIX) {
                    tag(Form::Prefix, &folded[..n].iter().collect::<String>());
                }
                for n in 1..=GRAM {
                    for w in folded.windows(n) {
                        tag(Form::Substring, &w.iter().collect::<String>());
                    }
                }
            }
        }
        Values::Dates(ds) => {
            for d in ds {
                date::units_of(d)
                    .iter()
                    .for_each(|u| tag(Form::DateUnit, u));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use medledger_crypto::Key;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_patient_is_filed_under_its_values_and_nothing_in_clear() {
        let k = IndexKey::derive(&Key::from_bytes([1; 32]), 1);
        let p = json!({
            "resourceType": "Patient",
            "name": [{"family": "Müller", "given": ["Anna"]}],
            "birthDate": "1980-05-02",
            "identifier": [{"system": "urn:mrn", "value": "MRN-1"}],
        });
        let tags = index_tags(std::slice::from_ref(&k), "Patient", &p);
        let has = |param, form, v| tags.contains(&k.tag("Patient", param, form, v));
        assert!(has("family", Form::Prefix, "mul"));
        assert!(has("family", Form::Exact, "Müller"));
        assert!(has("name", Form::Substring, "ll"));
        assert!(has("identifier", Form::SystemCode, "urn:mrn|MRN-1"));
        assert!(has("identifier", Form::Code, "MRN-1"));
        assert!(!has("identifier", Form::NoSystem, "MRN-1"));
        assert!(has("birthdate", Form::DateUnit, "d1980-05-02"));
        assert!(!has("gender", Form::Present, ""));
        let bytes: Vec<u8> = tags.concat();
        assert!(
            !bytes
                .windows(3)
                .any(|w| w == b"MRN" || w == b"Mul" || w == b"198")
        );
        // Under two keys (a rotation): both generations' tags, nothing shared between them.
        let next = IndexKey::derive(&Key::from_bytes([1; 32]), 2);
        let both = index_tags(&[k.clone(), next.clone()], "Patient", &p);
        let under_next = index_tags(std::slice::from_ref(&next), "Patient", &p);
        assert_eq!(both.len(), tags.len() + under_next.len());
        assert!(
            under_next
                .iter()
                .all(|t| !tags.contains(t) && both.contains(t))
        );
    }
}
