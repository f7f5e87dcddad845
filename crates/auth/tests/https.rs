//! Issuers reached over https: JWK Sets and OpenID discovery served by a local TLS server whose
//! certificate a test CA signed, trusted through `auth.ca_bundle`, with several issuers each held
//! to its own audience, and keys rotated under a running verifier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use medledger_auth::{AuthConfig, Claims, IssuerConfig, JwkSet, RsaIssuerKey, TokenVerifier};
use medledger_test_utils::tls::TestCa;
use serde_json::{Value, json};

/// What the identity provider serves; the test changes it to rotate keys or misbehave.
#[derive(Clone, Default)]
struct Idp {
    /// Its discovery document.
    config: Arc<Mutex<Value>>,
    /// Its JWK Set.
    jwks: Arc<Mutex<String>>,
}

async fn config(State(idp): State<Idp>) -> axum::Json<Value> {
    axum::Json(idp.config.lock().unwrap().clone())
}

async fn jwks(State(idp): State<Idp>) -> String {
    idp.jwks.lock().unwrap().clone()
}

/// An identity provider over https; returns it and its issuer URL (`https://127.0.0.1:port`).
async fn idp(ca: &TestCa, keys: &JwkSet) -> (Idp, String) {
    let idp = Idp::default();
    *idp.jwks.lock().unwrap() = keys.to_json();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(config))
        .route("/keys", get(jwks))
        .with_state(idp.clone());
    let addr = ca.serve(app).await;
    let issuer = format!("https://{addr}");
    *idp.config.lock().unwrap() = json!({
        "issuer": issuer, "jwks_uri": format!("{issuer}/keys"),
        "token_endpoint": format!("{issuer}/token"),
    });
    (idp, issuer)
}

fn claims(iss: &str, aud: &str) -> Claims {
    let now = medledger_auth::unix_now();
    Claims {
        iss: iss.into(),
        sub: "Practitioner/dr-1".into(),
        aud: aud.into(),
        exp: now + 600,
        iat: now,
        scope: "user/*.rs".into(),
        role: "practitioner".into(),
        fhir_user: Some("Practitioner/dr-1".into()),
        jti: "j".into(),
        patient: None,
    }
}

fn set(keys: &[(&RsaIssuerKey, &str)]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|(k, kid)| k.jwk(kid)).collect(),
    }
}

const FHIR: &str = "https://fhir.hospital.example/fhir";

async fn verifier(auth: &AuthConfig) -> Result<TokenVerifier, String> {
    auth.verifier(std::future::pending()).await
}

#[tokio::test]
async fn discovery_and_jwks_over_https_with_a_private_ca_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = dir.path().join("ca.pem");
    ca.write_bundle(&bundle);
    let (k1, k2, other) = (
        RsaIssuerKey::generate(2048).unwrap(),
        RsaIssuerKey::generate(2048).unwrap(),
        RsaIssuerKey::generate(2048).unwrap(),
    );
    let (a, issuer_a) = idp(&ca, &set(&[(&k1, "k1")])).await;
    let (_b, issuer_b) = idp(&ca, &set(&[(&other, "o1")])).await;
    let auth = AuthConfig {
        issuers: vec![
            // A by discovery, B by its key set's URL; each with its own audience.
            IssuerConfig {
                issuer: issuer_a.clone(),
                audience: FHIR.into(),
                discovery: true,
                ..IssuerConfig::default()
            },
            IssuerConfig {
                issuer: issuer_b.clone(),
                audience: "medledger-b".into(),
                jwks: format!("{issuer_b}/keys"),
                ..IssuerConfig::default()
            },
        ],
        ca_bundle: bundle.clone(),
        jwks_refresh_secs: 1,
        ..AuthConfig::default()
    };
    let v = verifier(&auth).await.unwrap();
    let t1 = k1.sign(&claims(&issuer_a, FHIR), Some("k1"));
    assert_eq!(v.verify(&t1).unwrap().aud, FHIR);
    assert!(
        v.verify(&other.sign(&claims(&issuer_b, "medledger-b"), Some("o1")))
            .is_ok()
    );
    // Each issuer's audience and keys are its own.
    for t in [
        k1.sign(&claims(&issuer_a, "medledger-b"), Some("k1")),
        other.sign(&claims(&issuer_b, FHIR), Some("o1")),
        other.sign(&claims(&issuer_a, FHIR), Some("o1")),
        k1.sign(&claims(&issuer_b, "medledger-b"), Some("k1")),
    ] {
        assert!(v.verify(&t).is_err());
    }

    // Rotation: A publishes k2 beside k1, then k2 alone; the running verifier follows.
    *a.jwks.lock().unwrap() = set(&[(&k1, "k1"), (&k2, "k2")]).to_json();
    let t2 = k2.sign(&claims(&issuer_a, FHIR), Some("k2"));
    wait_until(|| v.verify(&t2).is_ok()).await;
    assert!(v.verify(&t1).is_ok());
    *a.jwks.lock().unwrap() = set(&[(&k2, "k2")]).to_json();
    wait_until(|| v.verify(&t1).is_err()).await;
    assert!(v.verify(&t2).is_ok());
    // The key set moves: discovery is read again at each refresh.
    let k3 = RsaIssuerKey::generate(2048).unwrap();
    let (_moved, moved_to) = idp(&ca, &set(&[(&k3, "k3")])).await;
    a.config.lock().unwrap()["jwks_uri"] = json!(format!("{moved_to}/keys"));
    let t3 = k3.sign(&claims(&issuer_a, FHIR), Some("k3"));
    wait_until(|| v.verify(&t3).is_ok()).await;
    assert!(v.verify(&t2).is_err());
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_foreign_discovery_document_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let k = RsaIssuerKey::generate(2048).unwrap();
    let (idp, issuer) = idp(&ca, &set(&[(&k, "k")])).await;
    let by_discovery = |ca_bundle| AuthConfig {
        issuers: vec![IssuerConfig {
            issuer: issuer.clone(),
            discovery: true,
            ..IssuerConfig::default()
        }],
        ca_bundle,
        ..AuthConfig::default()
    };
    // Without the CA, the system roots do not know this server.
    let err = verifier(&by_discovery(Default::default()))
        .await
        .unwrap_err();
    assert!(
        err.contains("certificate") || err.contains("error sending request"),
        "{err}"
    );
    // Another CA's bundle is no better.
    let stranger = dir.path().join("stranger.pem");
    TestCa::new().write_bundle(&stranger);
    assert!(verifier(&by_discovery(stranger)).await.is_err());
    // With it, startup works.
    let bundle = dir.path().join("ca.pem");
    ca.write_bundle(&bundle);
    assert!(verifier(&by_discovery(bundle.clone())).await.is_ok());
    // A document naming another issuer, or keys over plain http, is refused.
    idp.config.lock().unwrap()["issuer"] = json!("https://someone-else.example");
    let err = verifier(&by_discovery(bundle.clone())).await.unwrap_err();
    assert!(err.contains("someone-else"), "{err}");
    idp.config.lock().unwrap()["issuer"] = json!(issuer);
    idp.config.lock().unwrap()["jwks_uri"] = json!("http://127.0.0.1:9/keys");
    let err = verifier(&by_discovery(bundle.clone())).await.unwrap_err();
    assert!(err.contains("not https"), "{err}");
    // A bundle that holds no certificate is a configuration error, not "trust nothing".
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    assert!(verifier(&by_discovery(empty)).await.is_err());
    // jwks and discovery together are ambiguous.
    let both = AuthConfig {
        issuers: vec![IssuerConfig {
            issuer: issuer.clone(),
            discovery: true,
            jwks: format!("{issuer}/keys"),
            ..IssuerConfig::default()
        }],
        ca_bundle: bundle,
        ..AuthConfig::default()
    };
    assert!(verifier(&both).await.unwrap_err().contains("not both"));
}

/// Polls `done` for up to 20 s (refreshes run every second).
async fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the verifier did not follow the issuer's change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
