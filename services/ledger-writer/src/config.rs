//! `medledger ledger-writer`'s configuration ([`Config`]), and the writer's [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use medledger_bus::BrokerConfig;
use medledger_storage_api::PostgresConfig;
use serde::{Deserialize, Serialize};

/// The ledger writer's configuration: the file and `MEDLEDGER_LEDGER_WRITER_…` variables; every
/// key is documented in `docs/configuration.md`, and an unknown one is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Health probes and `/metrics`.
    pub admin_listen: SocketAddr,
    /// The ledger schema (leaves, tree heads).
    pub postgres: PostgresConfig,
    /// Where record events come from.
    pub kafka: BrokerConfig,
    /// Consumer group; replicas share it (one active writer per partition set).
    pub group: String,
    /// The private chain.
    pub chain: ChainConfig,
    /// The public chain checkpoints are anchored on.
    pub anchor: AnchorConfig,
    /// Longest wait between new leaves and the tree head committing them, milliseconds.
    pub batch_interval_ms: u64,
    /// Commit early once this many leaves are pending.
    pub max_batch: usize,
    /// How often the registrar looks for new role and consent changes while idle,
    /// milliseconds.
    pub registrar_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            postgres: PostgresConfig::default(),
            kafka: BrokerConfig::default(),
            group: "medledger-ledger-writer".to_owned(),
            chain: ChainConfig::default(),
            anchor: AnchorConfig::default(),
            batch_interval_ms: 250,
            max_batch: 5_000,
            registrar_interval_ms: 500,
        }
    }
}

/// The private chain holding RecordLog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// JSON-RPC URL of a node of the private chain.
    pub rpc_url: String,
    /// RecordLog's address, as printed by `medledger chain deploy`.
    pub record_log_address: String,
    /// Roles' address, as printed by `medledger chain deploy` (the ledger writer's registrar
    /// commits role changes there; empty: not committed).
    pub roles_address: String,
    /// ConsentRegistry's address, as printed by `medledger chain deploy` (the registrar commits
    /// consent changes there; empty: not committed).
    pub consent_registry_address: String,
    /// File holding the committer's private key (hex); the key may commit tree heads.
    pub signer_key_file: PathBuf,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".to_owned(),
            record_log_address: String::new(),
            roles_address: String::new(),
            consent_registry_address: String::new(),
            signer_key_file: PathBuf::from("/etc/medledger/chain-signer.key"),
        }
    }
}

/// The public chain that keeps checkpoints of the private chain's tree heads (Anchor).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnchorConfig {
    /// JSON-RPC URL of a node of the public chain; empty turns anchoring off.
    pub rpc_url: String,
    /// Anchor's address, as printed by `medledger chain deploy --public-rpc`.
    pub anchor_address: String,
    /// File holding the anchorer's private key (hex); it pays the public chain's gas.
    pub signer_key_file: PathBuf,
    /// Shortest time between two anchors, milliseconds (each costs a public transaction).
    pub interval_ms: u64,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self {
            rpc_url: String::new(),
            anchor_address: String::new(),
            signer_key_file: PathBuf::from("/etc/medledger/anchor-signer.key"),
            interval_ms: 60_000,
        }
    }
}

/// How the writer batches and paces its work.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest time between new leaves and the tree head committing them.
    pub batch_interval: Duration,
    /// Commit early once this many leaves are pending.
    pub max_batch: usize,
    /// Consumer group name on the bus.
    pub group: String,
    /// Shortest time between two anchored checkpoints.
    pub anchor_interval: Duration,
    /// How often the registrar looks for new changes while idle.
    pub registrar_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_interval: Duration::from_millis(250),
            max_batch: 5_000,
            group: "ledger-writer".to_owned(),
            anchor_interval: Duration::from_secs(60),
            registrar_interval: Duration::from_millis(500),
        }
    }
}

impl Settings {
    /// The settings `config` names.
    pub fn of(config: &Config) -> Self {
        Self {
            batch_interval: Duration::from_millis(config.batch_interval_ms),
            max_batch: config.max_batch,
            group: config.group.clone(),
            anchor_interval: Duration::from_millis(config.anchor.interval_ms),
            registrar_interval: Duration::from_millis(config.registrar_interval_ms),
        }
    }
}
