//! Write logic over the storage, blob and key ports.

pub mod bundle;
pub mod conditional;
pub mod write;

pub use write::{Ingest, Limits, Prepared, WriteOutcome};
