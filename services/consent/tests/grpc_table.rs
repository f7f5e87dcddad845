//! The decision table again, end to end over gRPC: each case's facts go into a real consent
//! store (SQLite), the actor's token is minted by a trusted issuer and verified by the server,
//! and the answer comes back through `GrpcAccessPolicy`.

#![allow(clippy::unwrap_used, missing_docs)]

mod table;

use std::sync::Arc;
use std::time::Duration;

use medledger_access::{AccessError, AccessPolicy, AccessQuery, Decision};
use medledger_auth::{Caller, DEV_ISSUER, IssuerKey, TokenVerifier};
use medledger_consent::{AccessControlService, ConsentPolicy, Enrolment, GrpcAccessPolicy};
use medledger_storage_api::{AccountRow, ConsentRow, ConsentStore};
use medledger_storage_sqlx::SqliteStore;

async fn serve(key: &IssuerKey, store: Arc<SqliteStore>, now: i64) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let policy = ConsentPolicy::with_clock(store, Enrolment::FromTokens, Arc::new(move || now));
    let service = AccessControlService::new(
        TokenVerifier::new(DEV_ISSUER, key.verifying_key()),
        Arc::new(policy),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

#[tokio::test]
async fn the_decision_table_over_grpc_on_a_real_store() {
    let key = IssuerKey::generate();
    for c in table::table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("state.db"))
                .await
                .unwrap(),
        );
        for s in &c.consents {
            store
                .put_consent(
                    &ConsentRow {
                        id: s.id.clone(),
                        version: 1,
                        patient: s.patient.clone(),
                        status: s.json["status"].as_str().unwrap().into(),
                        resource: serde_json::to_vec(&s.json).unwrap(),
                        actor: s.patient.clone(),
                        recorded_at_ms: 0,
                    },
                    None,
                )
                .await
                .unwrap();
        }
        // The account as an admin and an authority left it.
        store
            .put_account(&AccountRow {
                account: c.who.into(),
                role: c.role.into(),
                verified: c.verified && c.role == "practitioner",
            })
            .await
            .unwrap();
        let endpoint = serve(&key, store, c.now).await;
        let client = GrpcAccessPolicy::connect_lazy(&endpoint, Duration::from_secs(5)).unwrap();
        // A token valid now (the server checks expiry against the real clock).
        let token = key.mint(c.who, c.role, c.scope, medledger_auth::unix_now(), 600);
        let claims = TokenVerifier::new(DEV_ISSUER, key.verifying_key())
            .verify(&token)
            .unwrap();
        let mut caller = Caller::new(claims, &token);
        caller.purpose = c.purpose.map(str::to_owned);
        caller.break_glass_reason = c.break_glass.map(str::to_owned);
        let got = client
            .check(AccessQuery {
                caller: &caller,
                interaction: c.interaction,
                resource_type: c.rt,
                owner: c.owner,
                custodian: c.custodian,
                categories: None,
            })
            .await;
        match (&c.want, got) {
            (Ok(_), Ok(Decision::Permit)) => {}
            (Err(fragment), Ok(Decision::Deny(reason))) => {
                assert!(reason.contains(fragment), "{}: {reason}", c.name)
            }
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", c.name),
        }
    }
}

#[tokio::test]
async fn the_stored_role_decides_not_the_tokens_claim() {
    let key = IssuerKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    store
        .put_account(&AccountRow {
            account: "Patient/p1".into(),
            role: "patient".into(),
            verified: false,
        })
        .await
        .unwrap();
    let endpoint = serve(&key, store, table::NOW).await;
    let client = GrpcAccessPolicy::connect_lazy(&endpoint, Duration::from_secs(5)).unwrap();
    // A token claiming the practitioner role for an account stored as a patient.
    let token = key.mint(
        "Patient/p1",
        "practitioner",
        "user/*.cruds",
        medledger_auth::unix_now(),
        600,
    );
    let claims = TokenVerifier::new(DEV_ISSUER, key.verifying_key())
        .verify(&token)
        .unwrap();
    let caller = Caller::new(claims, &token);
    let got = client
        .check(AccessQuery {
            caller: &caller,
            interaction: medledger_access::Interaction::Create,
            resource_type: "Observation",
            owner: Some("Patient/p2"),
            custodian: None,
            categories: None,
        })
        .await;
    assert!(
        matches!(got, Ok(Decision::Deny(_)) | Err(AccessError::Denied(_))),
        "{got:?}"
    );
}
