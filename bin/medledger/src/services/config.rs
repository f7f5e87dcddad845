//! Configuration of the service processes: one struct per service, read from an optional TOML
//! file and then from `MEDLEDGER_<SERVICE>_…` environment variables, which win. Unknown keys
//! are rejected, in the file and in the environment, so a typo fails at start-up instead of
//! silently falling back to a default.
//!
//! Environment names: the service prefix, `_`, then the key path with `__` between levels, in
//! capitals: `postgres.url` of ingest is `MEDLEDGER_INGEST_POSTGRES__URL`. `medledger config
//! keys SERVICE` lists them all; docs/configuration.md documents each.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// PostgreSQL connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PostgresSection {
    /// `postgres://user@host:port/db`; the service's schema is created by its migrations.
    pub(crate) url: String,
    /// Pool size.
    pub(crate) max_connections: u32,
}

impl Default for PostgresSection {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/medledger".to_owned(),
            max_connections: 16,
        }
    }
}

/// Kafka brokers and the shape of the topics the service creates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct KafkaSection {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub(crate) brokers: String,
    /// Partitions of topics created if missing.
    pub(crate) partitions: i32,
    /// Replication factor of topics created if missing.
    pub(crate) replication: i32,
    /// Longest wait for a broker acknowledgement, milliseconds.
    pub(crate) timeout_ms: u64,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            partitions: 6,
            replication: 1,
            timeout_ms: 30_000,
        }
    }
}

impl KafkaSection {
    pub(crate) fn client(&self, client_id: &str) -> medledger_bus_kafka::KafkaConfig {
        let mut c = medledger_bus_kafka::KafkaConfig::new(self.brokers.clone());
        c.partitions = self.partitions;
        c.replication = self.replication;
        c.client_id = client_id.to_owned();
        c.timeout = std::time::Duration::from_millis(self.timeout_ms);
        c
    }
}

/// The IPFS node's RPC API (Kubo).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IpfsSection {
    /// RPC API base URL.
    pub(crate) api_url: String,
}

impl Default for IpfsSection {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:5001".to_owned(),
        }
    }
}

/// Who may call: bearer tokens from this issuer, signed with its key (a PEM file) or one of its
/// keys (a JWK Set, file or URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthSection {
    /// Expected `iss` claim.
    pub(crate) issuer: String,
    /// The issuer's ES256 public key (SPKI PEM); not read when `jwks` is set.
    pub(crate) public_key_file: PathBuf,
    /// The issuer's JWK Set (ES256 and RS256 keys): a file path or an `http://` URL. Empty: use
    /// `public_key_file`.
    pub(crate) jwks: String,
    /// How often the JWK Set is read again (keys rotate), seconds.
    pub(crate) jwks_refresh_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            issuer: medledger_auth::DEV_ISSUER.to_owned(),
            public_key_file: PathBuf::from("/etc/medledger/issuer.pub.pem"),
            jwks: String::new(),
            jwks_refresh_secs: 300,
        }
    }
}

/// The FHIR HTTP listener and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSection {
    /// Address to serve FHIR on.
    pub(crate) listen: SocketAddr,
    /// Largest accepted request body, bytes.
    pub(crate) max_body_bytes: usize,
    /// Requests per second each caller (token subject) may make on average.
    pub(crate) rate_limit: u32,
    /// Burst above the average rate.
    pub(crate) rate_burst: u32,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 16 << 20,
            rate_limit: 1000,
            rate_burst: 2000,
        }
    }
}

/// The HL7 v2 MLLP listener of `medledger ingest` (off unless enabled).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MllpSection {
    /// Whether to listen for HL7 v2 over MLLP.
    pub(crate) enabled: bool,
    /// Address to listen on (reachable from the feeds only: MLLP has no authentication).
    pub(crate) listen: SocketAddr,
    /// File holding the bearer token every MLLP write acts as (the feed's account); read again
    /// for each message, so a renewed token takes effect without a restart.
    pub(crate) token_file: PathBuf,
    /// Largest accepted message, bytes.
    pub(crate) max_message_bytes: usize,
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Connections served at once from one peer address.
    pub(crate) max_connections_per_peer: usize,
    /// A connection idle this long is closed, seconds.
    pub(crate) idle_timeout_secs: u64,
}

impl Default for MllpSection {
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

/// The private chain holding RecordLog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ChainSection {
    /// JSON-RPC URL of a node of the private chain.
    pub(crate) rpc_url: String,
    /// RecordLog's address, as printed by `medledger chain deploy`.
    pub(crate) record_log_address: String,
    /// Roles' address, as printed by `medledger chain deploy` (the ledger writer's registrar
    /// commits role changes there; empty: not committed).
    pub(crate) roles_address: String,
    /// ConsentRegistry's address, as printed by `medledger chain deploy` (the registrar commits
    /// consent changes there; empty: not committed).
    pub(crate) consent_registry_address: String,
    /// File holding the committer's private key (hex); the key may commit tree heads.
    pub(crate) signer_key_file: PathBuf,
}

impl Default for ChainSection {
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

/// Where the consent service answers `CheckAccess`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ConsentSection {
    /// gRPC endpoint, `http://host:port`.
    pub(crate) endpoint: String,
    /// Longest wait for a decision, milliseconds; without one the request fails with 503.
    pub(crate) timeout_ms: u64,
}

impl Default for ConsentSection {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50051".to_owned(),
            timeout_ms: 2_000,
        }
    }
}

impl ConsentSection {
    pub(crate) fn policy(&self) -> anyhow::Result<medledger_consent::GrpcAccessPolicy> {
        medledger_consent::GrpcAccessPolicy::connect_lazy(
            &self.endpoint,
            std::time::Duration::from_millis(self.timeout_ms),
        )
        .map_err(|e| anyhow::anyhow!("consent.endpoint: {e}"))
    }
}

/// The public chain that keeps checkpoints of the private chain's tree heads (Anchor).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AnchorSection {
    /// JSON-RPC URL of a node of the public chain; empty turns anchoring off.
    pub(crate) rpc_url: String,
    /// Anchor's address, as printed by `medledger chain deploy --public-rpc`.
    pub(crate) anchor_address: String,
    /// File holding the anchorer's private key (hex); it pays the public chain's gas.
    pub(crate) signer_key_file: PathBuf,
    /// Shortest time between two anchors, milliseconds (each costs a public transaction).
    pub(crate) interval_ms: u64,
}

impl Default for AnchorSection {
    fn default() -> Self {
        Self {
            rpc_url: String::new(),
            anchor_address: String::new(),
            signer_key_file: PathBuf::from("/etc/medledger/anchor-signer.key"),
            interval_ms: 60_000,
        }
    }
}

fn admin_default() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}

fn master_key_default() -> PathBuf {
    PathBuf::from("/etc/medledger/master.key")
}

/// `medledger ingest`: FHIR writes over HTTP, the outbox relay to Kafka.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IngestServiceConfig {
    /// FHIR listener.
    pub(crate) http: HttpSection,
    /// Health probes (`/healthz`, `/readyz`).
    pub(crate) admin_listen: SocketAddr,
    /// The ingest schema (record index, owner keys, outbox).
    pub(crate) postgres: PostgresSection,
    /// Where the outbox relay publishes.
    pub(crate) kafka: KafkaSection,
    /// Where ciphertext goes.
    pub(crate) ipfs: IpfsSection,
    /// The 32-byte master key that wraps owner keys (raw file, mode 0600).
    pub(crate) master_key_file: PathBuf,
    /// Token verification.
    pub(crate) auth: AuthSection,
    /// Who decides access.
    pub(crate) consent: ConsentSection,
    /// Outbox rows published per batch.
    pub(crate) relay_batch: usize,
    /// HL7 v2 over MLLP.
    pub(crate) mllp: MllpSection,
}

impl Default for IngestServiceConfig {
    fn default() -> Self {
        Self {
            http: HttpSection::default(),
            admin_listen: admin_default(),
            postgres: PostgresSection::default(),
            kafka: KafkaSection::default(),
            ipfs: IpfsSection::default(),
            master_key_file: master_key_default(),
            auth: AuthSection::default(),
            consent: ConsentSection::default(),
            relay_batch: 500,
            mllp: MllpSection::default(),
        }
    }
}

/// `medledger query`: verified FHIR reads over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueryServiceConfig {
    /// FHIR listener.
    pub(crate) http: HttpSection,
    /// Health probes.
    pub(crate) admin_listen: SocketAddr,
    /// Reads the ingest schema (index, owner keys) and the ledger schema (leaves, heads).
    pub(crate) postgres: PostgresSection,
    /// Where ciphertext is read from.
    pub(crate) ipfs: IpfsSection,
    /// The master key (the same file as ingest's).
    pub(crate) master_key_file: PathBuf,
    /// Token verification.
    pub(crate) auth: AuthSection,
    /// Who decides access.
    pub(crate) consent: ConsentSection,
    /// How long `$verify` waits for a public anchor covering the tree head, milliseconds
    /// (0: answer at once, with an `anchor` section only if one exists).
    pub(crate) anchor_wait_ms: u64,
}

impl Default for QueryServiceConfig {
    fn default() -> Self {
        Self {
            http: HttpSection::default(),
            admin_listen: admin_default(),
            postgres: PostgresSection::default(),
            ipfs: IpfsSection::default(),
            master_key_file: master_key_default(),
            auth: AuthSection::default(),
            consent: ConsentSection::default(),
            anchor_wait_ms: 0,
        }
    }
}

/// `medledger consent`: access decisions over gRPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ConsentServiceConfig {
    /// FHIR listener: `Consent`, `$set-role`, `$verify-practitioner`.
    pub(crate) http: HttpSection,
    /// gRPC listener (`CheckAccess`).
    pub(crate) grpc_listen: SocketAddr,
    /// Health probes.
    pub(crate) admin_listen: SocketAddr,
    /// Token verification: the consent service checks every forwarded token itself.
    pub(crate) auth: AuthSection,
    /// The consent schema (accounts and roles, consents).
    pub(crate) postgres: PostgresSection,
    /// Create an account, unverified, with the role its first valid token names; off, only
    /// accounts an admin created may act.
    pub(crate) enrol_from_tokens: bool,
    /// Longest time one request may take, milliseconds.
    pub(crate) request_timeout_ms: u64,
    /// Concurrent requests per client connection.
    pub(crate) max_concurrent_per_connection: usize,
    /// For tests of expiry only: consent decisions read "now" (Unix seconds) from this file
    /// while it exists, instead of the system clock (tokens are still checked against the
    /// system clock). Empty: the system clock. The service warns at start when it is set.
    pub(crate) test_clock_file: PathBuf,
}

impl Default for ConsentServiceConfig {
    fn default() -> Self {
        Self {
            http: HttpSection::default(),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_listen: admin_default(),
            auth: AuthSection::default(),
            postgres: PostgresSection::default(),
            enrol_from_tokens: true,
            request_timeout_ms: 5_000,
            max_concurrent_per_connection: 512,
            test_clock_file: PathBuf::new(),
        }
    }
}

/// `medledger gateway`: the deployment's one FHIR base URL, routing by interaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GatewayServiceConfig {
    /// Address clients reach FHIR on.
    pub(crate) listen: SocketAddr,
    /// Health probes.
    pub(crate) admin_listen: SocketAddr,
    /// Base URL of ingest (writes, batch, transaction).
    pub(crate) ingest_url: String,
    /// Base URL of query (reads, searches, `$verify`, `metadata`).
    pub(crate) query_url: String,
    /// Base URL of consent's FHIR API for `Consent` resources and role administration; empty
    /// routes them like any type (ingest then refuses Consents).
    pub(crate) consent_url: String,
    /// Largest request body passed on, bytes.
    pub(crate) max_body_bytes: usize,
    /// Longest wait for an upstream's response, milliseconds.
    pub(crate) upstream_timeout_ms: u64,
}

impl Default for GatewayServiceConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: admin_default(),
            ingest_url: "http://ingest:8080".to_owned(),
            query_url: "http://query:8080".to_owned(),
            consent_url: "http://consent:8080".to_owned(),
            max_body_bytes: 16 << 20,
            upstream_timeout_ms: 60_000,
        }
    }
}

/// `medledger ledger-writer`: record events from Kafka into the Merkle log and onto the chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LedgerWriterServiceConfig {
    /// Health probes.
    pub(crate) admin_listen: SocketAddr,
    /// The ledger schema (leaves, tree heads).
    pub(crate) postgres: PostgresSection,
    /// Where record events come from.
    pub(crate) kafka: KafkaSection,
    /// Consumer group; replicas share it (one active writer per partition set).
    pub(crate) group: String,
    /// The private chain.
    pub(crate) chain: ChainSection,
    /// The public chain checkpoints are anchored on.
    pub(crate) anchor: AnchorSection,
    /// Longest wait between new leaves and the tree head committing them, milliseconds.
    pub(crate) batch_interval_ms: u64,
    /// Commit early once this many leaves are pending.
    pub(crate) max_batch: usize,
    /// How often the registrar looks for new role and consent changes while idle,
    /// milliseconds.
    pub(crate) registrar_interval_ms: u64,
}

impl Default for LedgerWriterServiceConfig {
    fn default() -> Self {
        Self {
            admin_listen: admin_default(),
            postgres: PostgresSection::default(),
            kafka: KafkaSection::default(),
            group: "medledger-ledger-writer".to_owned(),
            chain: ChainSection::default(),
            anchor: AnchorSection::default(),
            batch_interval_ms: 250,
            max_batch: 5_000,
            registrar_interval_ms: 500,
        }
    }
}

/// Loads `T`: defaults, then the TOML file if given, then `MEDLEDGER_<PREFIX>_…` variables.
pub(crate) fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> anyhow::Result<T> {
    load_from(prefix, file, None)
}

/// [`load`] with the environment given as a map (`None`: the process environment).
fn load_from<T: DeserializeOwned>(
    prefix: &str,
    file: Option<&Path>,
    environment: Option<config::Map<String, String>>,
) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    if let Some(f) = file {
        builder = builder.add_source(
            config::File::from(f)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let env = config::Environment::with_prefix(&format!("MEDLEDGER_{prefix}"))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(environment);
    builder
        .add_source(env)
        .build()
        .context("reading the configuration")?
        .try_deserialize()
        .with_context(|| {
            format!(
                "invalid configuration (see `medledger config keys {}`)",
                prefix.to_lowercase().replace('_', "-")
            )
        })
}

/// Every configuration key of `T` as its environment variable name, e.g.
/// `MEDLEDGER_INGEST_POSTGRES__URL`, with the default value.
pub(crate) fn env_keys<T: Serialize + Default>(prefix: &str) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}__{}", k.to_uppercase()), v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    let root = serde_json::to_value(T::default()).unwrap_or_default();
    if let serde_json::Value::Object(m) = root {
        for (k, v) in m {
            walk(
                &format!("MEDLEDGER_{prefix}_{}", k.to_uppercase()),
                &v,
                &mut out,
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// Every key of every service, as `medledger config keys` lists them.
    fn all_keys() -> Vec<String> {
        [
            env_keys::<IngestServiceConfig>("INGEST"),
            env_keys::<QueryServiceConfig>("QUERY"),
            env_keys::<ConsentServiceConfig>("CONSENT"),
            env_keys::<LedgerWriterServiceConfig>("LEDGER_WRITER"),
            env_keys::<GatewayServiceConfig>("GATEWAY"),
        ]
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect()
    }

    #[test]
    fn docs_configuration_lists_exactly_the_keys_that_exist() {
        let doc = include_str!("../../../../docs/configuration.md");
        let keys = all_keys();
        for k in &keys {
            assert!(
                doc.contains(&format!("`{k}`")),
                "{k} is not documented in docs/configuration.md"
            );
        }
        for word in doc.split('`') {
            let service_var = ["INGEST", "QUERY", "CONSENT", "LEDGER_WRITER", "GATEWAY"]
                .iter()
                .any(|s| word.starts_with(&format!("MEDLEDGER_{s}_")));
            if service_var && !word.contains(' ') {
                assert!(
                    keys.iter().any(|k| k == word),
                    "docs/configuration.md names {word}, which is no configuration key"
                );
            }
        }
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingest.toml");
        std::fs::write(
            &file,
            "relay_batch = 7\n[postgres]\nurl = \"postgres://file/db\"\nmax_connections = 3\n",
        )
        .unwrap();
        let cfg: IngestServiceConfig = load_from(
            "INGEST",
            Some(&file),
            env(&[("MEDLEDGER_INGEST_POSTGRES__URL", "postgres://env/db")]),
        )
        .unwrap();
        assert_eq!(
            cfg.postgres.url, "postgres://env/db",
            "the environment wins"
        );
        assert_eq!(
            cfg.postgres.max_connections, 3,
            "the file beats the default"
        );
        assert_eq!(cfg.relay_batch, 7);
        assert_eq!(
            cfg.kafka.partitions, 6,
            "untouched keys keep their defaults"
        );

        for (var, value) in [
            ("MEDLEDGER_INGEST_POSTGRES__ULR", "x"),
            ("MEDLEDGER_INGEST_NOPE", "1"),
            ("MEDLEDGER_INGEST_HTTP__LISTEN", "not an address"),
            ("MEDLEDGER_INGEST_RELAY_BATCH", "many"),
        ] {
            let r: anyhow::Result<IngestServiceConfig> =
                load_from("INGEST", None, env(&[(var, value)]));
            assert!(r.is_err(), "{var}={value} was accepted");
        }
        std::fs::write(&file, "[postgres]\nurll = \"x\"\n").unwrap();
        let r: anyhow::Result<IngestServiceConfig> = load_from("INGEST", Some(&file), env(&[]));
        assert!(r.is_err(), "an unknown key in the file was accepted");
        // Another service's variables are not this one's business.
        let cfg: GatewayServiceConfig = load_from(
            "GATEWAY",
            None,
            env(&[
                ("MEDLEDGER_INGEST_RELAY_BATCH", "9"),
                ("MEDLEDGER_GATEWAY_QUERY_URL", "http://q:1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.query_url, "http://q:1");
    }
}
