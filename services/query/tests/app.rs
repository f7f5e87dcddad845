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
            search: stack.store.clone(),
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

fn observation(patient: &str, code: &str, when: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": when,
    })
}

#[tokio::test]
async fn search_finds_by_blind_tags_pages_and_audits_once() {
    let a = app().await;
    for (code, when) in [
        ("8302-2", "2020-01-01T10:00:00Z"),
        ("8302-2", "2021-06-01T10:00:00Z"),
        ("29463-7", "2021-06-02T10:00:00Z"),
    ] {
        a.write(observation("p1", code, when), true).await;
    }
    let token = a.token("user/*.rs");
    let (status, body) = a.get("/fhir/Observation?code=8302-2", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["type"].as_str(), &body["total"]),
        (Some("searchset"), &json!(2))
    );
    let (_, body) = a
        .get(
            "/fhir/Observation?code=http://loinc.org|8302-2&date=ge2021",
            Some(&token),
        )
        .await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(
        body["entry"][0]["resource"]["effectiveDateTime"],
        "2021-06-01T10:00:00Z"
    );

    // Pages of one, following `next` until there is none.
    let mut url = "/fhir/Observation?_count=1".to_owned();
    let mut seen = Vec::new();
    loop {
        let (status, body) = a.get(&url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 3);
        seen.push(
            body["entry"][0]["resource"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let next = body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next");
        match next {
            Some(l) => {
                url = l["url"]
                    .as_str()
                    .unwrap()
                    .replace("http://localhost/fhir", "/fhir");
            }
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);

    let (status, body) = a.get("/fhir/Observation?bogus=1", Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    let searches = a
        .stack
        .audit
        .list(&medledger_storage_api::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            let e: Value = serde_json::from_slice(&r.resource).unwrap();
            e["subtype"][0]["code"] == "search-type"
        })
        .count();
    assert_eq!(
        searches,
        2 + seen.len() + 1,
        "one AuditEvent per search, refusals included"
    );
}

#[tokio::test]
async fn a_date_sort_orders_dates_before_1970_and_missing_ones_last() {
    let a = app().await;
    for born in [
        Some("1950-02-03"),
        None,
        Some("2001-07-08"),
        Some("1969-12-31"),
    ] {
        let mut p = json!({"resourceType": "Patient", "gender": "other"});
        if let Some(b) = born {
            p["birthDate"] = json!(b);
        }
        a.write(p, true).await;
    }
    let token = a.token("user/*.rs");
    let births = |body: &Value| {
        body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["resource"]["birthDate"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let (status, body) = a.get("/fhir/Patient?_sort=-birthdate", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        births(&body),
        ["2001-07-08", "1969-12-31", "1950-02-03", "-"]
    );
    let (_, body) = a.get("/fhir/Patient?_sort=birthdate", Some(&token)).await;
    assert_eq!(
        births(&body),
        ["1950-02-03", "1969-12-31", "2001-07-08", "-"]
    );
}

#[tokio::test]
async fn smart_discovery_is_open_and_follows_the_configured_authorization_server() {
    let shell = TestShell::new();
    let auth = medledger_auth::AuthConfig {
        authorization_endpoint: "https://auth.example/authorize".into(),
        token_endpoint: "https://auth.example/token".into(),
        ..medledger_auth::AuthConfig::default()
    };
    let with = shell
        .shell
        .clone()
        .with_smart_configuration(auth.smart_configuration())
        .app(Router::new());
    let (status, doc) = call(
        &with,
        Method::GET,
        "/fhir/.well-known/smart-configuration",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "no token is needed to discover");
    assert_eq!(doc["token_endpoint"], "https://auth.example/token");
    assert_eq!(
        doc["authorization_endpoint"],
        "https://auth.example/authorize"
    );
    let without = shell.shell.clone().app(Router::new());
    let (status, body) = call(
        &without,
        Method::GET,
        "/fhir/.well-known/smart-configuration",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["resourceType"].as_str()),
        (StatusCode::NOT_FOUND, Some("OperationOutcome"))
    );
    // The CapabilityStatement claims SMART-on-FHIR, with the oauth-uris extension, only then.
    let cs = medledger_query::capability_statement(&["read"], &[], &[], auth.capability_security());
    let security = &cs["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    let dev = medledger_query::capability_statement(
        &["read"],
        &[],
        &[],
        medledger_auth::capability_security(None),
    );
    assert!(dev["rest"][0]["security"].get("service").is_none());
}
