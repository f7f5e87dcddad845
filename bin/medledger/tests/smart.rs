//! A stock SMART client connects: Python's `fhirclient` (installed by scripts/install-tools,
//! run unchanged) discovers `medledger dev`'s authorization server from the CapabilityStatement,
//! gets a token by the authorization code flow with PKCE from a local OpenID provider over https
//! (a test CA, trusted through `auth.ca_bundle`), then creates, reads and searches. The provider
//! then rotates its signing key: the running server follows through OpenID discovery, the new
//! key's tokens work and the old key's are refused.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use medledger_auth::{Claims, JwkSet, RsaIssuerKey};
use medledger_test_utils::tls::TestCa;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::Dev;

/// A minimal OpenID provider and SMART authorization server: discovery, JWKS, an authorize
/// endpoint that approves at once, and a token endpoint that checks the code and its PKCE
/// verifier.
#[derive(Clone)]
struct Provider {
    issuer: Arc<Mutex<String>>,
    /// The signing key in force and its `kid`.
    key: Arc<Mutex<(Arc<RsaIssuerKey>, String)>>,
    /// code → (redirect_uri, code_challenge, scope, aud).
    codes: Arc<Mutex<HashMap<String, [String; 4]>>>,
}

async fn openid_configuration(State(p): State<Provider>) -> axum::Json<Value> {
    let iss = p.issuer.lock().unwrap().clone();
    axum::Json(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/jwks"),
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(p): State<Provider>) -> String {
    let (key, kid) = p.key.lock().unwrap().clone();
    JwkSet {
        keys: vec![key.jwk(&kid)],
    }
    .to_json()
}

async fn authorize(
    State(p): State<Provider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("response_type") != "code" || field("code_challenge_method") != "S256" {
        return (StatusCode::BAD_REQUEST, "code flow with S256 PKCE only").into_response();
    }
    let code = format!("code-{}", p.codes.lock().unwrap().len());
    p.codes.lock().unwrap().insert(
        code.clone(),
        [
            field("redirect_uri"),
            field("code_challenge"),
            field("scope"),
            field("aud"),
        ],
    );
    let location = format!(
        "{}?code={code}&state={}",
        field("redirect_uri"),
        form_urlencoded::byte_serialize(field("state").as_bytes()).collect::<String>()
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(State(p): State<Provider>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let Some([redirect, challenge, scope, aud]) = p.codes.lock().unwrap().remove(&field("code"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(field("code_verifier").as_bytes()));
    if field("grant_type") != "authorization_code"
        || field("redirect_uri") != redirect
        || verified != challenge
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let (key, kid) = p.key.lock().unwrap().clone();
    let now = medledger_auth::unix_now();
    let claims = Claims {
        iss: p.issuer.lock().unwrap().clone(),
        sub: "Practitioner/smart-dr".into(),
        aud,
        exp: now + 600,
        iat: now,
        scope: scope.clone(),
        role: "practitioner".into(),
        fhir_user: Some("Practitioner/smart-dr".into()),
        jti: format!("{now}-{}", field("code")),
        patient: None,
    };
    axum::Json(json!({
        "access_token": key.sign(&claims, Some(&kid)),
        "token_type": "Bearer",
        "expires_in": 600,
        "scope": scope,
    }))
    .into_response()
}

fn python() -> String {
    std::env::var("MEDLEDGER_PYTHON").unwrap_or_else(|_| {
        let cache = std::env::var("MEDLEDGER_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/medledger", std::env::var("HOME").unwrap()));
        format!("{cache}/tools/python/bin/python")
    })
}

/// Runs the stock client; returns what it reports. On a blocking thread: the provider it talks
/// to is served by this test's runtime.
async fn run_client(base: &str, ca: &std::path::Path, tag: &str) -> Value {
    let (base, ca, tag) = (base.to_owned(), ca.to_owned(), tag.to_owned());
    tokio::task::spawn_blocking(move || run_client_blocking(&base, &ca, &tag))
        .await
        .unwrap()
}

fn run_client_blocking(base: &str, ca: &std::path::Path, tag: &str) -> Value {
    let python = python();
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run scripts/install-tools (it installs fhirclient)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smart_client.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .args([base, "http://127.0.0.1:9/callback", tag])
        .env("REQUESTS_CA_BUNDLE", ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fhirclient failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_stock_smart_client_discovers_authenticates_creates_reads_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = dir.path().join("ca.pem");
    ca.write_bundle(&bundle);
    let provider = Provider {
        issuer: Arc::default(),
        key: Arc::new(Mutex::new((
            Arc::new(RsaIssuerKey::generate(2048).unwrap()),
            "k1".to_owned(),
        ))),
        codes: Arc::default(),
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(provider.clone());
    let issuer = format!("https://{}", ca.serve(app).await);
    *provider.issuer.lock().unwrap() = issuer.clone();

    // SMART's `aud` is the FHIR base URL the app talks to, so the port is chosen first.
    let port = medledger_test_utils::ports::free_port();
    let base = format!("http://127.0.0.1:{port}/fhir");
    let auth_file = dir.path().join("auth.toml");
    std::fs::write(
        &auth_file,
        format!(
            r#"[auth]
ca_bundle = "{bundle}"
jwks_refresh_secs = 1
authorization_endpoint = "{issuer}/authorize"
token_endpoint = "{issuer}/token"

[[auth.issuers]]
issuer = "{issuer}"
audience = "{base}"
discovery = true
"#,
            bundle = bundle.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let dev = Dev::start_on(&data, port, &["--auth-config", auth_file.to_str().unwrap()]).await;

    // Discovery as SMART App Launch 2 describes it, besides the CapabilityStatement.
    let smart: Value = reqwest::get(dev.url(".well-known/smart-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(smart["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(
        smart["authorization_endpoint"],
        format!("{issuer}/authorize")
    );

    let report = run_client(&base, &bundle, "a").await;
    let created: Vec<String> = serde_json::from_value(report["created"].clone()).unwrap();
    assert_eq!(created.len(), 3);
    assert_eq!(report["read"]["id"], created[0]);
    assert_eq!(report["read"]["family"], "Stocka");
    assert_eq!(report["read"]["birthDate"], "1980-02-01");
    assert_eq!(report["by_identifier"], json!([created[1]]));
    let mut by_name: Vec<String> = serde_json::from_value(report["by_name"].clone()).unwrap();
    by_name.sort();
    let mut want = created.clone();
    want.sort();
    assert_eq!(by_name, want, "every page followed, each Patient once");
    assert_eq!(report["pages"], 2);
    // The server saw the provider's practitioner, not a dev account.
    let old_token = report["token"].as_str().unwrap().to_owned();
    let r = dev
        .get_as(&old_token, &format!("Patient/{}", created[0]))
        .await;
    assert_eq!(r.status(), 200);
    // The token reads the history too.
    let history: Value = dev
        .get_as(&old_token, &format!("Patient/{}/_history", created[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["entry"][0]["resource"]["meta"]["versionId"], "1",
        "{history}"
    );
    // The dev issuer's practitioner is someone else: the record is not theirs to see.
    let r = dev.get(&format!("Patient/{}", created[0])).await;
    assert_eq!(r.status(), 404);

    // Key rotation at the provider: the server follows within a refresh, the old key's tokens
    // stop working and a new client session works.
    *provider.key.lock().unwrap() = (Arc::new(RsaIssuerKey::generate(2048).unwrap()), "k2".into());
    let start = Instant::now();
    loop {
        let r = dev.get_as(&old_token, "metadata").await;
        assert_eq!(r.status(), 200, "metadata is open");
        let r = dev
            .get_as(&old_token, &format!("Patient/{}", created[0]))
            .await;
        if r.status() == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the rotated-out key still verifies"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = run_client(&base, &bundle, "b").await;
    assert_eq!(again["created"].as_array().unwrap().len(), 3);
    assert_eq!(again["by_identifier"], json!([again["created"][1]]));
}
