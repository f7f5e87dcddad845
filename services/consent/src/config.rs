//! `medledger consent`'s configuration ([`Config`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use medledger_auth::AuthConfig;
use medledger_http::HttpConfig;
use medledger_storage_api::PostgresConfig;
use serde::{Deserialize, Serialize};

/// The consent service's configuration: the file and `MEDLEDGER_CONSENT_…` variables; every key
/// is documented in `docs/configuration.md`, and an unknown one is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// FHIR listener: `Consent`, `$set-role`, `$verify-practitioner`, access requests.
    pub http: HttpConfig,
    /// gRPC listener (`CheckAccess`).
    pub grpc_listen: SocketAddr,
    /// Health probes and `/metrics`.
    pub admin_listen: SocketAddr,
    /// Token verification: the consent service checks every forwarded token itself.
    pub auth: AuthConfig,
    /// The consent schema (accounts and roles, consents), and the record index to know which
    /// patients exist.
    pub postgres: PostgresConfig,
    /// Create an account, unverified, with the role its first valid token names; off, only
    /// accounts an admin created may act.
    pub enrol_from_tokens: bool,
    /// Longest time one gRPC request may take, milliseconds.
    pub request_timeout_ms: u64,
    /// Concurrent gRPC requests per client connection.
    pub max_concurrent_per_connection: usize,
    /// For tests of expiry only: consent decisions read "now" (Unix seconds) from this file
    /// while it exists, instead of the system clock (tokens are still checked against the
    /// system clock). Empty: the system clock. The service warns at start when it is set.
    pub test_clock_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            auth: AuthConfig::default(),
            postgres: PostgresConfig::default(),
            enrol_from_tokens: true,
            request_timeout_ms: 5_000,
            max_concurrent_per_connection: 512,
            test_clock_file: PathBuf::new(),
        }
    }
}

impl Config {
    /// How accounts come to exist.
    pub fn enrolment(&self) -> crate::Enrolment {
        if self.enrol_from_tokens {
            crate::Enrolment::FromTokens
        } else {
            crate::Enrolment::AdminOnly
        }
    }
}
