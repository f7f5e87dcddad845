//! The query service's complete router (`Service::app`: the shell and the read routes), driven
//! in process with `oneshot`, on records written through ingest's domain and logged as the
//! ledger writer logs them.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use medledger_access::testing::ScopePolicy;
use medledger_ledger::events::{record_event, record_leaf};
use medledger_query::{Ports, Service, Settings};
use medledger_storage_api::{LedgerStore, RecordIndex};
use medledger_test_utils::{EmbeddedStack, TestShell, call, tokens};
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
            index: stack.store.clone(),
            blobs: stack.blocks.clone(),
            keys: stack.keys.clone(),
            ledger: stack.store.clone(),
            policy: Arc::new(ScopePolicy),
            audit: stack.audit.clone(),
        },
        Settings {
            ledger_wait: std::time::Duration::from_millis(100),
            verify_wait: std::time::Duration::from_millis(100),
            ..Settings::default()
        },
    );
    App {
        app: service.app(&shell.shell),
        stack,
        shell,
    }
}

impl App {
    /// A record written through ingest's domain; with `logged`, its leaf appended as the ledger
    /// writer would.
    async fn write(&self, resource: Value, logged: bool) -> String {
        let ingest = medledger_ingest::Ingest::new(
            self.stack.store.clone(),
            self.stack.blocks.clone(),
            self.stack.keys.clone(),
            Arc::new(ScopePolicy),
            self.stack.audit.clone(),
            medledger_ingest::Limits::default(),
        );
        let rt = resource["resourceType"].as_str().unwrap().to_owned();
        let doctor = tokens::caller("Practitioner/dr-1", "practitioner", "user/*.cruds");
        let o = ingest.create(&doctor, &rt, resource).await.unwrap();
        if logged {
            let row = self
                .stack
                .store
                .version(&rt, &o.id, o.version)
                .await
                .unwrap()
                .unwrap();
            let leaf = record_leaf(&record_event(&row, "e".into(), "p".into(), 0)).unwrap();
            self.stack.store.append_leaves(&[leaf]).await.unwrap();
        }
        o.id
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        call(&self.app, Method::GET, uri, token, None).await
    }

    fn token(&self, scope: &str) -> String {
        self.shell.token("Practitioner/dr-1", "practitioner", scope)
    }
}

#[tokio::test]
async fn a_logged_version_reads_back_verified_and_its_read_is_audited() {
    let a = app().await;
    let id = a
        .write(json!({"resourceType": "Patient", "gender": "female"}), true)
        .await;
    let token = a.token("user/*.rs");
    let (status, body) = a.get(&format!("/fhir/Patient/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["gender"].as_str(), body["id"].as_str()),
        (Some("female"), Some(&*id))
    );
    let (status, body) = a
        .get(&format!("/fhir/Patient/{id}/_history/1"), Some(&token))
        .await;
    assert_eq!(
        (status, &body["meta"]["versionId"]),
        (StatusCode::OK, &json!("1"))
    );
    let trail = a
        .stack
        .audit
        .list(&medledger_storage_api::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let reads = trail
        .iter()
        .filter(|r| {
            let e: Value = serde_json::from_slice(&r.resource).unwrap();
            e["action"] == "R" && e["outcome"] == "0"
        })
        .count();
    assert_eq!(reads, 2, "each read leaves an AuditEvent");
}

#[tokio::test]
async fn refusals_are_operation_outcomes_with_the_right_status() {
    let a = app().await;
    let id = a.write(json!({"resourceType": "Patient"}), true).await;
    let token = a.token("user/*.rs");
    let (status, body) = a.get(&format!("/fhir/Patient/{id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = a
        .get(
            &format!("/fhir/Patient/{id}"),
            Some(&a.token("user/Observation.rs")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = a.get("/fhir/Patient/unknown", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, _) = a
        .get(&format!("/fhir/Patient/{id}/_history/x"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = a.get("/fhir/AuditEvent?nope=1", Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn what_is_not_committed_yet_is_503_with_retry_after() {
    let a = app().await;
    let id = a.write(json!({"resourceType": "Patient"}), false).await;
    let token = a.token("user/*.rs");
    let resp = {
        use tower::ServiceExt;
        a.app
            .clone()
            .oneshot(
                axum::http::Request::get(format!("/fhir/Patient/{id}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    };
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    // Logged but without a tree head on chain: no proof yet.
    let logged = a.write(json!({"resourceType": "Patient"}), true).await;
    let (status, _) = a
        .get(
            &format!("/fhir/Patient/{logged}/_history/1/$verify"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
