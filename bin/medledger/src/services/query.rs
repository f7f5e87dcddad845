//! `medledger query`: verified FHIR reads from PostgreSQL (index and ledger) and IPFS.

use std::sync::Arc;

use anyhow::Context;
use medledger_blobstore::IpfsBlobStore;
use medledger_query::{Query, QueryConfig};

use super::config::QueryServiceConfig;

pub(crate) async fn run(cfg: QueryServiceConfig) -> anyhow::Result<()> {
    let store = super::postgres(&cfg.postgres).await?;
    let keys = super::owner_keys(store.clone(), &cfg.master_key_file).await?;
    let blobs = Arc::new(IpfsBlobStore::new(&cfg.ipfs.api_url).context("IPFS API URL")?);
    blobs.version().await.context("reaching the IPFS node")?;
    let gate = super::gate(&cfg.auth, &cfg.http).await?;
    super::serve_admin(cfg.admin_listen, || Ok(()), crate::web::no_gauges()).await?;
    let query = Query::new(
        store.clone(),
        blobs,
        keys,
        store.clone(),
        Arc::new(cfg.consent.policy()?),
        medledger_audit::Auditor::new(store),
        QueryConfig {
            chain_network: "json-rpc".to_owned(),
            anchor_network: "json-rpc".to_owned(),
            anchor_wait: std::time::Duration::from_millis(cfg.anchor_wait_ms),
            ..QueryConfig::default()
        },
    );
    let app = crate::web::fhir_app(
        medledger_query::routes(query),
        gate,
        cfg.http.max_body_bytes,
    );
    super::serve_until_signal(cfg.http.listen, app, "query").await
}
