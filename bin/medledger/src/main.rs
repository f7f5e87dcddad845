//! The `medledger` binary: one subcommand per service, plus `dev`, `token`, `verify`,
//! `send-hl7` and `dead-letters`.

mod configuration;
mod dev;
mod hl7;
mod process;
mod reindex;
mod services;
mod verify;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "medledger",
    version,
    about = "Trustworthy medical record exchange beside existing EHRs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ingest, consent, ledger-writer and query in one process on embedded backends.
    Dev(dev::DevArgs),
    /// Print a dev bearer token signed by the data dir's dev issuer key.
    Token {
        /// Data directory of `medledger dev` (holds keys/dev-issuer.pem; created if missing).
        #[arg(long, env = "MEDLEDGER_DATA_DIR")]
        data_dir: PathBuf,
        /// Token subject, e.g. `Practitioner/dr-1`.
        #[arg(long, required_unless_present = "public_key")]
        subject: Option<String>,
        /// Role: patient, practitioner, organization, auditor, authority or admin.
        #[arg(long, default_value = "practitioner")]
        role: String,
        /// SMART scopes, space-separated.
        #[arg(long, default_value = "user/*.cruds")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 12 * 3600)]
        ttl: i64,
        /// Print the issuer's public key (SPKI PEM) instead, for the services' `auth.public_key_file`.
        #[arg(long)]
        public_key: bool,
    },
    /// Send HL7 v2 message files over MLLP and print each acknowledgement (exit status 1 unless
    /// every message was accepted).
    SendHl7(hl7::SendArgs),
    /// List the HL7 v2 messages the MLLP listener refused (newest first, with why), or show one
    /// decrypted to fix and send again.
    DeadLetters(hl7::DeadLettersArgs),
    /// Verify a proof bundle against the chain in a data dir (works while `dev` runs).
    Verify(verify::VerifyArgs),
    /// File every record's blind search tags again from its ciphertext (after a key rotation or
    /// a new search parameter); safe while the servers run.
    Reindex(reindex::ReindexArgs),
    /// Ingest service: FHIR writes, ciphertext to IPFS, events via the outbox to Kafka.
    Ingest(services::ServiceArgs),
    /// Consent service: access decisions over gRPC (`CheckAccess`).
    Consent(services::ServiceArgs),
    /// Ledger writer: record events from Kafka into the Merkle log and onto the chain.
    LedgerWriter(services::ServiceArgs),
    /// Query service: verified FHIR reads.
    Query(services::ServiceArgs),
    /// Gateway: one FHIR base URL, routing writes to ingest and reads to query.
    Gateway(services::ServiceArgs),
    /// Chain administration.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Configuration of the service processes.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ChainCommand {
    /// Deploy RecordLog, Roles and ConsentRegistry to the private chain over JSON-RPC (the
    /// signer becomes committer, first admin and registrar) and, with `--public-rpc`, an Anchor
    /// for that RecordLog to the public chain. Prints the chain ids and addresses as JSON, for
    /// the ledger-writer's `chain.record_log_address` and `anchor.anchor_address`.
    Deploy {
        /// JSON-RPC URL of the private chain.
        #[arg(long)]
        rpc: String,
        /// File holding the deployer's (and committer's) hex private key.
        #[arg(long)]
        signer_key_file: PathBuf,
        /// JSON-RPC URL of the public chain to deploy Anchor to.
        #[arg(long, requires = "public_signer_key_file")]
        public_rpc: Option<String>,
        /// File holding the anchorer's hex private key (funded on the public chain).
        #[arg(long, requires = "public_rpc")]
        public_signer_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// List a service's environment variables with their defaults.
    Keys {
        /// ingest, consent, query, ledger-writer or gateway.
        service: String,
    },
    /// Load a service's configuration (file and environment) as the service would, print it
    /// as JSON and exit; fails on unknown keys or bad values without starting anything.
    Check {
        /// ingest, consent, query, ledger-writer or gateway.
        service: String,
        /// TOML configuration file.
        #[arg(long, env = "MEDLEDGER_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs `f` on a fresh multi-threaded runtime and maps its result to an exit code.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(service: &str, file: Option<&std::path::Path>) -> ExitCode {
    use configuration::{
        ConsentServiceConfig, GatewayServiceConfig, IngestServiceConfig, LedgerWriterServiceConfig,
        QueryServiceConfig, load,
    };
    fn show<T: serde::Serialize>(r: anyhow::Result<T>) -> anyhow::Result<String> {
        let mut value = serde_json::to_value(r?)?;
        redact_passwords(&mut value);
        Ok(serde_json::to_string_pretty(&value)?)
    }
    let shown = match service {
        "ingest" => show(load::<IngestServiceConfig>("INGEST", file)),
        "consent" => show(load::<ConsentServiceConfig>("CONSENT", file)),
        "gateway" => show(load::<GatewayServiceConfig>("GATEWAY", file)),
        "query" => show(load::<QueryServiceConfig>("QUERY", file)),
        "ledger-writer" => show(load::<LedgerWriterServiceConfig>("LEDGER_WRITER", file)),
        other => {
            eprintln!(
                "error: unknown service {other:?} (ingest, consent, query, ledger-writer, gateway)"
            );
            return ExitCode::from(2);
        }
    };
    match shown {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Replaces the password of every `scheme://user:password@host` URL in a configuration shown to
/// an operator.
fn redact_passwords(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Some((scheme, rest)) = s.split_once("://")
                && let Some((userinfo, host)) = rest.split_once('@')
                && let Some((user, _)) = userinfo.split_once(':')
            {
                *s = format!("{scheme}://{user}:<redacted>@{host}");
            }
        }
        serde_json::Value::Object(m) => m.values_mut().for_each(redact_passwords),
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_passwords),
        _ => {}
    }
}

fn config_keys(service: &str) -> ExitCode {
    use configuration::{
        ConsentServiceConfig, GatewayServiceConfig, IngestServiceConfig, LedgerWriterServiceConfig,
        QueryServiceConfig, env_keys,
    };
    let keys = match service {
        "ingest" => env_keys::<IngestServiceConfig>("INGEST"),
        "consent" => env_keys::<ConsentServiceConfig>("CONSENT"),
        "gateway" => env_keys::<GatewayServiceConfig>("GATEWAY"),
        "query" => env_keys::<QueryServiceConfig>("QUERY"),
        "ledger-writer" => env_keys::<LedgerWriterServiceConfig>("LEDGER_WRITER"),
        other => {
            eprintln!(
                "error: unknown service {other:?} (ingest, consent, query, ledger-writer, gateway)"
            );
            return ExitCode::from(2);
        }
    };
    for (k, default) in keys {
        println!("{k}={default}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => {
            let _telemetry = medledger_telemetry::init("medledger-dev");
            block_on(dev::run(args))
        }
        Command::Token {
            data_dir,
            subject,
            role,
            scope,
            ttl,
            public_key,
        } => match medledger_auth::IssuerKey::load_or_create(&dev::issuer_key_path(&data_dir)) {
            Ok(key) if public_key => match key.public_key_pem() {
                Ok(pem) => {
                    print!("{pem}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Ok(key) => {
                let subject = subject.unwrap_or_default();
                println!(
                    "{}",
                    key.mint(&subject, &role, &scope, medledger_auth::unix_now(), ttl)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Verify(args) => verify::run(args),
        Command::Reindex(args) => block_on(reindex::run(args)),
        Command::SendHl7(args) => block_on(hl7::send(args)),
        Command::DeadLetters(args) => block_on(hl7::dead_letters(args)),
        Command::Ingest(args) => {
            let _telemetry = medledger_telemetry::init("medledger-ingest");
            block_on(async move {
                let cfg = configuration::load("INGEST", args.config.as_deref())?;
                services::run_ingest(cfg).await
            })
        }
        Command::Query(args) => {
            let _telemetry = medledger_telemetry::init("medledger-query");
            block_on(async move {
                let cfg = configuration::load("QUERY", args.config.as_deref())?;
                services::run_query(cfg).await
            })
        }
        Command::LedgerWriter(args) => {
            let _telemetry = medledger_telemetry::init("medledger-ledger-writer");
            block_on(async move {
                let cfg = configuration::load("LEDGER_WRITER", args.config.as_deref())?;
                services::run_ledger_writer(cfg).await
            })
        }
        Command::Gateway(args) => {
            let _telemetry = medledger_telemetry::init("medledger-gateway");
            block_on(async move {
                let cfg = configuration::load("GATEWAY", args.config.as_deref())?;
                services::run_gateway(cfg).await
            })
        }
        Command::Chain(ChainCommand::Deploy {
            rpc,
            signer_key_file,
            public_rpc,
            public_signer_key_file,
        }) => block_on(services::deploy_chain(
            &rpc,
            &signer_key_file,
            public_rpc.as_deref().zip(public_signer_key_file.as_deref()),
        )),
        Command::Config(ConfigCommand::Keys { service }) => config_keys(&service),
        Command::Config(ConfigCommand::Check { service, config }) => {
            config_check(&service, config.as_deref())
        }
        Command::Consent(args) => {
            let _telemetry = medledger_telemetry::init("medledger-consent");
            block_on(async move {
                let cfg = configuration::load("CONSENT", args.config.as_deref())?;
                services::run_consent(cfg).await
            })
        }
    }
}
