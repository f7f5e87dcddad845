//! Ingest service: FHIR create, update, delete, batch and transaction, and HL7 v2 over MLLP
//! (`mllp`); encrypts and stores every version.
//!
//! A write is: validate → assign id and meta → canonicalise (RFC 8785) → encrypt under a fresh
//! data key → put the ciphertext in the blob store → commit the index row and its event in one
//! transaction. If the commit fails, the blobs written for it are removed, so a failed request
//! leaves no index row, no event, no leaf and no orphan.
//!
//! The service's shape: [`Config`], the [`Ports`] it needs, [`Service::start`] (binds and checks
//! what can fail at start), [`Service::app`] (the complete router) and [`Service::run`] (the
//! MLLP listener, until shutdown).

pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod mllp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use medledger_access::AccessPolicy;
use medledger_audit::Auditor;
use medledger_blobstore::BlobStore;
use medledger_http::Shell;
use medledger_keys::OwnerKeys;
use medledger_storage_api::{Hl7MessageLog, RecordIndex, SearchIndex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, MllpConfig};
pub use domain::{Ingest, Limits};
pub use error::IngestError;
pub use http::routes;

/// What the ingest service needs from the world, chosen where the backends are.
pub struct Ports {
    /// The record index (and its outbox).
    pub index: Arc<dyn RecordIndex>,
    /// The blind search index over it (for conditional interactions).
    pub search: Arc<dyn SearchIndex>,
    /// Where ciphertext goes.
    pub blobs: Arc<dyn BlobStore>,
    /// Owner keys under the master key, checked against the store.
    pub keys: OwnerKeys,
    /// Who decides access.
    pub policy: Arc<dyn AccessPolicy>,
    /// The audit trail.
    pub audit: Auditor,
    /// What the MLLP listener remembers: accepted messages and dead letters.
    pub messages: Arc<dyn Hl7MessageLog>,
    /// The account MLLP writes act as.
    pub feed: Arc<dyn mllp::FeedCredential>,
}

/// The ingest service, started.
pub struct Service {
    ingest: Ingest,
    search: Arc<dyn SearchIndex>,
    mllp: Option<(TcpListener, mllp::Receiver, MllpConfig)>,
}

impl Service {
    /// Wires the domain to `ports`; with MLLP enabled, binds its listener and checks that the
    /// feed's credential is usable, so a misconfiguration stops start-up, not the first message.
    pub async fn start(ports: Ports, config: &Config) -> Result<Self, axum::BoxError> {
        let search = ports.search.clone();
        let ingest = Ingest::new(
            ports.index,
            ports.search,
            ports.blobs,
            ports.keys,
            ports.policy,
            ports.audit,
            Limits::default(),
        );
        let mllp = if config.mllp.enabled {
            let listener = TcpListener::bind(config.mllp.listen)
                .await
                .map_err(|e| format!("binding {} for MLLP: {e}", config.mllp.listen))?;
            ports
                .feed
                .caller()
                .await
                .map_err(|e| format!("the MLLP feed's credential: {}", e.message))?;
            let receiver = mllp::Receiver::new(ingest.clone(), ports.messages, ports.feed);
            Some((listener, receiver, config.mllp.clone()))
        } else {
            None
        };
        Ok(Self {
            ingest,
            search,
            mllp,
        })
    }

    /// The domain.
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// Where the MLLP listener is, when it is enabled.
    pub fn mllp_addr(&self) -> Option<SocketAddr> {
        self.mllp.as_ref().and_then(|(l, _, _)| l.local_addr().ok())
    }

    /// The FHIR routes, for a shell that holds other services' routes too.
    pub fn routes(&self) -> Router {
        routes(self.ingest.clone())
    }

    /// The complete application: the routes in `shell`.
    pub fn app(&self, shell: &Shell) -> Router {
        shell.app(self.routes())
    }

    /// Serves MLLP, when enabled, and merges the writes' pending search tags into the index
    /// (see [`merge_tags`]), until `shutdown` (messages in flight finish first).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), axum::BoxError> {
        let merging = merge_tags(self.search, shutdown.clone());
        let serving = async {
            if let Some((listener, receiver, config)) = self.mllp {
                tracing::info!(listen = %config.listen, "serving HL7 v2 over MLLP");
                mllp::serve(listener, receiver, config, shutdown).await;
            }
        };
        tokio::join!(merging, serving);
        Ok(())
    }
}

/// Records' tags merged per transaction.
const MERGE_BATCH: u32 = 10_000;

/// How long the merger lets pending tags gather: long enough that a merge writes each page of
/// the tag index once for many writes, short enough that searches scan only a few lists.
const MERGE_INTERVAL: Duration = Duration::from_secs(2);

/// Merges the pending search tags writes file ([`SearchIndex::merge_pending`]) every
/// [`MERGE_INTERVAL`], at once again while a full batch was waiting, until `shutdown`. Searches
/// find pending tags too, so a merge that fails (the database away) only costs speed; it is
/// retried at the next interval.
async fn merge_tags(search: Arc<dyn SearchIndex>, shutdown: CancellationToken) {
    loop {
        let full = match search.merge_pending(MERGE_BATCH).await {
            Ok(n) => n == u64::from(MERGE_BATCH),
            Err(e) => {
                tracing::warn!(error = %e, "merging pending search tags failed; retrying");
                false
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if !full {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(MERGE_INTERVAL) => {}
            }
        }
    }
}
