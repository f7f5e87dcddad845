//! Query service: FHIR read, vread, search and `$verify`, with integrity checks and decryption, and the
//! audit trail's reads.
//!
//! A read never returns data it has not checked: the index row must agree with the ledger's leaf
//! for that version, the ciphertext fetched by CID must hash to its CID and decrypt under its
//! associated data, and the decrypted bytes must match the committed HMAC. Any mismatch is an
//! OperationOutcome, never altered data.
//!
//! The service's shape: [`Config`], the [`Ports`] it needs, [`Service::new`] and
//! [`Service::app`] (the complete router); it runs no loops of its own.

pub mod config;
pub mod domain;
pub mod error;
pub mod http;

use std::sync::Arc;

use axum::Router;
use medledger_access::AccessPolicy;
use medledger_audit::Auditor;
use medledger_blobstore::BlobStore;
use medledger_http::Shell;
use medledger_keys::OwnerKeys;
use medledger_storage_api::{LedgerStore, RecordIndex, SearchIndex};

pub use config::{Config, Settings};
pub use domain::Query;
pub use error::QueryError;
pub use http::{capability_statement, routes};

/// What the query service needs from the world, chosen where the backends are.
pub struct Ports {
    /// The record index.
    pub index: Arc<dyn RecordIndex>,
    /// The blind search index over it.
    pub search: Arc<dyn SearchIndex>,
    /// Where ciphertext is read from.
    pub blobs: Arc<dyn BlobStore>,
    /// Owner keys under the master key, checked against the store.
    pub keys: OwnerKeys,
    /// The ledger writer's log, tree heads and anchors.
    pub ledger: Arc<dyn LedgerStore>,
    /// Who decides access.
    pub policy: Arc<dyn AccessPolicy>,
    /// The audit trail.
    pub audit: Auditor,
}

/// The query service.
#[derive(Clone)]
pub struct Service {
    query: Query,
}

impl Service {
    /// Wires the read path to `ports`.
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Self {
            query: Query::new(ports, settings),
        }
    }

    /// The domain.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The FHIR routes, for a shell that holds other services' routes too.
    pub fn routes(&self) -> Router {
        routes(self.query.clone())
    }

    /// The complete application: the routes in `shell`.
    pub fn app(&self, shell: &Shell) -> Router {
        shell.app(self.routes())
    }
}
