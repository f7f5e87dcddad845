//! The audit trail end to end over HTTP against `medledger dev`: every write, read, refusal,
//! break-glass read and consent change leaves an AuditEvent; a patient lists exactly the events
//! about them, an auditor all of them, a practitioner none; events cannot be written by
//! clients; and each event reaches the ledger as a leaf whose commitment matches it.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dev, token};

struct As<'a> {
    dev: &'a Dev,
    token: String,
}

impl As<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.dev
            .request_as(&self.token, method, path, body, headers)
            .await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None, headers).await
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    /// The AuditEvents of a search, oldest first.
    async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("AuditEvent{query}"), &[]).await;
        assert_eq!(r.status(), 200, "AuditEvent{query}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["type"], "searchset");
        let mut events: Vec<Value> = b["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e["resource"].clone())
            .collect();
        events.reverse();
        events
    }
}

fn who(e: &Value) -> &str {
    e["agent"][0]["who"]["reference"]
        .as_str()
        .unwrap_or_default()
}

fn what(e: &Value) -> Vec<&str> {
    e["entity"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["what"]["reference"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn subtype(e: &Value) -> &str {
    e["subtype"][0]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_access_is_audited_and_each_reader_sees_exactly_their_share() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let as_ = |sub: &str, role: &str, scope: &str| As {
        dev: &dev,
        token: token(dir.path(), sub, role, scope),
    };
    let dr1 = as_("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let dr2 = as_("Practitioner/dr-2", "practitioner", "user/*.rs");
    let dr3 = as_("Practitioner/dr-3", "practitioner", "user/*.rs");
    let authority = as_("Organization/board", "authority", "system/*.*");
    let auditor = as_("Organization/regulator", "auditor", "user/AuditEvent.rs");

    let r = dr1
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "female"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let pid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patient_ref = format!("Patient/{pid}");
    let r = dr1
        .post(
            "Observation",
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
                "subject": {"reference": patient_ref}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let obs = format!(
        "Observation/{}",
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap()
    );
    let patient = as_(&patient_ref, "patient", "patient/*.cruds");

    // The patient reads; dr-2 is refused (404, as if unknown); dr-3, verified, breaks the glass.
    assert_eq!(patient.get(&obs, &[]).await.status(), 200);
    assert_eq!(dr2.get(&obs, &[]).await.status(), 404);
    // dr-3's first request enrols the account (and is refused too), then an authority
    // verifies it.
    assert_eq!(dr3.get(&obs, &[]).await.status(), 404);
    let verify = json!({"resourceType": "Parameters", "parameter": [
        {"name": "practitioner", "valueReference": {"reference": "Practitioner/dr-3"}}]});
    assert_eq!(
        authority
            .post("$verify-practitioner", &verify)
            .await
            .status(),
        204
    );
    let reason = "arrived unconscious";
    assert_eq!(
        dr3.get(
            &obs,
            &[
                ("x-break-glass-reason", reason),
                ("x-purpose-of-use", "ETREAT")
            ]
        )
        .await
        .status(),
        200
    );
    // A consent change.
    let consent = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient_ref}, "provision": {"type": "deny"}});
    assert_eq!(patient.post("Consent", &consent).await.status(), 201);
    // Another patient's record, which must not show up in this patient's trail.
    let r = dr1
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "male"}),
        )
        .await;
    let other_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = as_(&format!("Patient/{other_id}"), "patient", "patient/*.cruds");

    // The patient's trail: everything about them, in order, refusals and the emergency included.
    let trail = patient.audit("").await;
    let seen: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|e| (who(e), subtype(e), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("Practitioner/dr-1", "create", "0"),
            ("Practitioner/dr-1", "create", "0"),
            (patient_ref.as_str(), "read", "0"),
            ("Practitioner/dr-2", "read", "4"),
            ("Practitioner/dr-3", "read", "4"),
            ("Practitioner/dr-3", "read", "0"),
            (patient_ref.as_str(), "create", "0"),
        ],
        "{trail:#?}"
    );
    assert!(
        trail
            .iter()
            .all(|e| what(e).contains(&patient_ref.as_str()))
    );
    let refused = &trail[3];
    assert!(what(refused)[1].starts_with(&obs), "{refused}");
    assert_eq!(
        refused["outcomeDesc"],
        "access denied by the consent decision"
    );
    let glass = &trail[5];
    let purposes: Vec<&str> = glass["purposeOfEvent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(purposes, ["ETREAT", "BTG"]);
    assert_eq!(glass["entity"][0]["detail"][0]["valueString"], reason);
    // The same with an explicit patient; listing it was itself audited (it is the newest now).
    let again = patient.audit(&format!("?patient={patient_ref}")).await;
    assert_eq!(again.len(), trail.len() + 1);
    assert_eq!(subtype(again.last().unwrap()), "search-type");

    // Another patient sees none of it, neither by default nor by asking.
    assert!(
        other
            .audit(&format!("?patient={patient_ref}"))
            .await
            .is_empty()
    );
    let theirs = other.audit("").await;
    assert!(
        theirs
            .iter()
            .all(|e| !what(e).contains(&patient_ref.as_str())),
        "{theirs:#?}"
    );
    assert!(
        !theirs.is_empty(),
        "their own record's creation is theirs to see"
    );
    // A practitioner without the patient's consent sees nothing either, not even by id.
    assert!(
        dr1.audit(&format!("?patient={patient_ref}"))
            .await
            .is_empty()
    );
    let one = trail[0]["id"].as_str().unwrap();
    assert_eq!(
        dr1.get(&format!("AuditEvent/{one}"), &[]).await.status(),
        404
    );
    assert_eq!(
        patient
            .get(&format!("AuditEvent/{one}"), &[])
            .await
            .status(),
        200
    );

    // The auditor sees everyone's, and can narrow by agent.
    let all = auditor.audit("?_count=1000").await;
    assert!(all.len() > again.len());
    assert!(all.iter().any(|e| what(e).contains(&patient_ref.as_str())));
    assert!(
        all.iter()
            .any(|e| what(e).contains(&format!("Patient/{other_id}").as_str()))
    );
    let by_dr2 = auditor.audit("?agent=Practitioner/dr-2").await;
    assert!(!by_dr2.is_empty());
    assert!(by_dr2.iter().all(|e| who(e) == "Practitioner/dr-2"));
    assert_eq!(
        auditor.get("AuditEvent?color=blue", &[]).await.status(),
        400
    );
    // Nor may an auditor read clinical data.
    assert_eq!(
        as_("Organization/regulator", "auditor", "user/*.rs")
            .get(&obs, &[])
            .await
            .status(),
        404
    );

    // The CapabilityStatement says so.
    let meta: Value = dev
        .http
        .get(dev.url("metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit_caps = meta["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "AuditEvent")
        .unwrap();
    assert_eq!(
        audit_caps["interaction"],
        json!([{"code": "read"}, {"code": "search-type"}])
    );
    // Nobody writes AuditEvents.
    let forged = json!({"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": true}], "source": {"observer": {"display": "x"}}});
    assert_eq!(dr1.post("AuditEvent", &forged).await.status(), 405);

    // Every stored event reaches the ledger, as a leaf committing to exactly its bytes.
    let pool = dev.db().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        let leaves: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_leaves WHERE kind = 3")
            .fetch_one(&pool)
            .await
            .unwrap();
        if rows == leaves {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} audit events but {leaves} audit leaves"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    use medledger_storage_api::AuditStore;
    let store = medledger_storage_sqlx::SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let row = store.audit_event(one).await.unwrap().unwrap();
    let leaf: Vec<u8> = sqlx::query_scalar("SELECT leaf FROM ledger_leaves WHERE subject = ?")
        .bind(format!("AuditEvent/{one}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    let leaf = medledger_ledger::AuditLeaf::decode(&leaf).unwrap();
    assert!(medledger_audit::matches_commitment(&row, &leaf.commitment));
    let mut edited = row.clone();
    edited.resource = edited
        .resource
        .iter()
        .map(|&b| if b == b'0' { b'1' } else { b })
        .collect();
    assert!(!medledger_audit::matches_commitment(
        &edited,
        &leaf.commitment
    ));
}
