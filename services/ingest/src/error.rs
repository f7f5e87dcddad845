//! Why a write did not happen, by category; the edges (HTTP, the MLLP acknowledgement, the
//! audit trail) map the category, never this module.

use medledger_access::AccessError;
use medledger_audit::AuditUnavailable;
use medledger_blobstore::BlobError;
use medledger_error::{Categorized, Category};
use medledger_fhir::FhirError;
use medledger_keys::KeyError;
use medledger_storage_api::StoreError;

/// A refused or failed write.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request is invalid: a bad id, reference, Bundle entry or parameter.
    #[error("{0}")]
    Invalid(String),
    /// The resource does not parse, has an unknown type or breaks its structure.
    #[error(transparent)]
    Resource(#[from] FhirError),
    /// A valid request this service does not serve (a Consent, which the consent service keeps).
    #[error("{0}")]
    NotSupported(String),
    /// A write that is never allowed (an AuditEvent).
    #[error("{0}")]
    NotAllowed(String),
    /// The content breaks a rule: a record moving to another patient, an owner that is no id.
    #[error("{0}")]
    Unprocessable(String),
    /// `If-Match` names another version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// More than the configured limit (Bundle entries).
    #[error("{0}")]
    TooLarge(String),
    /// The access decision said no, or could not be had.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The record index (a version conflict, or the store is down).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The key material.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The audit trail could not record the write's refusal.
    #[error(transparent)]
    Audit(#[from] AuditUnavailable),
    /// One entry of a Bundle failed (its index in `Bundle.entry`).
    #[error("entry {index}: {error}")]
    Entry {
        /// Position in `Bundle.entry`.
        index: usize,
        /// What failed.
        error: Box<IngestError>,
    },
    /// Stored data failed an integrity check.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl IngestError {
    /// The failure of Bundle entry `index`.
    pub fn entry(index: usize, error: IngestError) -> Self {
        Self::Entry {
            index,
            error: Box::new(error),
        }
    }
}

impl Categorized for IngestError {
    fn category(&self) -> Category {
        match self {
            Self::Invalid(_) => Category::Invalid,
            Self::Resource(e) => e.category(),
            Self::NotSupported(_) => Category::NotSupported,
            Self::NotAllowed(_) => Category::NotAllowed,
            Self::Unprocessable(_) => Category::Unprocessable,
            Self::PreconditionFailed(_) => Category::PreconditionFailed,
            Self::TooLarge(_) => Category::TooLarge,
            Self::Access(e) => e.category(),
            Self::Store(e) => e.category(),
            Self::Blob(e) => e.category(),
            Self::Key(e) => e.category(),
            Self::Audit(e) => e.category(),
            Self::Entry { error, .. } => error.category(),
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
            Self::Entry { index, error } => format!("entry {index}: {}", error.diagnostics()),
            other => other.to_string(),
        }
    }
}
