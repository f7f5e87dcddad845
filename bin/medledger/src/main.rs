//! The `medledger` binary: one subcommand per service, plus `dev`, `token` and `verify`.

mod dev;
mod verify;

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
        /// Data directory of `medledger dev`.
        #[arg(long, env = "MEDLEDGER_DATA_DIR")]
        data_dir: PathBuf,
        /// Token subject, e.g. `Practitioner/dr-1`.
        #[arg(long)]
        subject: String,
        /// Role: patient, practitioner, organization, auditor, authority or admin.
        #[arg(long, default_value = "practitioner")]
        role: String,
        /// SMART scopes, space-separated.
        #[arg(long, default_value = "user/*.cruds")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 12 * 3600)]
        ttl: i64,
    },
    /// Verify a proof bundle against the chain in a data dir (works while `dev` runs).
    Verify(verify::VerifyArgs),
    /// Ingest service (distributed mode; not available yet).
    Ingest,
    /// Consent service (distributed mode; not available yet).
    Consent,
    /// Ledger writer (distributed mode; not available yet).
    LedgerWriter,
    /// Query service (distributed mode; not available yet).
    Query,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => {
            medledger_telemetry::init();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(dev::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token {
            data_dir,
            subject,
            role,
            scope,
            ttl,
        } => match medledger_auth::IssuerKey::load_or_create(&dev::issuer_key_path(&data_dir)) {
            Ok(key) => {
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
        Command::Ingest | Command::Consent | Command::LedgerWriter | Command::Query => {
            eprintln!(
                "error: the separate service processes arrive with distributed mode; run `medledger dev` for now"
            );
            ExitCode::from(2)
        }
    }
}
