//! What `medledger dev` and the service subcommands do alike once their backends are chosen:
//! the master-key check, the deployment's CapabilityStatement, the consent clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use medledger_keys::{FileMasterKey, OwnerKeys};
use medledger_storage_api::OwnerKeyStore;

/// Owner keys under the master key in `path`, checked against the check value wrapped under it
/// in `store`, so a missing or replaced key stops start-up before anything is written or read,
/// instead of silently becoming a new key that cannot read the existing records. With
/// `create`, a missing key file is created (`medledger dev`'s data dir); a key created by a
/// start that then fails is removed again, leaving the data dir as found so the right key can
/// simply be put back.
pub(crate) async fn owner_keys(
    store: Arc<dyn OwnerKeyStore>,
    path: &Path,
    create: bool,
    index: medledger_search::IndexGenerations,
) -> anyhow::Result<OwnerKeys> {
    index.check().map_err(anyhow::Error::msg)?;
    let existed = path.exists();
    let master = if create {
        FileMasterKey::load_or_create(path)
    } else {
        FileMasterKey::load(path)
    }
    .with_context(|| format!("loading the master key {}", path.display()))?;
    let keys = OwnerKeys::new(store, Arc::new(master)).with_index_generations(index);
    if let Err(e) = keys.check_master_key().await {
        if !existed {
            let _ = std::fs::remove_file(path);
        }
        anyhow::bail!(
            "{} is not the master key of this deployment's records ({e}); restore the original key file",
            path.display()
        );
    }
    Ok(keys)
}

/// The deployment's CapabilityStatement: ingest, query and consent form one FHIR server (one
/// process in `medledger dev`, one base URL behind the gateway), so each describes all of it.
pub(crate) fn capability(auth: Option<&medledger_auth::AuthConfig>) -> serde_json::Value {
    let mut type_interactions: Vec<&str> = medledger_query::http::INTERACTIONS.to_vec();
    type_interactions.extend_from_slice(medledger_ingest::http::INTERACTIONS);
    let mut system_interactions: Vec<&str> = medledger_ingest::http::SYSTEM_INTERACTIONS.to_vec();
    system_interactions.extend_from_slice(medledger_query::http::SYSTEM_INTERACTIONS);
    medledger_query::capability_statement(
        &type_interactions,
        &system_interactions,
        medledger_query::http::OPERATIONS,
        medledger_auth::capability_security(auth),
    )
}

/// The clock consent decisions use: the system's, or, for tests of expiry, "now" (Unix
/// seconds) read from `file` while it exists.
pub(crate) fn consent_clock(file: Option<PathBuf>) -> Arc<dyn Fn() -> i64 + Send + Sync> {
    if let Some(f) = &file {
        tracing::warn!(file = %f.display(), "consent decisions use a test clock file: never in production");
    }
    Arc::new(move || {
        file.as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(medledger_auth::unix_now)
    })
}

/// The search index key generations, as `medledger dev` and `medledger reindex` take them.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct IndexKeyArgs {
    /// Generation of the search index key that searches use (rotating it: architecture §4.1).
    /// Default: the configured one (for `dev`, 1).
    #[arg(long)]
    index_generation: Option<u32>,
    /// During a rotation, the generation being rotated to: records are filed under both.
    /// Without it (and with `--index-generation`), only that generation's tags are written.
    #[arg(long)]
    index_next_generation: Option<u32>,
}

impl IndexKeyArgs {
    /// The generations these flags select, over `configured`.
    pub(crate) fn over(
        self,
        configured: medledger_search::IndexGenerations,
    ) -> medledger_search::IndexGenerations {
        medledger_search::IndexGenerations {
            generation: self.index_generation.unwrap_or(configured.generation),
            next_generation: match (self.index_generation, self.index_next_generation) {
                (_, Some(n)) => n,
                // A generation given alone means "that one only".
                (Some(_), None) => 0,
                (None, None) => configured.next_generation,
            },
        }
    }
}
