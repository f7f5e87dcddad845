//! The decision table shared by the in-process, gRPC and HTTP tests (the HTTP run is
//! bin/medledger/tests/decisions_http.rs): every rule of the documented
//! order, and their precedence.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use medledger_access::Interaction::{self, *};
use medledger_auth::Claims;
use medledger_consent::domain::consent::{ConsentRecord, parse_consent};
use medledger_consent::domain::decision::{Actor, Basis, Circumstances, Target, Verdict, decide};
use serde_json::{Value, json};

pub const NOW: i64 = 1_780_000_000; // 2026-05-28
const DAY: i64 = 86_400;

pub fn claims(who: &str, role: &str, scope: &str) -> Claims {
    Claims {
        iss: "medledger-dev".into(),
        sub: who.into(),
        aud: "medledger".into(),
        exp: NOW + 3600,
        iat: NOW,
        scope: scope.into(),
        role: role.into(),
        fhir_user: Some(who.into()),
        jti: String::new(),
        patient: None,
    }
}

/// A consent as stored: its id and its FHIR JSON.
#[derive(Clone)]
pub struct Stored {
    pub id: String,
    pub patient: String,
    pub json: Value,
}

impl Stored {
    pub fn record(&self) -> ConsentRecord {
        parse_consent(&self.id, &self.json).unwrap()
    }
}

pub fn consent(id: &str, patient: &str, status: &str, provision: Value) -> Stored {
    Stored {
        id: id.into(),
        patient: patient.into(),
        json: json!({"resourceType": "Consent", "status": status,
            "scope": {"coding": [{"code": "patient-privacy"}]},
            "patient": {"reference": patient}, "provision": provision}),
    }
}

fn permit_dr1() -> Stored {
    consent(
        "permit",
        "Patient/p1",
        "active",
        json!({"type": "permit",
        "actor": [{"reference": {"reference": "Practitioner/dr-1"}}]}),
    )
}

pub struct Case {
    pub name: &'static str,
    pub who: &'static str,
    pub role: &'static str,
    pub scope: &'static str,
    pub verified: bool,
    pub interaction: Interaction,
    pub rt: &'static str,
    pub owner: Option<&'static str>,
    pub custodian: Option<&'static str>,
    pub purpose: Option<&'static str>,
    pub break_glass: Option<&'static str>,
    pub consents: Vec<Stored>,
    pub now: i64,
    pub want: Result<Basis, &'static str>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        who: "Practitioner/dr-1",
        role: "practitioner",
        scope: "user/*.cruds",
        verified: true,
        interaction: Read,
        rt: "Observation",
        owner: Some("Patient/p1"),
        custodian: Some("Practitioner/dr-9"),
        purpose: None,
        break_glass: None,
        consents: Vec::new(),
        now: NOW,
        want: Err("no consent"),
    }
}

pub fn run(c: &Case) -> Verdict {
    let claims = claims(c.who, c.role, c.scope);
    decide(
        Actor {
            claims: &claims,
            verified_practitioner: c.verified,
        },
        Target {
            interaction: c.interaction,
            resource_type: c.rt,
            owner: c.owner,
            custodian: c.custodian,
            categories: None,
        },
        Circumstances {
            purpose: c.purpose,
            break_glass_reason: c.break_glass,
            now: c.now,
        },
        &c.consents.iter().map(Stored::record).collect::<Vec<_>>(),
    )
}

pub fn table() -> Vec<Case> {
    let deny_all = consent("deny", "Patient/p1", "active", json!({"type": "deny"}));
    let timeboxed = consent(
        "timeboxed",
        "Patient/p1",
        "active",
        json!({"type": "permit",
        "period": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
        "actor": [{"reference": {"reference": "Practitioner/dr-1"}}]}),
    );
    vec![
        Case {
            want: Err("no consent permits"),
            ..case("no consent: denied")
        },
        Case {
            consents: vec![permit_dr1()],
            want: Ok(Basis::Consent("Consent/permit".into())),
            ..case("consent permits a verified practitioner")
        },
        Case {
            consents: vec![permit_dr1(), deny_all.clone()],
            want: Err("denies"),
            ..case("deny overrides permit")
        },
        Case {
            consents: vec![timeboxed.clone()],
            now: NOW + 10 * DAY,
            want: Err("no consent permits"),
            ..case("expired consent")
        },
        Case {
            consents: vec![timeboxed.clone()],
            want: Ok(Basis::Consent("Consent/timeboxed".into())),
            ..case("time-boxed consent within its period")
        },
        Case {
            consents: vec![consent(
                "revoked",
                "Patient/p1",
                "inactive",
                json!({"type": "permit"}),
            )],
            want: Err("no consent permits"),
            ..case("revoked (inactive) consent")
        },
        Case {
            consents: vec![consent(
                "other",
                "Patient/p2",
                "active",
                json!({"type": "permit"}),
            )],
            want: Err("no consent permits"),
            ..case("consent of another patient")
        },
        Case {
            who: "Practitioner/dr-2",
            consents: vec![permit_dr1()],
            want: Err("no consent permits"),
            ..case("consent names another practitioner")
        },
        Case {
            scope: "user/Patient.rs",
            consents: vec![permit_dr1()],
            want: Err("scopes"),
            ..case("scope too narrow: other type")
        },
        Case {
            scope: "user/*.c",
            consents: vec![permit_dr1()],
            want: Err("scopes"),
            ..case("scope too narrow: other interaction")
        },
        Case {
            verified: false,
            consents: vec![permit_dr1()],
            want: Err("verified practitioners only"),
            ..case("unverified practitioner with consent")
        },
        Case {
            custodian: Some("Practitioner/dr-1"),
            want: Ok(Basis::Custodian),
            ..case("custodian reads without consent")
        },
        Case {
            custodian: Some("Practitioner/dr-1"),
            consents: vec![deny_all.clone()],
            want: Ok(Basis::Custodian),
            ..case("custodian keeps access despite a deny")
        },
        Case {
            interaction: Update,
            custodian: Some("Practitioner/dr-1"),
            want: Ok(Basis::Custodian),
            ..case("custodian updates")
        },
        Case {
            who: "Organization/lab-feed",
            role: "organization",
            scope: "system/*.cru",
            interaction: Update,
            custodian: Some("Organization/lab-feed"),
            want: Ok(Basis::Custodian),
            ..case("an organization feed updates what it wrote")
        },
        Case {
            who: "Organization/lab-feed",
            role: "organization",
            scope: "system/*.cru",
            interaction: Update,
            custodian: Some("Organization/other-feed"),
            want: Err("custodian"),
            ..case("an organization feed cannot change another writer's records")
        },
        Case {
            who: "Organization/lab-feed",
            role: "organization",
            scope: "system/*.cru",
            custodian: Some("Organization/lab-feed"),
            want: Err("consent"),
            ..case("an organization feed does not read what it wrote")
        },
        Case {
            interaction: Update,
            consents: vec![permit_dr1()],
            want: Err("custodian"),
            ..case("consent does not allow changing others' records")
        },
        Case {
            break_glass: Some("unconscious in ER"),
            want: Ok(Basis::BreakGlass),
            ..case("break-glass by a verified practitioner")
        },
        Case {
            break_glass: Some("unconscious in ER"),
            consents: vec![deny_all.clone()],
            want: Ok(Basis::BreakGlass),
            ..case("break-glass overrides a deny")
        },
        Case {
            break_glass: Some("unconscious in ER"),
            verified: false,
            want: Err("verified practitioner"),
            ..case("break-glass by an unverified practitioner")
        },
        Case {
            break_glass: Some("   "),
            want: Err("no consent permits"),
            ..case("break-glass without a reason")
        },
        Case {
            who: "Patient/p1",
            role: "patient",
            scope: "patient/*.rs",
            want: Ok(Basis::OwnRecords),
            ..case("patient reads own data")
        },
        Case {
            who: "Patient/p1",
            role: "patient",
            scope: "patient/*.rs",
            consents: vec![deny_all.clone()],
            want: Ok(Basis::OwnRecords),
            ..case("patient reads own data despite a deny")
        },
        Case {
            who: "Patient/p2",
            role: "patient",
            scope: "patient/*.rs",
            want: Err("scopes"),
            ..case("another patient (patient scope)")
        },
        Case {
            who: "Patient/p2",
            role: "patient",
            scope: "user/*.rs",
            want: Err("no consent permits"),
            ..case("another patient (user scope)")
        },
        Case {
            who: "Auditor/a1",
            role: "auditor",
            consents: vec![permit_dr1()],
            want: Err("no consent permits"),
            ..case("auditor reads clinical data")
        },
        Case {
            who: "Auditor/a1",
            role: "auditor",
            rt: "AuditEvent",
            want: Ok(Basis::AuditTrail),
            ..case("auditor reads a patient's audit trail")
        },
        Case {
            who: "Auditor/a1",
            role: "auditor",
            rt: "AuditEvent",
            interaction: Search,
            owner: None,
            want: Ok(Basis::AuditTrail),
            ..case("auditor searches the whole audit trail")
        },
        Case {
            rt: "AuditEvent",
            want: Err("no consent permits"),
            ..case("practitioner reads a patient's audit trail without consent")
        },
        Case {
            who: "Patient/p1",
            role: "patient",
            scope: "patient/*.rs",
            rt: "AuditEvent",
            want: Ok(Basis::OwnRecords),
            ..case("patient reads own audit trail")
        },
        Case {
            interaction: Create,
            custodian: None,
            want: Ok(Basis::NewRecord),
            ..case("practitioner creates a patient's record")
        },
        Case {
            interaction: Create,
            who: "Patient/p2",
            role: "patient",
            custodian: None,
            want: Err("custodian"),
            ..case("patient writes into another patient's compartment")
        },
        Case {
            owner: Some("Organization"),
            rt: "Practitioner",
            verified: false,
            want: Ok(Basis::SharedDirectory),
            ..case("directory data is shared among practitioners")
        },
        Case {
            owner: None,
            interaction: Search,
            want: Err("unknown patients"),
            ..case("search across patients")
        },
        Case {
            consents: vec![consent(
                "purpose",
                "Patient/p1",
                "active",
                json!({"type": "permit", "purpose": [{"code": "TREAT"}]}),
            )],
            purpose: Some("TREAT"),
            want: Ok(Basis::Consent("Consent/purpose".into())),
            ..case("purpose matches")
        },
        Case {
            consents: vec![consent(
                "purpose",
                "Patient/p1",
                "active",
                json!({"type": "permit", "purpose": [{"code": "TREAT"}]}),
            )],
            purpose: Some("HMARKT"),
            want: Err("no consent permits"),
            ..case("purpose does not match")
        },
        Case {
            consents: vec![consent(
                "nested",
                "Patient/p1",
                "active",
                json!({"type": "permit", "provision": [{"type": "deny", "class": [{"code": "Observation"}]}]}),
            )],
            want: Err("denies"),
            ..case("nested deny for the class")
        },
    ]
}
