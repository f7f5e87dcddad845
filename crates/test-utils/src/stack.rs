//! The embedded stack and the test shell (feature `stack`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use medledger_audit::Auditor;
use medledger_auth::IssuerKey;
use medledger_blobstore::LocalBlockstore;
use medledger_http::{HttpConfig, Readiness, Shell};
use medledger_keys::{FileMasterKey, OwnerKeys};
use medledger_storage_sqlx::SqliteStore;
use serde_json::Value;
use tower::ServiceExt;

use crate::tokens;

/// The embedded backends on a temporary directory: the SQLite store (every storage port), the
/// local blockstore, owner keys under a fresh master key, the audit trail.
pub struct EmbeddedStack {
    /// Removed when the stack is dropped.
    pub dir: tempfile::TempDir,
    /// Every storage port.
    pub store: Arc<SqliteStore>,
    /// Ciphertext blocks.
    pub blocks: Arc<LocalBlockstore>,
    /// Owner keys.
    pub keys: OwnerKeys,
    /// The audit trail in `store`.
    pub audit: Auditor,
}

impl EmbeddedStack {
    /// A fresh stack.
    pub async fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("state.db"))
                .await
                .unwrap(),
        );
        let blocks = Arc::new(LocalBlockstore::open(&dir.path().join("blobs")).unwrap());
        let master =
            Arc::new(FileMasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let keys = OwnerKeys::new(store.clone(), master);
        let audit = Auditor::new(store.clone());
        Self {
            dir,
            store,
            blocks,
            keys,
            audit,
        }
    }
}

/// A shell with a dev issuer of its own, for driving a service's `app()` in process.
pub struct TestShell {
    /// The shell.
    pub shell: Shell,
    /// The issuer whose tokens it accepts.
    pub issuer: IssuerKey,
}

impl Default for TestShell {
    fn default() -> Self {
        Self::new()
    }
}

impl TestShell {
    /// The shell `medledger dev` would build, with a minimal CapabilityStatement.
    pub fn new() -> Self {
        let issuer = IssuerKey::generate();
        let verifier =
            medledger_auth::TokenVerifier::new(medledger_auth::DEV_ISSUER, issuer.verifying_key());
        let http = HttpConfig::default();
        let shell = Shell::new(
            http.gate(verifier),
            http.max_body_bytes,
            serde_json::json!({"resourceType": "CapabilityStatement", "status": "active"}),
            Readiness::default(),
        );
        Self { shell, issuer }
    }

    /// A bearer token of this shell's issuer.
    pub fn token(&self, subject: &str, role: &str, scope: &str) -> String {
        tokens::mint(&self.issuer, subject, role, scope)
    }
}

/// One request to `app`, answered in process: the status and the body as JSON (`Null` when
/// empty or not JSON).
pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/fhir+json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_vec())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
