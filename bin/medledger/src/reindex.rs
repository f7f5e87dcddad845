//! `medledger reindex`: files every current record's blind search tags again from its
//! ciphertext (after a search index key rotation or a new search parameter), in a `medledger
//! dev` data dir or a distributed deployment's PostgreSQL and IPFS; safe while the servers run.

use std::path::PathBuf;
use std::sync::Arc;

use medledger_blobstore::{BlobStore, LocalBlockstore};
use medledger_storage_api::SearchIndex;

use crate::{configuration, services, wiring};

/// Where the records are.
#[derive(clap::Args, Debug)]
pub(crate) struct ReindexArgs {
    /// Data directory of `medledger dev` (it may be running).
    #[arg(long, env = "MEDLEDGER_DATA_DIR", conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// A query service configuration file (distributed mode: its `postgres`, `ipfs` and
    /// `master_key_file`); `MEDLEDGER_QUERY_…` variables apply as for `medledger query`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With `--config`, its `search_key` section unless these say otherwise.
    #[command(flatten)]
    index_key: wiring::IndexKeyArgs,
}

pub(crate) async fn run(args: ReindexArgs) -> anyhow::Result<()> {
    let (index, blobs, keys): (Arc<dyn SearchIndex>, Arc<dyn BlobStore>, _) = match &args.data_dir {
        Some(dir) => {
            let (store, keys) = crate::dev::open_data_dir(
                dir,
                false,
                args.index_key
                    .over(medledger_search::IndexGenerations::default()),
            )
            .await?;
            let blobs = Arc::new(LocalBlockstore::open(&dir.join("blobs"))?);
            (store, blobs, keys)
        }
        None => {
            let cfg: medledger_query::Config =
                configuration::load("QUERY", args.config.as_deref())?;
            let (store, keys, blobs) = services::records(
                &cfg.postgres,
                &cfg.master_key_file,
                &cfg.ipfs,
                args.index_key.over(cfg.search_key),
            )
            .await?;
            (store, blobs, keys)
        }
    };
    let generations = keys.index_generations().written();
    let done = medledger_query::domain::reindex::reindex(index, blobs, keys, |d| {
        tracing::info!(records = d.records, "reindexing")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "reindexed {} records under index key generation {generations:?} ({} changed by a writer meanwhile, {} erased)",
        done.records, done.overtaken, done.erased
    );
    Ok(())
}
