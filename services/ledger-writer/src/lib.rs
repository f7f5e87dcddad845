//! Ledger writer: consumes record events, appends leaves to the Merkle log and commits tree heads
//! to the chain.
//!
//! Exactly-once effect: a leaf is keyed by (kind, subject, version), so a redelivered event adds
//! nothing; leaves are durable in the ledger store before a tree head covering them is committed;
//! the consumer offset is committed only after the chain receipt of a head covering the events.
//! After a crash, leaves not yet covered by a head on chain are committed by the next head.
//!
//! The same process runs the registrar ([`Registrar`]), which commits role and consent changes
//! to Roles and ConsentRegistry with the same chain key.

pub mod config;
pub mod domain;

pub use config::LedgerWriterConfig;
pub use domain::{Anchorer, LedgerWriter, Registrar};
