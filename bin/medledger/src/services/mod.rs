//! The service processes of distributed mode (`medledger ingest`, `consent`, `query`,
//! `ledger-writer`, and the `gateway` in front of them) and `medledger chain deploy`. This is
//! the one place where the real backends (PostgreSQL, Kafka, IPFS, JSON-RPC chains) are chosen;
//! each file constructs them for one process and hands them to its service, whose loops,
//! readiness and shutdown `process.rs` runs as it does for `medledger dev`.

mod consent;
mod gateway;
mod ingest;
mod ledger_writer;
mod query;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use medledger_storage_api::PostgresConfig;
use medledger_storage_sqlx::PgStore;

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

async fn postgres(config: &PostgresConfig) -> anyhow::Result<Arc<PgStore>> {
    let store = PgStore::connect(&config.url, config.max_connections)
        .await
        .context("connecting to PostgreSQL and applying migrations")?;
    Ok(Arc::new(store))
}

/// What ingest and query both work on: the PostgreSQL store, the owner keys under the master
/// key in `master_key_file` (checked against the store), and the IPFS node (reached once, so a
/// wrong URL stops the service).
pub(crate) async fn records(
    postgres: &PostgresConfig,
    master_key_file: &Path,
    ipfs: &medledger_blobstore::IpfsConfig,
    search_key: medledger_search::IndexGenerations,
) -> anyhow::Result<(
    Arc<PgStore>,
    medledger_keys::OwnerKeys,
    Arc<medledger_blobstore_ipfs::IpfsBlobStore>,
)> {
    let store = self::postgres(postgres).await?;
    let keys = crate::wiring::owner_keys(store.clone(), master_key_file, false, search_key).await?;
    let blobs = Arc::new(
        medledger_blobstore_ipfs::IpfsBlobStore::new(&ipfs.api_url).context("IPFS API URL")?,
    );
    blobs.version().await.context("reaching the IPFS node")?;
    Ok((store, keys, blobs))
}

/// The verifier of `auth`'s tokens; a JWK Set is refreshed until `process` stops.
async fn verifier(
    auth: &medledger_auth::AuthConfig,
    process: &crate::process::Process,
) -> anyhow::Result<medledger_auth::TokenVerifier> {
    auth.verifier(process.shutdown().cancelled_owned())
        .await
        .map_err(anyhow::Error::msg)
}

/// Decisions from the consent service over gRPC (reached lazily, so it may start later).
fn consent_policy(
    endpoint: &medledger_access::ConsentEndpoint,
) -> anyhow::Result<Arc<medledger_consent::GrpcAccessPolicy>> {
    medledger_consent::GrpcAccessPolicy::connect_lazy(
        &endpoint.endpoint,
        Duration::from_millis(endpoint.timeout_ms),
    )
    .map(Arc::new)
    .map_err(|e| anyhow::anyhow!("consent.endpoint: {e}"))
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
        medledger_chain_rpc::deploy_private(rpc, key),
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
            medledger_chain_rpc::RpcAnchor::deploy(
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
