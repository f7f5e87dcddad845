//! `medledger query`'s configuration ([`Config`]), and the read path's [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use medledger_access::ConsentEndpoint;
use medledger_auth::AuthConfig;
use medledger_blobstore::IpfsConfig;
use medledger_http::HttpConfig;
use medledger_storage_api::PostgresConfig;
use serde::{Deserialize, Serialize};

/// The query service's configuration: the file and `MEDLEDGER_QUERY_…` variables; every key is
/// documented in `docs/configuration.md`, and an unknown one is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// FHIR listener.
    pub http: HttpConfig,
    /// Health probes and `/metrics`.
    pub admin_listen: SocketAddr,
    /// Reads the ingest schema (index, owner keys) and the ledger schema (leaves, heads).
    pub postgres: PostgresConfig,
    /// Where ciphertext is read from.
    pub ipfs: IpfsConfig,
    /// The master key (the same file as ingest's).
    pub master_key_file: PathBuf,
    /// Which search index keys are in use (a rotation: architecture §4.1); the same in ingest
    /// and query.
    pub search_key: medledger_search::IndexGenerations,
    /// Token verification.
    pub auth: AuthConfig,
    /// Who decides access.
    pub consent: ConsentEndpoint,
    /// How long `$verify` waits for a public anchor covering the tree head, milliseconds
    /// (0: answer at once, with an `anchor` section only if one exists).
    pub anchor_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            postgres: PostgresConfig::default(),
            ipfs: IpfsConfig::default(),
            master_key_file: PathBuf::from("/etc/medledger/master.key"),
            search_key: medledger_search::IndexGenerations::default(),
            auth: AuthConfig::default(),
            consent: ConsentEndpoint::default(),
            anchor_wait_ms: 0,
        }
    }
}

/// How the read path waits and names its chains.
#[derive(Debug, Clone)]
pub struct Settings {
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

impl Default for Settings {
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

impl Settings {
    /// The settings of `medledger query`: its chains are reached over JSON-RPC.
    pub fn of(config: &Config) -> Self {
        Self {
            chain_network: "json-rpc".to_owned(),
            anchor_network: "json-rpc".to_owned(),
            anchor_wait: Duration::from_millis(config.anchor_wait_ms),
            ..Self::default()
        }
    }
}
