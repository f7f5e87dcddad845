//! `medledger dev`: every service in one process on embedded backends. This is the one place
//! where the embedded backends are chosen and wired to the services.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use medledger_blobstore::LocalBlockstore;
use medledger_bus::SqliteBus;
use medledger_chain::EmbeddedChain;
use medledger_consent::{ConsentPolicy, Enrolment};
use medledger_http::{Gate, RateLimiter};
use medledger_ingest::{Ingest, IngestConfig};
use medledger_keys::{FileMasterKey, OwnerKeys};
use medledger_ledger_writer::{Anchorer, LedgerWriter, LedgerWriterConfig, Registrar};
use medledger_query::{Query, QueryConfig};
use medledger_storage_sqlx::SqliteStore;
use tokio::sync::watch;

use crate::web;

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
}

/// The clock consent decisions use: the system's, or the test clock file's.
pub(crate) fn consent_clock(file: Option<PathBuf>) -> Arc<dyn Fn() -> i64 + Send + Sync> {
    Arc::new(move || {
        file.as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(medledger_auth::unix_now)
    })
}

pub(crate) fn issuer_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("dev-issuer.pem")
}

/// Builds the application and serves it until SIGINT/SIGTERM.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = Arc::new(
        SqliteStore::open(&dir.join("state.db"))
            .await
            .context("opening the state database")?,
    );
    let master_path = dir.join("keys").join("master.key");
    let master_existed = master_path.exists();
    let master = Arc::new(FileMasterKey::load_or_create(&master_path)?);
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
    let keys = OwnerKeys::new(store.clone(), master);
    if let Err(e) = keys.check_master_key().await {
        if !master_existed {
            // Leave the data dir as found, so the right key can simply be put back.
            let _ = std::fs::remove_file(&master_path);
        }
        anyhow::bail!(
            "keys/master.key is not the master key of this data dir ({e}); restore the original key file"
        );
    }
    // Accounts are enrolled from the dev issuer's tokens (`medledger token` names the role).
    let clock = consent_clock(args.test_clock_file.clone());
    let policy = Arc::new(ConsentPolicy::with_clock(
        store.clone(),
        Enrolment::FromTokens,
        clock.clone(),
    ));

    // One audit trail in the same database: a write's AuditEvent commits with the write, and a
    // read's is stored (and on the bus for the ledger writer) before the read answers.
    let audit = medledger_audit::Auditor::new(store.clone());
    let ingest = Ingest::new(
        store.clone(),
        blocks.clone(),
        keys.clone(),
        policy.clone(),
        audit.clone(),
        IngestConfig {
            max_body_bytes: args.max_body_bytes,
            ..IngestConfig::default()
        },
    );
    let query = Query::new(
        store.clone(),
        blocks.clone(),
        keys,
        store.clone(),
        policy,
        audit.clone(),
        QueryConfig {
            // Anchors follow tree heads within about one anchor interval.
            anchor_wait: Duration::from_millis(args.anchor_interval_ms.saturating_mul(3)),
            ..QueryConfig::default()
        },
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mllp_stop = stop_rx.clone();
    let writer = LedgerWriter::start(
        store.clone(),
        chain.clone(),
        bus,
        LedgerWriterConfig {
            batch_interval: Duration::from_millis(args.commit_interval_ms),
            ..LedgerWriterConfig::default()
        },
    )
    .await
    .context("starting the ledger writer")?;
    // Only once the writer has reconciled the log with the chain: a store that is missing or
    // behind would make every blob look like garbage.
    let b = blocks.clone();
    let removed = ingest
        .collect_orphans(blocks.list_blocks()?, move |c| b.object_blocks(c))
        .await
        .map_err(|e| anyhow::anyhow!("collecting orphaned blobs: {}", e.message))?;
    if removed > 0 {
        tracing::info!(removed, "removed blobs left by interrupted writes");
    }
    let writer_alive = Arc::new(AtomicBool::new(true));
    let alive = writer_alive.clone();
    let anchorer = Anchorer::new(
        store.clone(),
        chain.clone(),
        public_chain,
        Duration::from_millis(args.anchor_interval_ms),
    );
    let anchor_stop = stop_rx.clone();
    let registrar = Registrar::new(store.clone(), chain.clone(), Duration::from_millis(100));
    let registrar_stop = stop_rx.clone();
    let writer_task = tokio::spawn(async move {
        // The loops run until shutdown; any one failing stops all: proofs stop being made.
        let result = tokio::try_join!(
            writer.run(stop_rx),
            anchorer.run(anchor_stop),
            registrar.run(registrar_stop)
        )
        .map(|_| ());
        // Without a ledger writer, new versions never become readable: stop reporting ready.
        alive.store(false, Ordering::Release);
        if let Err(e) = &result {
            tracing::error!(error = %e, "ledger writer stopped");
        }
        result
    });

    let verifier =
        medledger_auth::TokenVerifier::new(medledger_auth::DEV_ISSUER, issuer.verifying_key());
    let mllp_listener = tokio::net::TcpListener::bind(args.mllp_listen)
        .await
        .with_context(|| format!("binding {} for MLLP (--mllp-listen)", args.mllp_listen))?;
    let mllp_addr = mllp_listener.local_addr()?;
    let receiver = medledger_ingest::mllp::Receiver::new(
        ingest.clone(),
        store.clone(),
        Arc::new(DevFeed {
            issuer: issuer.clone(),
            verifier: verifier.clone(),
            current: std::sync::Mutex::new(None),
        }),
    );
    let mllp_task = tokio::spawn(medledger_ingest::mllp::serve(
        mllp_listener,
        receiver,
        medledger_ingest::mllp::MllpConfig::default(),
        mllp_stop,
    ));
    let gate = Gate {
        verifier,
        limiter: Arc::new(RateLimiter::new(args.rate_limit, args.rate_burst)),
    };
    let gauges = web::ledger_gauges(store.clone());
    let consents = medledger_consent::ConsentApi::new(
        store.clone(),
        store.clone(),
        Enrolment::FromTokens,
        clock,
        audit,
    )
    .with_registry(store.clone());
    let app = app(
        ingest,
        query,
        consents,
        gate,
        args.max_body_bytes,
        writer_alive,
        gauges,
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("MedLedger dev is running.");
    println!("  FHIR base URL: http://{addr}/fhir");
    println!("  HL7 v2 (MLLP): {mllp_addr}");
    println!("  data dir:      {}", dir.display());
    println!(
        "  get a token:   scripts/medledger token --data-dir {} --subject Practitioner/dr-1 --role practitioner --scope 'user/*.cruds'",
        dir.display()
    );
    println!(
        "                 (from the repository root; with an installed binary: medledger token …)"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(web::shutdown_signal())
        .await?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), mllp_task).await;
    match tokio::time::timeout(Duration::from_secs(10), writer_task).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "ledger writer stopped with an error"),
        Ok(Err(e)) => tracing::error!(error = %e, "ledger writer task failed"),
        Err(_) => tracing::warn!("ledger writer did not stop in time"),
        Ok(Ok(Ok(()))) => {}
    }
    Ok(())
}

/// The HTTP application of `medledger dev`: every FHIR interaction under `/fhir`, probes at the
/// root.
pub(crate) fn app(
    ingest: Ingest,
    query: Query,
    consents: medledger_consent::ConsentApi,
    gate: Gate,
    max_body: usize,
    writer_alive: Arc<AtomicBool>,
    gauges: web::Gauges,
) -> Router {
    // Consent's static `/Consent` routes take precedence over the generic `/{type}` ones.
    let routes = medledger_ingest::routes(ingest)
        .merge(medledger_query::routes(query))
        .merge(medledger_consent::http::routes(consents));
    web::fhir_app(routes, gate, max_body).merge(web::probes(
        move || {
            if writer_alive.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("ledger writer stopped")
            }
        },
        gauges,
    ))
}

/// The account MLLP writes act as in `medledger dev`: an organization feed with tokens from the
/// dev issuer, minted again a minute before each expires.
struct DevFeed {
    issuer: medledger_auth::IssuerKey,
    verifier: medledger_auth::TokenVerifier,
    current: std::sync::Mutex<Option<(medledger_auth::Caller, i64)>>,
}

/// Subject of the dev MLLP feed's tokens.
pub(crate) const DEV_FEED: &str = "Organization/mllp-feed";

#[async_trait::async_trait]
impl medledger_ingest::mllp::FeedCredential for DevFeed {
    async fn caller(&self) -> Result<medledger_auth::Caller, medledger_http::ApiError> {
        let now = medledger_auth::unix_now();
        let mut current = self
            .current
            .lock()
            .map_err(|_| medledger_http::ApiError::internal("dev feed lock poisoned"))?;
        if let Some((caller, exp)) = current.as_ref()
            && *exp - now > 60
        {
            return Ok(caller.clone());
        }
        // Short-lived, like any token.
        let ttl = 300;
        let token = self
            .issuer
            .mint(DEV_FEED, "organization", "system/*.cu", now, ttl);
        let claims = self
            .verifier
            .verify(&token)
            .map_err(|e| medledger_http::ApiError::internal(format!("dev feed token: {e}")))?;
        let caller = medledger_auth::Caller::new(claims, &token);
        *current = Some((caller.clone(), now + ttl));
        Ok(caller)
    }
}
