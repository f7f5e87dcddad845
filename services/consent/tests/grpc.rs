//! `CheckAccess` over a real gRPC connection: the server verifies the forwarded token itself and
//! decides with the scope policy; the client fails closed when the service is away.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use medledger_access::testing::ScopePolicy;
use medledger_access::{AccessError, AccessPolicy, AccessQuery, Decision, Interaction};
use medledger_auth::{Caller, DEV_ISSUER, IssuerKey, TokenVerifier, unix_now};
use medledger_consent::{AccessControlService, GrpcAccessPolicy};

async fn serve(key: &IssuerKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AccessControlService::new(
        TokenVerifier::new(DEV_ISSUER, key.verifying_key()),
        Arc::new(ScopePolicy),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

fn caller(key: &IssuerKey, role: &str, scope: &str) -> Caller {
    let token = key.mint("Practitioner/dr-1", role, scope, unix_now(), 600);
    let claims = TokenVerifier::new(DEV_ISSUER, key.verifying_key())
        .verify(&token)
        .unwrap();
    Caller::new(claims, &token)
}

async fn ask(p: &GrpcAccessPolicy, c: &Caller, i: Interaction) -> Result<Decision, AccessError> {
    p.check(AccessQuery {
        caller: c,
        interaction: i,
        resource_type: "Observation",
        owner: Some("Patient/p-1"),
        custodian: None,
        categories: None,
    })
    .await
}

#[tokio::test]
async fn decisions_over_grpc_match_the_in_process_policy() {
    let key = IssuerKey::generate();
    let endpoint = serve(&key).await;
    let p = GrpcAccessPolicy::connect_lazy(&endpoint, Duration::from_secs(5)).unwrap();

    let doctor = caller(&key, "practitioner", "user/*.cruds");
    assert_eq!(
        ask(&p, &doctor, Interaction::Read).await,
        Ok(Decision::Permit)
    );
    let reader = caller(&key, "practitioner", "user/Observation.rs");
    assert_eq!(
        ask(&p, &reader, Interaction::Read).await,
        Ok(Decision::Permit)
    );
    let Ok(Decision::Deny(reason)) = ask(&p, &reader, Interaction::Create).await else {
        panic!("a read-only scope may not create");
    };
    assert!(reason.contains("scopes"), "{reason}");
    let patient = caller(&key, "patient", "user/*.cruds");
    assert!(matches!(
        ask(&p, &patient, Interaction::Read).await,
        Ok(Decision::Deny(_))
    ));
    // Same answers as deciding in process.
    for c in [&doctor, &reader, &patient] {
        for i in [Interaction::Create, Interaction::Read, Interaction::Delete] {
            let local = ScopePolicy
                .check(AccessQuery {
                    caller: c,
                    interaction: i,
                    resource_type: "Observation",
                    owner: Some("Patient/p-1"),
                    custodian: None,
                    categories: None,
                })
                .await;
            assert_eq!(ask(&p, c, i).await, local);
        }
    }
}

#[tokio::test]
async fn the_server_verifies_the_forwarded_token_itself() {
    let key = IssuerKey::generate();
    let endpoint = serve(&key).await;
    let p = GrpcAccessPolicy::connect_lazy(&endpoint, Duration::from_secs(5)).unwrap();
    // Claims that verified elsewhere, with a token the consent service does not trust.
    let other = IssuerKey::generate();
    let mut forged = caller(&other, "practitioner", "user/*.cruds");
    let Err(AccessError::Denied(why)) = ask(&p, &forged, Interaction::Read).await else {
        panic!("a token from an untrusted issuer must not be accepted");
    };
    assert!(why.contains("did not accept the token"), "{why}");
    // Practitioner claims relayed with a patient's valid token: decided for the token.
    let patient_token = key.mint("Patient/p-1", "patient", "user/*.cruds", unix_now(), 600);
    forged.token = patient_token.into();
    assert!(matches!(
        ask(&p, &forged, Interaction::Read).await,
        Ok(Decision::Deny(_))
    ));
    // No token at all.
    let mut raw =
        medledger_proto::v1::access_control_client::AccessControlClient::connect(endpoint.clone())
            .await
            .unwrap();
    let status = raw
        .check_access(medledger_proto::v1::CheckAccessRequest {
            interaction: "r".into(),
            resource_type: "Observation".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    // A bad interaction letter or type name is refused as an argument error.
    let token = key.mint(
        "Practitioner/dr-1",
        "practitioner",
        "user/*.cruds",
        unix_now(),
        600,
    );
    for (interaction, rt) in [("x", "Observation"), ("r", "Observation/../x"), ("r", "")] {
        let mut req = tonic::Request::new(medledger_proto::v1::CheckAccessRequest {
            interaction: interaction.into(),
            resource_type: rt.into(),
            ..Default::default()
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let status = raw.check_access(req).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{interaction} {rt}"
        );
    }
}

#[tokio::test]
async fn no_consent_service_means_no_access() {
    let key = IssuerKey::generate();
    // A port nothing listens on.
    let port = medledger_test_utils::ports::free_port();
    let p = GrpcAccessPolicy::connect_lazy(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(500),
    )
    .unwrap();
    let doctor = caller(&key, "practitioner", "user/*.cruds");
    assert!(matches!(
        ask(&p, &doctor, Interaction::Read).await,
        Err(AccessError::Unavailable(_))
    ));
}
