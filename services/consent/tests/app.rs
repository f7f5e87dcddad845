//! The consent service's complete router (`Service::app`: the shell and the Consent, role and
//! access-request routes), driven in process with `oneshot` on the embedded backends.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use medledger_consent::{Enrolment, Ports, Service};
use medledger_storage_api::{AccessRequestStore, RecordIndex, VersionRow, VersionWrite};
use medledger_test_utils::{EmbeddedStack, TestShell, call};
use serde_json::{Value, json};

struct App {
    stack: EmbeddedStack,
    shell: TestShell,
    app: Router,
}

async fn app() -> App {
    let stack = EmbeddedStack::open().await;
    let shell = TestShell::new();
    let service = Service::new(
        Ports {
            store: stack.store.clone(),
            requests: stack.store.clone(),
            registry: stack.store.clone(),
            records: stack.store.clone(),
            audit: stack.audit.clone(),
            clock: Arc::new(medledger_auth::unix_now),
        },
        Enrolment::FromTokens,
    );
    App {
        app: service.app(&shell.shell),
        stack,
        shell,
    }
}

impl App {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes());
        call(&self.app, method, uri, Some(token), bytes.as_deref()).await
    }

    /// Puts `Patient/{id}` in the record index, as a write through ingest would.
    async fn patient_exists(&self, id: &str) {
        let row = VersionRow {
            resource_type: "Patient".into(),
            id: id.into(),
            version: 1,
            cid: Some("bafkreipatient".into()),
            wrapped_key: vec![1],
            owner: format!("Patient/{id}"),
            commitment: Some([1; 32]),
            deleted: false,
            last_updated: "2026-12-03T00:00:00.000Z".into(),
            actor: "Practitioner/dr-1".into(),
        };
        self.stack
            .store
            .commit(
                &[VersionWrite {
                    row,
                    expected: None,
                    tags: Vec::new(),
                    unless: None,
                }],
                &[],
                &[],
            )
            .await
            .unwrap();
    }
}

fn consent(patient: &str) -> Value {
    json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": "Practitioner/dr-2"}}]}})
}

#[tokio::test]
async fn a_patient_grants_reads_and_searches_their_consents() {
    let a = app().await;
    let me = a.shell.token("Patient/p1", "patient", "patient/*.cruds");
    let (status, created) = a
        .send(
            Method::POST,
            "/fhir/Consent",
            &me,
            Some(&consent("Patient/p1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, read) = a
        .send(Method::GET, &format!("/fhir/Consent/{id}"), &me, None)
        .await;
    assert_eq!((status, read["id"].as_str()), (StatusCode::OK, Some(id)));
    let (status, found) = a
        .send(Method::GET, "/fhir/Consent?patient=Patient/p1", &me, None)
        .await;
    assert_eq!((status, &found["total"]), (StatusCode::OK, &json!(1)));
    // Someone else's consent answers like an unknown one.
    let other = a.shell.token("Patient/p2", "patient", "patient/*.cruds");
    let (status, _) = a
        .send(Method::GET, &format!("/fhir/Consent/{id}"), &other, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_ids_and_undecidable_requests_are_refused_and_nothing_is_stored() {
    let a = app().await;
    let doctor = a
        .shell
        .token("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let mut body = consent("Patient/p1");
    body["id"] = json!("a b");
    let (status, answer) = a
        .send(Method::PUT, "/fhir/Consent/a%20b", &doctor, Some(&body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let end = time_of(medledger_auth::unix_now() + 30 * 86_400);
    let ask = json!({"resourceType": "Parameters", "parameter": [
        {"name": "purpose", "valueCode": "TREAT"},
        {"name": "end", "valueDateTime": end}]});
    let (status, answer) = a
        .send(
            Method::POST,
            "/fhir/Patient/nobody/$request-access",
            &doctor,
            Some(&ask),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = a
        .send(
            Method::POST,
            "/fhir/Patient/a%20b/$request-access",
            &doctor,
            Some(&ask),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        a.stack
            .store
            .requests_for("Patient/nobody")
            .await
            .unwrap()
            .is_empty()
    );
    // Once the patient exists, the same request is kept for them to decide.
    a.patient_exists("nobody").await;
    let (status, task) = a
        .send(
            Method::POST,
            "/fhir/Patient/nobody/$request-access",
            &doctor,
            Some(&ask),
        )
        .await;
    assert_eq!(
        (status, &task["resourceType"]),
        (StatusCode::CREATED, &json!("Task"))
    );
    assert_eq!(
        a.stack
            .store
            .requests_for("Patient/nobody")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn roles_are_an_admins_and_every_refusal_is_an_operation_outcome() {
    let a = app().await;
    let doctor = a
        .shell
        .token("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let set = json!({"resourceType": "Parameters", "parameter": [
        {"name": "account", "valueReference": {"reference": "Practitioner/dr-9"}},
        {"name": "role", "valueCode": "admin"}]});
    let (status, body) = a
        .send(Method::POST, "/fhir/$set-role", &doctor, Some(&set))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, _) = call(&a.app, Method::GET, "/fhir/Consent?patient=p1", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = a
        .send(
            Method::POST,
            "/fhir/$set-role",
            &doctor,
            Some(&json!({"resourceType": "Patient"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Unix seconds as an RFC 3339 date-time.
fn time_of(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
