//! `medledger ingest`'s configuration: the file and `MEDLEDGER_INGEST_…` variables are read
//! into [`Config`]; every key is documented in `docs/configuration.md`, and an unknown one is
//! refused.

use std::net::SocketAddr;
use std::path::PathBuf;

use medledger_access::ConsentEndpoint;
use medledger_auth::AuthConfig;
use medledger_blobstore::IpfsConfig;
use medledger_bus::BrokerConfig;
use medledger_http::HttpConfig;
use medledger_storage_api::PostgresConfig;
use serde::{Deserialize, Serialize};

/// The ingest service's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// FHIR listener.
    pub http: HttpConfig,
    /// Health probes (`/healthz`, `/readyz`) and `/metrics`.
    pub admin_listen: SocketAddr,
    /// The ingest schema (record index, owner keys, outbox).
    pub postgres: PostgresConfig,
    /// Where the outbox relay publishes.
    pub kafka: BrokerConfig,
    /// Where ciphertext goes.
    pub ipfs: IpfsConfig,
    /// The 32-byte master key that wraps owner keys (raw file, mode 0600).
    pub master_key_file: PathBuf,
    /// Which search index keys are in use (a rotation: architecture §4.1); the same in ingest
    /// and query.
    pub search_key: medledger_search::IndexGenerations,
    /// Token verification.
    pub auth: AuthConfig,
    /// Who decides access.
    pub consent: ConsentEndpoint,
    /// Outbox rows published per batch.
    pub relay_batch: usize,
    /// HL7 v2 over MLLP.
    pub mllp: MllpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            postgres: PostgresConfig::default(),
            kafka: BrokerConfig::default(),
            ipfs: IpfsConfig::default(),
            master_key_file: PathBuf::from("/etc/medledger/master.key"),
            search_key: medledger_search::IndexGenerations::default(),
            auth: AuthConfig::default(),
            consent: ConsentEndpoint::default(),
            relay_batch: 500,
            mllp: MllpConfig::default(),
        }
    }
}

/// The HL7 v2 MLLP listener (off unless enabled).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MllpConfig {
    /// Whether to listen for HL7 v2 over MLLP.
    pub enabled: bool,
    /// Address to listen on (reachable from the feeds only: MLLP has no authentication).
    pub listen: SocketAddr,
    /// File holding the bearer token every MLLP write acts as (the feed's account); read again
    /// for each message, so a renewed token takes effect without a restart.
    pub token_file: PathBuf,
    /// Largest accepted message, bytes (the connection is refused and closed beyond).
    pub max_message_bytes: usize,
    /// Connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// Connections served at once from one peer address.
    pub max_connections_per_peer: usize,
    /// A connection idle this long is closed, seconds (feeds reconnect).
    pub idle_timeout_secs: u64,
}

impl Default for MllpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 2575)),
            token_file: PathBuf::from("/etc/medledger/mllp-feed.token"),
            max_message_bytes: 1 << 20,
            max_connections: 64,
            max_connections_per_peer: 16,
            idle_timeout_secs: 600,
        }
    }
}
