//! Read logic (FHIR R4 §3.1.0.2 read, §3.1.0.3 vread), search (§3.1.0.8) and the `$verify`
//! operation.

pub mod audit;
pub mod everything;
pub mod history;
pub mod read;
pub mod reindex;
pub mod search;
pub mod verify;

pub use history::{HistoryOf, HistoryPage};
pub use read::{Query, VerifiedVersion};
pub use search::{Page, SearchRequest};
