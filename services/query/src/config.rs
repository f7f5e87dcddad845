//! Query configuration.

use std::time::Duration;

/// Settings of the query service.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// How long a read waits for a just-written version to reach the ledger log before 503.
    pub ledger_wait: Duration,
    /// How long `$verify` waits for a tree head covering the version before 503.
    pub verify_wait: Duration,
    /// How proof bundles name the chain: `embedded-evm` or `json-rpc`.
    pub chain_network: String,
    /// How proof bundles name the public anchor chain: `embedded-evm` or `json-rpc`.
    pub anchor_network: String,
    /// How long `$verify` waits for a public anchor covering the tree head; without one by
    /// then the bundle carries no `anchor` section (it can be fetched again later).
    pub anchor_wait: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            ledger_wait: Duration::from_secs(3),
            verify_wait: Duration::from_secs(5),
            chain_network: "embedded-evm".to_owned(),
            anchor_network: "embedded-evm".to_owned(),
            anchor_wait: Duration::ZERO,
        }
    }
}
