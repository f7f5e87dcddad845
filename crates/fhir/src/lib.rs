//! FHIR R4 resource handling: validation with fhir-sdk models, patient-compartment ownership,
//! RFC 8785 canonical JSON, reference rewriting and OperationOutcome construction.
//!
//! The fhir-sdk models are large; keeping them behind this one crate means the rest of the
//! workspace rebuilds without touching them.

pub mod canonical;
pub mod compartment;
pub mod json;
pub mod outcome;
pub mod primitives;
pub mod references;
pub mod types;
pub mod validate;

pub use canonical::canonical_json;
pub use compartment::{Owner, owner_of};
pub use json::parse_strict;
pub use outcome::{IssueCode, operation_outcome};
pub use primitives::{etag, etag_version, now_instant, valid_id};
pub use references::{
    first_invalid_reference, rewrite_references, unresolved_urn_references, valid_reference,
};
pub use types::all_accepted_types;
pub use types::{AcceptedType, accepted_type};
pub use validate::{FhirError, validate_resource};

/// The FHIR version MedLedger speaks.
pub const FHIR_VERSION: &str = "4.0.1";
