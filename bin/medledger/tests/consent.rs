//! Patient consent end to end over HTTP against `medledger dev`: a practitioner who did not write
//! a record cannot read it (404, as if unknown) until an authority has verified them and the
//! patient's Consent permits it; revocation ends access for the next request; a deny wins over a
//! permit; break-glass needs a verified practitioner and a reason.

#![allow(clippy::unwrap_used, missing_docs)]

mod decisions;
mod support;

use decisions::{Client, parameters};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Dev, token};

fn consent(patient: &str, kind: &str, actor: Option<&str>) -> Value {
    let mut provision = json!({"type": kind});
    if let Some(a) = actor {
        provision["actor"] = json!([{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": a}}]);
    }
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision
    })
}

/// A dev server where dr-1 has written a patient and an observation.
struct Scene {
    dir: tempfile::TempDir,
    _dev: Dev,
    http: decisions::Http,
    patient_ref: String,
    obs: Value,
    oid: String,
}

impl Scene {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dev = Dev::start(dir.path()).await;
        let http = decisions::Http::new(dev.url(""));
        let mut scene = Self {
            dir,
            _dev: dev,
            http,
            patient_ref: String::new(),
            obs: Value::Null,
            oid: String::new(),
        };
        let dr1 = scene.as_("Practitioner/dr-1", "practitioner", "user/*.cruds");
        // dr-1 writes a patient and an observation.
        let r = dr1
            .call(
                Method::POST,
                "Patient",
                Some(&json!({"resourceType": "Patient", "name": [{"family": "Consenting"}]})),
                &[],
            )
            .await;
        assert_eq!(r.status(), 201);
        let pid = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let patient_ref = format!("Patient/{pid}");
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": patient_ref}, "valueQuantity": {"value": 72, "unit": "/min"}});
        let r = dr1.call(Method::POST, "Observation", Some(&obs), &[]).await;
        assert_eq!(r.status(), 201);
        let oid = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        scene.patient_ref = patient_ref;
        scene.obs = obs;
        scene.oid = oid;
        scene
    }

    fn as_(&self, sub: &str, role: &str, scope: &str) -> Client<'_> {
        Client {
            http: &self.http,
            token: token(self.dir.path(), sub, role, scope),
        }
    }

    fn patient(&self) -> Client<'_> {
        self.as_(&self.patient_ref, "patient", "patient/*.cruds")
    }

    fn obs_path(&self) -> String {
        format!("Observation/{}", self.oid)
    }

    /// The patient's Consent of `kind` naming `actor`; returns its id.
    async fn consent(&self, kind: &str, actor: Option<&str>) -> String {
        let r = self
            .patient()
            .call(
                Method::POST,
                "Consent",
                Some(&consent(&self.patient_ref, kind, actor)),
                &[],
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An authority verifies `who`.
    async fn verify(&self, who: &str) -> u16 {
        self.as_("Organization/board", "authority", "system/*.*")
            .status(
                Method::POST,
                "$verify-practitioner",
                Some(&verification(who)),
            )
            .await
    }
}

fn verification(who: &str) -> Value {
    parameters(json!([{"name": "practitioner", "valueReference": {"reference": who}}]))
}

#[tokio::test]
async fn a_verified_practitioner_the_patient_permits_reads_until_revoked_and_a_deny_wins() {
    let scene = Scene::new().await;
    let obs_path = scene.obs_path();
    let dr1 = scene.as_("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let dr2 = scene.as_("Practitioner/dr-2", "practitioner", "user/*.rs");
    let dr3 = scene.as_("Practitioner/dr-3", "practitioner", "user/*.rs");
    let patient = scene.patient();

    // Custodian and patient read; dr-2 sees nothing, exactly as for an unknown record.
    assert_eq!(dr1.status(Method::GET, &obs_path, None).await, 200);
    assert_eq!(patient.status(Method::GET, &obs_path, None).await, 200);
    let hidden = dr2.call(Method::GET, &obs_path, None, &[]).await;
    assert_eq!(hidden.status(), 404);
    let unknown = dr2
        .call(Method::GET, "Observation/no-such-id", None, &[])
        .await;
    assert_eq!(unknown.status(), 404);
    // No practitioner may change a record they did not write.
    let mut changed = scene.obs.clone();
    changed["id"] = json!(scene.oid);
    assert_eq!(
        scene
            .as_("Practitioner/dr-4", "practitioner", "user/*.cruds")
            .status(Method::PUT, &obs_path, Some(&changed))
            .await,
        403
    );

    // The patient permits dr-2. dr-2 is not verified yet: still nothing.
    let cid = scene.consent("permit", Some("Practitioner/dr-2")).await;
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 404);
    // Only an authority verifies, and only practitioners.
    assert_eq!(
        dr1.status(
            Method::POST,
            "$verify-practitioner",
            Some(&verification("Practitioner/dr-2"))
        )
        .await,
        403
    );
    assert_eq!(scene.verify("Patient/nobody").await, 422);
    assert_eq!(scene.verify("Practitioner/dr-2").await, 204);
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 200);
    // dr-3 (enrolled by its first request) is verified but named by no consent.
    assert_eq!(dr3.status(Method::GET, &obs_path, None).await, 404);
    assert_eq!(scene.verify("Practitioner/dr-3").await, 204);
    assert_eq!(dr3.status(Method::GET, &obs_path, None).await, 404);

    // Revocation ends access for the next request.
    assert_eq!(
        patient
            .status(Method::DELETE, &format!("Consent/{cid}"), None)
            .await,
        204
    );
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 404);
    let revoked: Value = patient
        .call(Method::GET, &format!("Consent/{cid}"), None, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["status"], "inactive");
    assert_eq!(revoked["meta"]["versionId"], "2");

    // A deny wins over a permit.
    scene.consent("permit", Some("Practitioner/dr-2")).await;
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 200);
    scene.consent("deny", None).await;
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 404);
    // The custodian and the patient keep access.
    assert_eq!(dr1.status(Method::GET, &obs_path, None).await, 200);
    assert_eq!(patient.status(Method::GET, &obs_path, None).await, 200);
}

#[tokio::test]
async fn the_patient_alone_writes_and_reads_their_consents() {
    let scene = Scene::new().await;
    let patient_ref = &scene.patient_ref;
    let patient = scene.patient();
    let dr2 = scene.as_("Practitioner/dr-2", "practitioner", "user/*.rs");
    let cid = scene.consent("permit", Some("Practitioner/dr-2")).await;

    // The patient reads and lists their consents; another patient and dr-2 do not.
    assert_eq!(
        patient
            .status(Method::GET, &format!("Consent/{cid}"), None)
            .await,
        200
    );
    let other = scene.as_("Patient/someone-else", "patient", "patient/*.cruds");
    assert_eq!(
        other
            .status(Method::GET, &format!("Consent/{cid}"), None)
            .await,
        404
    );
    let list: Value = patient
        .call(
            Method::GET,
            &format!("Consent?patient={patient_ref}"),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    // Only the patient writes their consents.
    assert_eq!(
        dr2.status(
            Method::POST,
            "Consent",
            Some(&consent(patient_ref, "permit", Some("Practitioner/dr-2")))
        )
        .await,
        403
    );
    assert_eq!(
        other
            .status(
                Method::POST,
                "Consent",
                Some(&consent(patient_ref, "permit", None))
            )
            .await,
        403
    );
    // A Consent that is not a privacy consent is refused, and nothing is stored.
    let mut research = consent(patient_ref, "permit", None);
    research["scope"]["coding"][0]["code"] = json!("research");
    assert_eq!(
        patient
            .status(Method::POST, "Consent", Some(&research))
            .await,
        422
    );
    let list: Value = patient
        .call(
            Method::GET,
            &format!("Consent?patient={patient_ref}"),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1, "the refused Consent was not stored");

    // Consents are not records: ingest does not take them in a Bundle either.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": consent(patient_ref, "permit", None), "request": {"method": "POST", "url": "Consent"}}
    ]});
    assert_eq!(patient.status(Method::POST, "", Some(&bundle)).await, 400);
}

#[tokio::test]
async fn break_glass_needs_a_verified_practitioner_and_a_reason_and_ends_with_the_role() {
    let scene = Scene::new().await;
    let obs_path = scene.obs_path();
    let dr1 = scene.as_("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let dr3 = scene.as_("Practitioner/dr-3", "practitioner", "user/*.rs");
    let admin = scene.as_("Organization/it", "admin", "system/*.*");
    assert_eq!(dr3.status(Method::GET, &obs_path, None).await, 404);
    assert_eq!(scene.verify("Practitioner/dr-3").await, 204);
    // Even where the patient's deny is in force.
    scene.consent("deny", None).await;

    // Break-glass: a verified practitioner with a reason reads; without verification, no.
    let glass = [(
        "x-break-glass-reason",
        "unconscious in the emergency department",
    )];
    assert_eq!(dr3.status(Method::GET, &obs_path, None).await, 404);
    assert_eq!(
        dr3.call(Method::GET, &obs_path, None, &glass)
            .await
            .status(),
        200
    );
    let unverified = scene.as_("Practitioner/dr-5", "practitioner", "user/*.rs");
    assert_eq!(
        unverified
            .call(Method::GET, &obs_path, None, &glass)
            .await
            .status(),
        404
    );

    // Roles come from the store, assigned by an admin: demoting dr-3 ends break-glass.
    let role = parameters(json!([
        {"name": "account", "valueReference": {"reference": "Practitioner/dr-3"}},
        {"name": "role", "valueCode": "auditor"}
    ]));
    assert_eq!(
        dr1.status(Method::POST, "$set-role", Some(&role)).await,
        403
    );
    assert_eq!(
        admin.status(Method::POST, "$set-role", Some(&role)).await,
        204
    );
    assert_eq!(
        dr3.call(Method::GET, &obs_path, None, &glass)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn an_approved_access_request_grants_time_boxed_access_that_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let dev = Dev::start_with(dir.path(), &["--test-clock-file", clock.to_str().unwrap()]).await;
    let http = decisions::Http::new(dev.url(""));
    decisions::access::access_request_flow(&http, |s, r, sc| token(dir.path(), s, r, sc), &clock)
        .await;
}
