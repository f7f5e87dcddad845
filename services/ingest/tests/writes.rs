//! The ingest domain against the real embedded backends (SQLite, local blockstore, file master key).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use axum::http::StatusCode;
use medledger_access::testing::ScopePolicy;
use medledger_auth::Caller;
use medledger_blobstore::LocalBlockstore;
use medledger_error::Categorized;
use medledger_ingest::{Ingest, IngestError, Limits};
use medledger_storage_api::RecordIndex;
use medledger_storage_sqlx::SqliteStore;
use medledger_test_utils::{EmbeddedStack, tokens};
use serde_json::{Value, json};

struct Fixture {
    _stack: EmbeddedStack,
    ingest: Ingest,
    store: Arc<SqliteStore>,
    blocks: Arc<LocalBlockstore>,
}

async fn fixture() -> Fixture {
    let stack = EmbeddedStack::open().await;
    let ingest = Ingest::new(
        stack.store.clone(),
        stack.store.clone(),
        stack.blocks.clone(),
        stack.keys.clone(),
        Arc::new(ScopePolicy),
        stack.audit.clone(),
        Limits::default(),
    );
    Fixture {
        store: stack.store.clone(),
        blocks: stack.blocks.clone(),
        _stack: stack,
        ingest,
    }
}

fn doctor() -> Caller {
    tokens::caller("Practitioner/dr-1", "practitioner", "user/*.cruds")
}

/// The HTTP status the edge answers a refused write with.
trait Status {
    fn status(&self) -> StatusCode;
}

impl Status for IngestError {
    fn status(&self) -> StatusCode {
        medledger_http::status_of(self.category()).0
    }
}

impl Fixture {
    /// A Bundle through the domain, its outcome rendered as the HTTP edge renders it.
    async fn bundle(&self, caller: &Caller, bundle: Value) -> Result<Value, IngestError> {
        let out = self.ingest.bundle(caller, bundle).await?;
        Ok(medledger_ingest::http::response_bundle(&out))
    }
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "gender": "female"})
}

fn obs(subject: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": subject}})
}

#[tokio::test]
async fn a_failed_transaction_stores_nothing_and_removes_its_blobs() {
    let f = fixture().await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": obs("urn:uuid:p"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "not-a-status", "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    let e = f.bundle(&doctor(), bundle).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e.diagnostics().starts_with("entry 2:"),
        "{}",
        e.diagnostics()
    );
    assert!(f.store.referenced_cids().await.unwrap().is_empty());
    assert!(
        f.blocks.list_blocks().unwrap().is_empty(),
        "blobs of the failed transaction remain"
    );
    // Nor are its versions in the audit trail: nothing was written. The trail holds the
    // refusal of the Bundle alone (recorded at the domain boundary, as every refusal is).
    let trail = audit_trail(&f).await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["outcome"], "4");
    assert_eq!(trail[0]["entity"][0]["what"]["reference"], "Bundle");
}

async fn audit_trail(f: &Fixture) -> Vec<serde_json::Value> {
    use medledger_storage_api::{AuditFilter, AuditStore};
    f.store
        .audit_events(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.resource).unwrap())
        .collect()
}

#[tokio::test]
async fn transactions_rewrite_urn_references_and_assign_owners() {
    let f = fixture().await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs("urn:uuid:p"), "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:p", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Organization", "id": "org-1", "name": "X"}, "request": {"method": "PUT", "url": "/Organization/org-1"}}
    ]});
    let out = f.bundle(&doctor(), bundle).await.unwrap();
    let loc = |i: usize| {
        out["entry"][i]["response"]["location"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (obs_loc, pat_loc, org_loc) = (loc(0), loc(1), loc(2));
    assert!(
        org_loc.starts_with("Organization/org-1/_history/1"),
        "{org_loc}"
    );
    let pat_id = pat_loc.split('/').nth(1).unwrap();
    let obs_id = obs_loc.split('/').nth(1).unwrap();
    let head = f.store.head("Observation", obs_id).await.unwrap().unwrap();
    assert_eq!(head.owner, format!("Patient/{pat_id}"));
    assert_eq!(
        f.store
            .head("Patient", pat_id)
            .await
            .unwrap()
            .unwrap()
            .owner,
        format!("Patient/{pat_id}")
    );
    assert_eq!(
        f.store
            .head("Organization", "org-1")
            .await
            .unwrap()
            .unwrap()
            .owner,
        "Organization"
    );
    // One AuditEvent per stored version, committed with it: the patient's two name them,
    // the directory entry names no patient.
    let mut trail = audit_trail(&f).await;
    trail.sort_by_key(|e| e["entity"].to_string());
    let about = |e: &serde_json::Value| {
        e["entity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["what"]["reference"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let mut seen: Vec<Vec<String>> = trail.iter().map(about).collect();
    seen.sort();
    let mut want = vec![
        vec!["Organization/org-1/_history/1".to_owned()],
        vec![format!("Patient/{pat_id}"), format!("{obs_loc}")],
        vec![format!("Patient/{pat_id}"), format!("{pat_loc}")],
    ];
    want.sort();
    assert_eq!(seen, want);
    assert!(trail.iter().all(|e| e["action"] == "C"
        && e["outcome"] == "0"
        && e["agent"][0]["who"]["reference"] == "Practitioner/dr-1"));
}

#[tokio::test]
async fn update_and_delete_rules() {
    let f = fixture().await;
    let c = doctor();
    let p1 = f.ingest.create(&c, "Patient", patient()).await.unwrap();
    let p2 = f.ingest.create(&c, "Patient", patient()).await.unwrap();
    let o = f
        .ingest
        .create(&c, "Observation", obs(&format!("Patient/{}", p1.id)))
        .await
        .unwrap();
    let mut body = o.resource.clone().unwrap();

    let bad = obs("Patient/Jane Doe 1970-01-01");
    assert_eq!(
        f.ingest
            .create(&c, "Observation", bad)
            .await
            .unwrap_err()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    body["subject"]["reference"] = json!(format!("Patient/{}", p2.id));
    let e = f
        .ingest
        .update(&c, "Observation", &o.id, body.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "owner change must be refused"
    );

    body["subject"]["reference"] = json!(format!("Patient/{}", p1.id));
    let e = f
        .ingest
        .update(&c, "Observation", &o.id, body.clone(), Some(7))
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::PRECONDITION_FAILED);
    let u = f
        .ingest
        .update(&c, "Observation", &o.id, body.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!((u.version, u.created), (2, false));

    let mut no_id = body.clone();
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(
        f.ingest
            .update(&c, "Observation", &o.id, no_id, None)
            .await
            .unwrap_err()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        f.ingest
            .update(&c, "Observation", "bad id!", body, None)
            .await
            .unwrap_err()
            .status(),
        StatusCode::BAD_REQUEST
    );

    assert!(
        f.ingest
            .delete(&c, "Observation", "nope", None)
            .await
            .unwrap()
            .is_none(),
        "deleting an unknown id stores nothing"
    );
    assert!(f.store.head("Observation", "nope").await.unwrap().is_none());
    assert_eq!(
        f.ingest
            .delete(&c, "Observation", &o.id, None)
            .await
            .unwrap()
            .unwrap()
            .version,
        3
    );
    assert!(
        f.ingest
            .delete(&c, "Observation", &o.id, None)
            .await
            .unwrap()
            .is_none(),
        "deleting twice adds no version"
    );
    assert!(
        f.store
            .head("Observation", &o.id)
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
}

#[tokio::test]
async fn a_resource_may_appear_once_per_transaction() {
    let f = fixture().await;
    let put = |g: &str| json!({"resource": {"resourceType": "Patient", "id": "p", "gender": g}, "request": {"method": "PUT", "url": "Patient/p"}});
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [put("male"), put("female")]});
    let e = f.bundle(&doctor(), bundle).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(f.store.head("Patient", "p").await.unwrap().is_none());
}

#[tokio::test]
async fn a_batch_never_stores_an_entry_whose_referenced_entry_failed() {
    let f = fixture().await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": obs("urn:uuid:bad"), "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:bad", "resource": {"resourceType": "Patient", "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": obs("urn:uuid:good"), "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:good", "resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    ]});
    let out = f.bundle(&doctor(), bundle).await.unwrap();
    let status = |i: usize| {
        out["entry"][i]["response"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(status(0).starts_with("400"), "{}", status(0));
    assert!(status(1).starts_with("422"), "{}", status(1));
    assert_eq!(status(2), "201 Created");
    assert_eq!(status(3), "201 Created");
    // Only the two good entries are stored, and no blob of the refused ones remains.
    assert_eq!(f.store.referenced_cids().await.unwrap().len(), 2);
    assert_eq!(f.blocks.list_blocks().unwrap().len(), 2);
}

/// `ifNoneMatch: *` on a PUT entry creates the record with that id, and fails the transaction
/// (409, nothing stored) once the record exists.
#[tokio::test]
async fn a_put_with_if_none_match_creates_only_when_absent() {
    let f = fixture().await;
    let bundle = |family: &str| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p-once", "name": [{"family": family}]},
             "request": {"method": "PUT", "url": "Patient/p-once", "ifNoneMatch": "*"}},
            {"resource": obs("Patient/p-once"), "request": {"method": "POST", "url": "Observation"}}
        ]})
    };
    let out = f.bundle(&doctor(), bundle("First")).await.unwrap();
    assert_eq!(out["entry"][0]["response"]["status"], "201 Created");
    let e = f.bundle(&doctor(), bundle("Second")).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::CONFLICT);
    let head = f.store.head("Patient", "p-once").await.unwrap().unwrap();
    assert_eq!(head.version, 1, "the first stays");
    let other = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p-x"},
         "request": {"method": "PUT", "url": "Patient/p-x", "ifNoneMatch": "W/\"1\""}}]});
    let e = f.bundle(&doctor(), other).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}
