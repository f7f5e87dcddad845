//! Property: once a consent is revoked, no access is granted on its strength; with every consent
//! revoked, no read by a practitioner who is neither custodian nor in an emergency succeeds.

#![allow(clippy::unwrap_used, missing_docs)]

mod table;

use medledger_access::Interaction;
use medledger_consent::domain::consent::{ConsentStatus, parse_consent};
use medledger_consent::domain::decision::{Actor, Basis, Circumstances, Target, Verdict, decide};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTORS: [&str; 3] = ["Practitioner/dr-1", "Practitioner/dr-2", "Organization/o1"];
const TYPES: [&str; 3] = ["Observation", "Condition", "DocumentReference"];

fn provision(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = (
        prop::bool::ANY,
        prop::sample::subsequence(ACTORS.to_vec(), 0..=2),
        prop::sample::subsequence(TYPES.to_vec(), 0..=2),
        prop::option::of((0i64..20, 1i64..20)),
    )
        .prop_map(|(permit, actors, types, period)| {
            let mut p = json!({"type": if permit { "permit" } else { "deny" }});
            if !actors.is_empty() {
                p["actor"] = json!(
                    actors
                        .iter()
                        .map(|a| json!({"reference": {"reference": a}}))
                        .collect::<Vec<_>>()
                );
            }
            if !types.is_empty() {
                p["class"] = json!(types.iter().map(|t| json!({"code": t})).collect::<Vec<_>>());
            }
            if let Some((start, len)) = period {
                let at = |d: i64| {
                    time::OffsetDateTime::from_unix_timestamp(table::NOW + (d - 10) * 86_400)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                };
                p["period"] = json!({"start": at(start), "end": at(start + len)});
            }
            p
        });
    leaf.prop_recursive(depth, 8, 2, |inner| {
        (inner.clone(), prop::collection::vec(inner, 0..2)).prop_map(|(mut p, kids)| {
            if !kids.is_empty() {
                p["provision"] = json!(kids);
            }
            p
        })
    })
}

fn consents() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(provision(2), 1..5)
}

fn read_by(actor: &str, rt: &str, consents: &[Value], statuses: &[bool]) -> Verdict {
    let records: Vec<_> = consents
        .iter()
        .zip(statuses)
        .enumerate()
        .map(|(i, (p, active))| {
            let json = json!({"resourceType": "Consent", "status": if *active { "active" } else { "inactive" },
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "patient": {"reference": "Patient/p1"}, "provision": p});
            let r = parse_consent(&format!("c{i}"), &json).unwrap();
            assert_eq!(r.status == ConsentStatus::Active, *active);
            r
        })
        .collect();
    let claims = table::claims(actor, "practitioner", "user/*.cruds");
    decide(
        Actor {
            claims: &claims,
            verified_practitioner: true,
        },
        Target {
            interaction: Interaction::Read,
            resource_type: rt,
            owner: Some("Patient/p1"),
            custodian: Some("Practitioner/dr-9"),
            categories: None,
        },
        Circumstances {
            purpose: None,
            break_glass_reason: None,
            now: table::NOW,
        },
        &records,
    )
}

proptest! {
    #[test]
    fn a_revoked_consent_grants_nothing(
        consents in consents(),
        revoke in 0usize..5,
        actor in prop::sample::select(ACTORS.to_vec()),
        rt in prop::sample::select(TYPES.to_vec()),
    ) {
        let revoke = revoke % consents.len();
        let mut statuses = vec![true; consents.len()];
        statuses[revoke] = false;
        let after = read_by(actor, rt, &consents, &statuses);
        prop_assert_ne!(after, Verdict::Permit(Basis::Consent(format!("Consent/c{revoke}"))));
        // And with every consent revoked, the read fails whatever the provisions said.
        let none = read_by(actor, rt, &consents, &vec![false; consents.len()]);
        prop_assert!(matches!(none, Verdict::Deny(_)), "{:?}", none);
    }
}
