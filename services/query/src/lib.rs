//! Query service: FHIR read, vread and `$verify`, with integrity checks and decryption.
//!
//! A read never returns data it has not checked: the index row must agree with the ledger's leaf
//! for that version, the ciphertext fetched by CID must hash to its CID and decrypt under its
//! associated data, and the decrypted bytes must match the committed HMAC. Any mismatch is an
//! OperationOutcome, never altered data.

pub mod config;
pub mod domain;
pub mod http;

pub use config::QueryConfig;
pub use domain::Query;
pub use http::{capability_statement, routes};
