//! Why a consent-API request was refused or failed, by category; the HTTP edge and the audit
//! trail map the category, never this module.

use medledger_access::AccessError;
use medledger_audit::AuditUnavailable;
use medledger_error::{Categorized, Category};
use medledger_fhir::FhirError;
use medledger_storage_api::StoreError;

/// A refused or failed consent-API request.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Unknown, or not the caller's to know about.
    #[error("{0}")]
    NotFound(String),
    /// A bad parameter, id or body.
    #[error("{0}")]
    Invalid(String),
    /// The body is no usable resource.
    #[error(transparent)]
    Resource(#[from] FhirError),
    /// Well-formed but against the rules (a Consent moving to another patient, an unknown
    /// role).
    #[error("{0}")]
    Unprocessable(String),
    /// Not the caller's to do.
    #[error("{0}")]
    Forbidden(String),
    /// Another change came first.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names another version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Not committed to the chain yet: retry after the seconds given.
    #[error("{message}")]
    NotYet {
        /// What is not there yet.
        message: String,
        /// When to ask again.
        retry_after_secs: u64,
    },
    /// The token's scopes cannot reach the type at all.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The consent store (or the record index, for a patient's existence).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail could not record the request.
    #[error(transparent)]
    Audit(#[from] AuditUnavailable),
    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl Categorized for ConsentError {
    fn category(&self) -> Category {
        match self {
            Self::NotFound(_) => Category::NotFound,
            Self::Invalid(_) => Category::Invalid,
            Self::Resource(e) => e.category(),
            Self::Unprocessable(_) => Category::Unprocessable,
            Self::Forbidden(_) => Category::Forbidden,
            Self::Conflict(_) => Category::Conflict,
            Self::PreconditionFailed(_) => Category::PreconditionFailed,
            Self::NotYet {
                retry_after_secs, ..
            } => Category::Unavailable {
                retry_after_secs: *retry_after_secs,
            },
            Self::Access(e) => e.category(),
            Self::Store(e) => e.category(),
            Self::Audit(e) => e.category(),
            Self::Internal(_) => Category::Internal,
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            Self::Store(StoreError::Conflict { .. }) => {
                "another change to this Consent came first; read it and retry".into()
            }
            Self::Store(StoreError::Unavailable(_)) => "the consent store is unavailable".into(),
            Self::Store(e) => e.diagnostics(),
            other => other.to_string(),
        }
    }
}
