//! The ingest service's complete router (`Service::app`: the shell and the write routes),
//! driven in process with `oneshot` on the embedded backends.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use medledger_access::testing::ScopePolicy;
use medledger_ingest::{Config, Ports, Service};
use medledger_storage_api::RecordIndex;
use medledger_test_utils::{EmbeddedStack, TestShell, call, tokens};
use serde_json::{Value, json};

struct App {
    stack: EmbeddedStack,
    app: Router,
    token: String,
}

async fn app() -> App {
    let stack = EmbeddedStack::open().await;
    let shell = TestShell::new();
    let service = Service::start(
        Ports {
            index: stack.store.clone(),
            search: stack.store.clone(),
            blobs: stack.blocks.clone(),
            keys: stack.keys.clone(),
            policy: Arc::new(ScopePolicy),
            audit: stack.audit.clone(),
            messages: stack.store.clone(),
            feed: Arc::new(NoFeed),
        },
        &Config::default(),
    )
    .await
    .unwrap();
    let token = shell.token("Practitioner/dr-1", "practitioner", "user/*.cruds");
    App {
        app: service.app(&shell.shell),
        stack,
        token,
    }
}

/// MLLP is off in these tests, so no feed ever writes.
struct NoFeed;

#[async_trait::async_trait]
impl medledger_ingest::mllp::FeedCredential for NoFeed {
    async fn caller(&self) -> Result<medledger_auth::Caller, medledger_error::Failure> {
        Ok(tokens::caller("Organization/none", "organization", ""))
    }
}

impl App {
    async fn send(&self, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
        call(
            &self.app,
            method,
            uri,
            Some(&self.token),
            Some(body.as_bytes()),
        )
        .await
    }
}

fn outcome(body: &Value) -> &str {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["diagnostics"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_create_is_answered_with_its_version_and_stored_encrypted() {
    let a = app().await;
    let (status, body) = a
        .send(
            Method::POST,
            "/fhir/Patient",
            r#"{"resourceType":"Patient","gender":"female"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["meta"]["versionId"], "1");
    let id = body["id"].as_str().unwrap();
    let head = a.stack.store.head("Patient", id).await.unwrap().unwrap();
    assert_eq!(
        (head.version, head.owner.as_str()),
        (1, &*format!("Patient/{id}"))
    );
}

#[tokio::test]
async fn the_shell_authenticates_limits_and_answers_operation_outcomes() {
    let a = app().await;
    let (status, body) = call(
        &a.app,
        Method::POST,
        "/fhir/Patient",
        None,
        Some(br#"{"resourceType":"Patient"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    outcome(&body);
    let (status, body) = call(&a.app, Method::GET, "/fhir/metadata", None, None).await;
    assert_eq!(
        (status, &body["resourceType"]),
        (StatusCode::OK, &json!("CapabilityStatement"))
    );
    let (status, _) = call(&a.app, Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = a.send(Method::POST, "/fhir/no/such/path", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    outcome(&body);
    let (status, body) = a
        .send(
            Method::POST,
            "/fhir/AuditEvent",
            r#"{"resourceType":"AuditEvent"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, _) = a
        .send(
            Method::POST,
            "/fhir/Consent",
            r#"{"resourceType":"Consent"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let a = app().await;
    for twice in [
        r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
        r#"{"resourceType":"Patient","resourceType":"Observation"}"#,
    ] {
        let (status, body) = a.send(Method::POST, "/fhir/Patient", twice).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(outcome(&body).contains("appears twice"), "{body}");
    }
    let obs = |reference: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": reference}})
        .to_string()
    };
    let (status, _) = a
        .send(Method::POST, "/fhir/Observation", &obs("Patient/.."))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let shared = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let (status, body) = a.send(Method::POST, "/fhir", &shared.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(outcome(&body).starts_with("entry 1:"), "{body}");
    assert!(a.stack.store.referenced_cids().await.unwrap().is_empty());
}

#[tokio::test]
async fn writes_whose_if_match_names_another_version_change_nothing() {
    let a = app().await;
    let (_, created) = a
        .send(
            Method::POST,
            "/fhir/Patient",
            r#"{"resourceType":"Patient"}"#,
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let uri = format!("/fhir/Patient/{id}");
    let req = |method: Method, tag: &str| {
        let mut r = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {}", a.token))
            .header("if-match", tag)
            .header("content-type", "application/fhir+json");
        r = r.header("x-test", "1");
        r.body(axum::body::Body::from(
            json!({"resourceType": "Patient", "id": id}).to_string(),
        ))
        .unwrap()
    };
    use tower::ServiceExt;
    let put = a
        .app
        .clone()
        .oneshot(req(Method::PUT, "W/\"7\""))
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::PRECONDITION_FAILED);
    let delete = a
        .app
        .clone()
        .oneshot(req(Method::DELETE, "W/\"7\""))
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::PRECONDITION_FAILED);
    let head = a.stack.store.head("Patient", id).await.unwrap().unwrap();
    assert_eq!((head.version, head.deleted), (1, false));
    let delete = a
        .app
        .clone()
        .oneshot(req(Method::DELETE, "W/\"1\""))
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert!(
        a.stack
            .store
            .head("Patient", id)
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
}

#[tokio::test]
async fn a_batch_is_answered_entry_by_entry() {
    let a = app().await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "DELETE", "url": "Patient/never-was"}}
    ]});
    let (status, body) = a.send(Method::POST, "/fhir", &batch.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["type"], "batch-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201 Created", "422 Unprocessable Entity", "204 No Content"]
    );
    assert_eq!(
        body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
}
