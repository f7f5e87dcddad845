//! The service processes of distributed mode (`medledger ingest`, `consent`, `query`,
//! `ledger-writer`, and the `gateway` in front of them) and
//! `medledger chain deploy`. This is the one place where the real backends (PostgreSQL, Kafka,
//! IPFS, JSON-RPC chain) are chosen and wired to the services, as `dev.rs` is for the embedded
//! ones.

pub(crate) mod config;
mod consent;
mod gateway;
mod ingest;
mod ledger_writer;
mod query;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use medledger_http::{Gate, RateLimiter};
use medledger_keys::{FileMasterKey, OwnerKeys};
use medledger_storage_sqlx::PgStore;

use self::config::{AuthSection, HttpSection, PostgresSection};

pub(crate) use self::consent::run as run_consent;
pub(crate) use self::gateway::run as run_gateway;
pub(crate) use self::ingest::run as run_ingest;
pub(crate) use self::ledger_writer::run as run_ledger_writer;
pub(crate) use self::query::run as run_query;

/// Arguments every service takes.
#[derive(clap::Args, Debug)]
pub(crate) struct ServiceArgs {
    /// TOML configuration file; `MEDLEDGER_<SERVICE>_…` environment variables override it.
    #[arg(long, env = "MEDLEDGER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

async fn postgres(section: &PostgresSection) -> anyhow::Result<Arc<PgStore>> {
    let store = PgStore::connect(&section.url, section.max_connections)
        .await
        .context("connecting to PostgreSQL and applying migrations")?;
    Ok(Arc::new(store))
}

/// Owner keys under the master key in `path`, checked against the store so a wrong key file
/// stops the service before it writes anything.
async fn owner_keys(store: Arc<PgStore>, path: &Path) -> anyhow::Result<OwnerKeys> {
    let master = Arc::new(
        FileMasterKey::load(path)
            .with_context(|| format!("loading the master key {}", path.display()))?,
    );
    let keys = OwnerKeys::new(store, master);
    keys.check_master_key().await.map_err(|e| {
        anyhow::anyhow!(
            "{} is not this deployment's master key ({e})",
            path.display()
        )
    })?;
    Ok(keys)
}

/// The token verifier `auth` describes. With a JWK Set, its keys are read now (a failure stops
/// the service: it could authenticate nobody) and again every `jwks_refresh_secs` for the life
/// of the process, keeping the last good set when a refresh fails.
async fn verifier(auth: &AuthSection) -> anyhow::Result<medledger_auth::TokenVerifier> {
    if auth.jwks.is_empty() {
        let key = medledger_auth::load_public_key(&auth.public_key_file)
            .context("loading the token issuer's public key")?;
        return Ok(medledger_auth::TokenVerifier::new(&auth.issuer, key));
    }
    let source = medledger_auth::JwksSource::parse(&auth.jwks);
    let cache = medledger_auth::JwksCache::load(
        source,
        medledger_auth::JwksOptions {
            refresh_interval: std::time::Duration::from_secs(auth.jwks_refresh_secs.max(1)),
            ..medledger_auth::JwksOptions::default()
        },
    )
    .await
    .with_context(|| format!("loading the token issuer's JWK Set from {}", auth.jwks))?;
    drop(cache.spawn_refresher(std::future::pending::<()>()));
    Ok(medledger_auth::TokenVerifier::default().with_shared_issuer(&auth.issuer, cache.keys()))
}

async fn gate(auth: &AuthSection, http: &HttpSection) -> anyhow::Result<Gate> {
    Ok(gate_with(verifier(auth).await?, http))
}

fn gate_with(verifier: medledger_auth::TokenVerifier, http: &HttpSection) -> Gate {
    Gate {
        verifier,
        limiter: Arc::new(RateLimiter::new(http.rate_limit, http.rate_burst)),
    }
}

/// Serves the health probes and metrics on the admin address until the process ends.
async fn serve_admin<F>(
    addr: SocketAddr,
    ready: F,
    gauges: crate::web::Gauges,
) -> anyhow::Result<()>
where
    F: Fn() -> Result<(), &'static str> + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin address {addr}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::web::probes(ready, gauges)).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok(())
}

/// Serves `app` on `addr` until SIGINT/SIGTERM.
async fn serve_until_signal(addr: SocketAddr, app: axum::Router, what: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "{what} serving FHIR");
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::web::shutdown_signal())
        .await?;
    Ok(())
}

/// Reads a chain signer key: a file holding one hex private key.
fn signer(path: &Path) -> anyhow::Result<medledger_chain::PrivateKeySigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the signer key {}", path.display()))?;
    medledger_chain::PrivateKeySigner::from_str(text.trim())
        .map_err(|_| anyhow::anyhow!("{} does not hold a hex private key", path.display()))
}

/// `medledger chain deploy`: the private contracts (and, given a public chain, an Anchor for
/// them), printed as JSON.
pub(crate) async fn deploy_chain(
    rpc: &str,
    signer_key_file: &Path,
    public: Option<(&str, &Path)>,
) -> anyhow::Result<()> {
    const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
    let key = signer(signer_key_file)?;
    let private = tokio::time::timeout(
        DEPLOY_TIMEOUT,
        medledger_chain::rpc::deploy_private(rpc, key),
    )
    .await
    .context("deployment timed out")?
    .context("deploying RecordLog, Roles and ConsentRegistry")?;
    let mut out = serde_json::json!({
        "chain_id": private.chain_id,
        "record_log_address": private.record_log.to_string(),
        "roles_address": private.roles.to_string(),
        "consent_registry_address": private.consent_registry.to_string(),
    });
    if let Some((public_rpc, public_key_file)) = public {
        let key = signer(public_key_file)?;
        let anchor = tokio::time::timeout(
            DEPLOY_TIMEOUT,
            medledger_chain::RpcAnchor::deploy(
                public_rpc,
                key,
                private.chain_id,
                private.record_log,
            ),
        )
        .await
        .context("Anchor deployment timed out")?
        .context("deploying Anchor on the public chain")?;
        out["public_chain_id"] = medledger_chain::AnchorChain::chain_id(&anchor).into();
        out["anchor_address"] = anchor.anchor_address().to_string().into();
    }
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn claims(iss: &str) -> medledger_auth::Claims {
        let now = medledger_auth::unix_now();
        serde_json::from_value(serde_json::json!({
            "iss": iss, "sub": "Practitioner/dr-1", "aud": medledger_auth::AUDIENCE,
            "exp": now + 600, "iat": now, "scope": "user/*.rs", "role": "practitioner"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_configured_jwk_set_admits_its_issuers_rs256_and_es256_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = medledger_auth::RsaIssuerKey::generate(2048).unwrap();
        let ec = medledger_auth::IssuerKey::generate();
        let set = medledger_auth::JwkSet {
            keys: vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")],
        };
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, set.to_json()).unwrap();
        let auth = AuthSection {
            issuer: "https://idp.hospital.example".into(),
            public_key_file: dir.path().join("not-read.pem"),
            jwks: path.display().to_string(),
            jwks_refresh_secs: 300,
        };
        let v = verifier(&auth).await.unwrap();
        let c = claims(&auth.issuer);
        assert_eq!(
            v.verify(&rsa.sign(&c, Some("rsa-1"))).unwrap().sub,
            "Practitioner/dr-1"
        );
        assert!(v.verify(&ec.sign_with_kid(&c, Some("ec-1"))).is_ok());
        // Another issuer's name, or a key outside the set, is refused.
        assert!(
            v.verify(&rsa.sign(&claims("medledger-dev"), Some("rsa-1")))
                .is_err()
        );
        let stranger = medledger_auth::RsaIssuerKey::generate(2048).unwrap();
        assert!(v.verify(&stranger.sign(&c, Some("rsa-1"))).is_err());
        // Without a readable set the service does not start.
        let missing = AuthSection {
            jwks: dir.path().join("absent.json").display().to_string(),
            ..auth
        };
        assert!(verifier(&missing).await.is_err());
    }
}
