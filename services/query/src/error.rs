//! Why a read answered nothing, by category; the HTTP edge and the audit trail map the
//! category, never this module.

use medledger_access::AccessError;
use medledger_audit::AuditUnavailable;
use medledger_blobstore::BlobError;
use medledger_error::{Categorized, Category};
use medledger_keys::KeyError;
use medledger_storage_api::StoreError;

/// A refused or failed read.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Unknown, or not the caller's to know about (a denied read answers exactly like this).
    #[error("{0}")]
    NotFound(String),
    /// Deleted, or erased with its patient's key.
    #[error("{0}")]
    Gone(String),
    /// A bad parameter.
    #[error("{0}")]
    Invalid(String),
    /// Not committed yet (the ledger log, a tree head on the chain): retry after the seconds
    /// given.
    #[error("{message}")]
    NotYet {
        /// What is not there yet.
        message: String,
        /// When to ask again.
        retry_after_secs: u64,
    },
    /// The access decision said no before any lookup, or could not be had.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The record index or the ledger store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The key material.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The audit trail could not record the read, so nothing of it goes out.
    #[error(transparent)]
    Audit(#[from] AuditUnavailable),
    /// The stored data does not match what was committed: nothing of the record is returned.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl Categorized for QueryError {
    fn category(&self) -> Category {
        match self {
            Self::NotFound(_) => Category::NotFound,
            Self::Gone(_) => Category::Gone,
            Self::Invalid(_) => Category::Invalid,
            Self::NotYet {
                retry_after_secs, ..
            } => Category::Unavailable {
                retry_after_secs: *retry_after_secs,
            },
            Self::Access(e) => e.category(),
            Self::Store(e) => e.category(),
            Self::Blob(e) => e.category(),
            Self::Key(e) => e.category(),
            Self::Audit(e) => e.category(),
            Self::Integrity(_) => Category::Integrity,
            Self::Internal(_) => Category::Internal,
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable(_)) => "the record index is unavailable".into(),
            Self::Store(e) => e.diagnostics(),
            Self::Blob(e) => e.diagnostics(),
            Self::Key(e) => e.diagnostics(),
            other => other.to_string(),
        }
    }
}
