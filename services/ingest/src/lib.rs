//! Ingest service: FHIR create, update, delete, batch and transaction, and HL7 v2 over MLLP
//! (`mllp`); encrypts and stores every version.
//!
//! A write is: validate → assign id and meta → canonicalise (RFC 8785) → encrypt under a fresh
//! data key → put the ciphertext in the blob store → commit the index row and its event in one
//! transaction. If the commit fails, the blobs written for it are removed, so a failed request
//! leaves no index row, no event, no leaf and no orphan.

pub mod config;
pub mod domain;
pub mod http;
pub mod mllp;

pub use config::IngestConfig;
pub use domain::Ingest;
pub use http::routes;
