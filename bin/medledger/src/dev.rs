//! `medledger dev`: every service in one process on embedded backends. This is the one place
//! where the embedded backends are chosen; the services, their loops, readiness and shutdown
//! are wired as in distributed mode (`process.rs`, `wiring.rs`), so the two differ only in what
//! they construct here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use medledger_audit::Auditor;
use medledger_blobstore::LocalBlockstore;
use medledger_chain_evm::EmbeddedChain;
use medledger_consent::Enrolment;
use medledger_http::{HttpConfig, Shell};
use medledger_storage_sqlx::SqliteBus;
use medledger_storage_sqlx::SqliteStore;

use crate::process::Process;
use crate::wiring;

/// Arguments of `medledger dev`.
#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// Where all state lives; created if missing. Reuse it to keep your data.
    #[arg(long, env = "MEDLEDGER_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to serve FHIR on.
    #[arg(long, env = "MEDLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address to serve HL7 v2 over MLLP on (writes act as the account `Organization/mllp-feed`).
    #[arg(long, env = "MEDLEDGER_MLLP_LISTEN", default_value = "127.0.0.1:2575")]
    mllp_listen: SocketAddr,
    /// Largest accepted request body, bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Requests per second each caller (token subject) may make on average.
    #[arg(long, default_value_t = 1000)]
    rate_limit: u32,
    /// Requests each caller may make in a burst above the average rate.
    #[arg(long, default_value_t = 2000)]
    rate_burst: u32,
    /// Longest wait, in milliseconds, between a write and the tree head committing it.
    #[arg(long, default_value_t = 250)]
    commit_interval_ms: u64,
    /// Shortest time, in milliseconds, between two checkpoints anchored on the simulated
    /// public chain.
    #[arg(long, default_value_t = 1000)]
    anchor_interval_ms: u64,
    /// For tests of expiry: consent decisions read "now" (Unix seconds) from this file while it
    /// exists, instead of the system clock. Tokens are still checked against the system clock.
    #[arg(long, hide = true)]
    test_clock_file: Option<PathBuf>,
    /// A TOML file with an `[auth]` table, as the services take (docs/configuration.md): the
    /// issuers trusted besides the dev issuer (JWK Sets, OpenID discovery, each with its
    /// audience) and the authorization server published for SMART discovery.
    #[arg(long, env = "MEDLEDGER_DEV_AUTH_CONFIG")]
    auth_config: Option<PathBuf>,
    #[command(flatten)]
    index_key: wiring::IndexKeyArgs,
}

/// The file `--auth-config` names.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DevAuth {
    auth: Option<medledger_auth::AuthConfig>,
}

/// A data dir's state database and its owner keys under `keys/master.key` (created with
/// `create`, else it must exist), with the search index at `index`: what `dev` runs on and what
/// `reindex` opens beside it.
pub(crate) async fn open_data_dir(
    dir: &Path,
    create: bool,
    index: medledger_search::IndexGenerations,
) -> anyhow::Result<(Arc<SqliteStore>, medledger_keys::OwnerKeys)> {
    let store = Arc::new(
        SqliteStore::open(&dir.join("state.db"))
            .await
            .context("opening the data dir's state database")?,
    );
    let keys = wiring::owner_keys(
        store.clone(),
        &dir.join("keys").join("master.key"),
        create,
        index,
    )
    .await
    .context("keys/master.key")?;
    Ok((store, keys))
}

pub(crate) fn issuer_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("dev-issuer.pem")
}

/// Subject of the dev MLLP feed's tokens.
pub(crate) const DEV_FEED: &str = "Organization/mllp-feed";

/// Opens the embedded backends, starts every service on them and serves until SIGINT/SIGTERM.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (store, keys) = open_data_dir(
        dir,
        true,
        args.index_key
            .over(medledger_search::IndexGenerations::default()),
    )
    .await?;
    let issuer = medledger_auth::IssuerKey::load_or_create(&issuer_key_path(dir))?;
    let blocks = Arc::new(LocalBlockstore::open(&dir.join("blobs"))?);
    let (chain_dir, public_dir) = (dir.join("chain"), dir.join("public-chain"));
    let (chain, public_chain) = tokio::task::spawn_blocking(move || {
        let private = EmbeddedChain::open(&chain_dir).context("opening the embedded chain")?;
        let public = EmbeddedChain::open_public(
            &public_dir,
            private.chain_id(),
            private.record_log_address(),
        )
        .context("opening the simulated public chain")?;
        anyhow::Ok((Arc::new(private), Arc::new(public)))
    })
    .await??;
    let bus = Arc::new(SqliteBus::new(store.pool().clone()));
    // One audit trail in the same database: a write's AuditEvent commits with the write, and a
    // read's is stored (and on the bus for the ledger writer) before the read answers.
    let audit = Auditor::new(store.clone());

    // Accounts are enrolled from the dev issuer's tokens (`medledger token` names the role).
    let consent = medledger_consent::Service::new(
        medledger_consent::Ports {
            store: store.clone(),
            requests: store.clone(),
            registry: store.clone(),
            records: store.clone(),
            audit: audit.clone(),
            clock: wiring::consent_clock(args.test_clock_file.clone()),
        },
        Enrolment::FromTokens,
    );
    let policy = consent.policy();
    let writer = medledger_ledger_writer::Service::start(
        medledger_ledger_writer::Ports {
            store: store.clone(),
            ledger: chain.clone(),
            bus,
            anchor: Some(public_chain as Arc<dyn medledger_chain::AnchorChain>),
            registry: Some((
                store.clone() as Arc<dyn medledger_storage_api::RegistryQueue>,
                chain as Arc<dyn medledger_chain::Registry>,
            )),
        },
        medledger_ledger_writer::Settings {
            batch_interval: Duration::from_millis(args.commit_interval_ms),
            anchor_interval: Duration::from_millis(args.anchor_interval_ms),
            registrar_interval: Duration::from_millis(100),
            ..medledger_ledger_writer::Settings::default()
        },
    )
    .await
    .context("starting the ledger writer")?;

    let mut process = Process::new(false);
    let auth = match &args.auth_config {
        Some(file) => {
            crate::configuration::load::<DevAuth>("DEV", Some(file))
                .with_context(|| format!("--auth-config {}", file.display()))?
                .auth
        }
        None => None,
    };
    // The dev issuer always, and whoever the auth file's `[[auth.issuers]]` trusts (its
    // single-issuer keys describe the dev issuer's place in a service's file: not read here).
    let external = match &auth {
        Some(a) if !a.issuers.is_empty() => a
            .verifier(process.shutdown().cancelled_owned())
            .await
            .map_err(anyhow::Error::msg)?,
        _ => medledger_auth::TokenVerifier::default(),
    };
    let verifier = external.with_issuer(
        medledger_auth::DEV_ISSUER,
        medledger_auth::KeySet::from_es256_key(issuer.verifying_key(), None),
    );
    let mut ingest_config = medledger_ingest::Config::default();
    ingest_config.mllp.enabled = true;
    ingest_config.mllp.listen = args.mllp_listen;
    let ingest = medledger_ingest::Service::start(
        medledger_ingest::Ports {
            index: store.clone(),
            search: store.clone(),
            blobs: blocks.clone(),
            keys: keys.clone(),
            policy: policy.clone(),
            audit: audit.clone(),
            messages: store.clone(),
            feed: Arc::new(medledger_ingest::mllp::MintedFeed::new(
                issuer,
                verifier.clone(),
                DEV_FEED,
            )),
        },
        &ingest_config,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e} (--mllp-listen)"))?;
    // Only once the writer has reconciled the log with the chain: a store that is missing or
    // behind would make every blob look like garbage. Before writes are accepted.
    let b = blocks.clone();
    let removed = ingest
        .ingest()
        .collect_orphans(blocks.list_blocks()?, move |c| b.object_blocks(c))
        .await
        .map_err(|e| anyhow::anyhow!("collecting orphaned blobs: {e}"))?;
    if removed > 0 {
        tracing::info!(removed, "removed blobs left by interrupted writes");
    }
    let query = medledger_query::Service::new(
        medledger_query::Ports {
            index: store.clone(),
            search: store.clone(),
            blobs: blocks,
            keys,
            ledger: store.clone(),
            policy,
            audit,
        },
        medledger_query::Settings {
            // Anchors follow tree heads within about one anchor interval.
            anchor_wait: Duration::from_millis(args.anchor_interval_ms.saturating_mul(3)),
            ..medledger_query::Settings::default()
        },
    );

    // One base URL for all of it; the probes on the same listener.
    let http = HttpConfig {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        rate_limit: args.rate_limit,
        rate_burst: args.rate_burst,
    };
    let shell = Shell::new(
        http.gate(verifier),
        http.max_body_bytes,
        wiring::capability(auth.as_ref()),
        process.readiness(),
    )
    .with_smart_configuration(auth.as_ref().and_then(|a| a.smart_configuration()))
    .with_gauges(medledger_ledger_writer::gauges(store));
    // Consent's static `/Consent` routes take precedence over the generic `/{type}` ones.
    let app = shell.app(
        ingest
            .routes()
            .merge(query.routes())
            .merge(consent.routes()),
    );
    let mllp_addr = ingest.mllp_addr();
    let stop = process.shutdown();
    process.spawn("ledger writer", writer.run(stop.clone()));
    process.spawn("MLLP listener", async move {
        ingest.run(stop).await.map_err(anyhow::Error::from_boxed)
    });
    let addr = process.serve("FHIR listener", args.listen, app).await?;
    println!("MedLedger dev is running.");
    println!("  FHIR base URL: http://{addr}/fhir");
    if let Some(mllp) = mllp_addr {
        println!("  HL7 v2 (MLLP): {mllp}");
    }
    println!("  data dir:      {}", dir.display());
    println!(
        "  get a token:   scripts/medledger token --data-dir {} --subject Practitioner/dr-1 --role practitioner --scope 'user/*.cruds'",
        dir.display()
    );
    println!(
        "                 (from the repository root; with an installed binary: medledger token …)"
    );
    process.run().await
}
