//! Ledger writer configuration.

use std::time::Duration;

/// Settings of the ledger writer.
#[derive(Debug, Clone)]
pub struct LedgerWriterConfig {
    /// Longest time between new leaves and the tree head committing them.
    pub batch_interval: Duration,
    /// Commit early once this many leaves are pending.
    pub max_batch: usize,
    /// Consumer group name on the bus.
    pub group: String,
}

impl Default for LedgerWriterConfig {
    fn default() -> Self {
        Self {
            batch_interval: Duration::from_millis(250),
            max_batch: 5_000,
            group: "ledger-writer".to_owned(),
        }
    }
}
