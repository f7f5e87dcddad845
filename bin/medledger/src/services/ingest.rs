//! `medledger ingest`: FHIR writes on PostgreSQL + IPFS, events relayed from the outbox to Kafka.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use medledger_blobstore::IpfsBlobStore;
use medledger_bus_kafka::{KafkaBus, KafkaConfig};
use medledger_ingest::{Ingest, IngestConfig};
use medledger_storage_sqlx::{Outbox, OutboxRelay};
use sqlx::PgPool;
use tokio::sync::watch;

use super::config::IngestServiceConfig;

pub(crate) async fn run(cfg: IngestServiceConfig) -> anyhow::Result<()> {
    let store = super::postgres(&cfg.postgres).await?;
    let keys = super::owner_keys(store.clone(), &cfg.master_key_file).await?;
    let blobs = Arc::new(IpfsBlobStore::new(&cfg.ipfs.api_url).context("IPFS API URL")?);
    blobs.version().await.context("reaching the IPFS node")?;
    let gate = super::gate(&cfg.auth, &cfg.http).await?;
    let verifier = gate.verifier.clone();

    // Writes do not wait for Kafka: they land in the outbox, and the relay delivers them
    // whenever the brokers are reachable.
    let (stop, stopped) = watch::channel(false);
    let relay_alive = Arc::new(AtomicBool::new(true));
    let relay = tokio::spawn(relay_loop(
        store.pool().clone(),
        cfg.kafka.client("medledger-ingest"),
        cfg.relay_batch,
        stopped,
        relay_alive.clone(),
    ));
    let alive = relay_alive.clone();
    let pool = store.pool().clone();
    let gauges: crate::web::Gauges = Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            medledger_storage_sqlx::outbox_backlog(&pool)
                .await
                .map(|n| medledger_telemetry::metrics::Gauge {
                    name: "medledger_outbox_backlog",
                    help: "Events committed with their writes but not yet acknowledged by Kafka.",
                    value: n as f64,
                })
                .into_iter()
                .collect()
        })
    });
    super::serve_admin(
        cfg.admin_listen,
        move || {
            if alive.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("outbox relay stopped")
            }
        },
        gauges,
    )
    .await?;

    let audit = medledger_audit::Auditor::new(store.clone());
    let ingest = Ingest::new(
        store.clone(),
        blobs,
        keys,
        Arc::new(cfg.consent.policy()?),
        audit,
        IngestConfig {
            max_body_bytes: cfg.http.max_body_bytes,
            ..IngestConfig::default()
        },
    );
    let mllp = if cfg.mllp.enabled {
        let listener = tokio::net::TcpListener::bind(cfg.mllp.listen)
            .await
            .with_context(|| format!("binding {} for MLLP", cfg.mllp.listen))?;
        let credential = Arc::new(TokenFileFeed {
            path: cfg.mllp.token_file.clone(),
            verifier,
        });
        // Fail at start, not at the first message, when the token cannot be used.
        medledger_ingest::mllp::FeedCredential::caller(credential.as_ref())
            .await
            .map_err(|e| anyhow::anyhow!("mllp.token_file: {}", e.message))?;
        let receiver =
            medledger_ingest::mllp::Receiver::new(ingest.clone(), store.clone(), credential);
        let limits = medledger_ingest::mllp::MllpConfig {
            max_message_bytes: cfg.mllp.max_message_bytes,
            max_connections: cfg.mllp.max_connections,
            max_connections_per_peer: cfg.mllp.max_connections_per_peer,
            idle_timeout: Duration::from_secs(cfg.mllp.idle_timeout_secs),
            ..medledger_ingest::mllp::MllpConfig::default()
        };
        tracing::info!(listen = %cfg.mllp.listen, "serving HL7 v2 over MLLP");
        Some(tokio::spawn(medledger_ingest::mllp::serve(
            listener,
            receiver,
            limits,
            stop.subscribe(),
        )))
    } else {
        None
    };
    let app = crate::web::fhir_app(
        medledger_ingest::routes(ingest),
        gate,
        cfg.http.max_body_bytes,
    );
    super::serve_until_signal(cfg.http.listen, app, "ingest").await?;
    let _ = stop.send(true);
    if let Some(task) = mllp {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    if tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .is_err()
    {
        tracing::warn!("outbox relay did not stop in time; its rows are relayed after restart");
    }
    Ok(())
}

/// Connects to Kafka (retrying while the brokers are away), creates the topics, then relays.
async fn relay_loop(
    pool: PgPool,
    kafka: KafkaConfig,
    batch: usize,
    mut stopped: watch::Receiver<bool>,
    alive: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(200);
    let bus = loop {
        let attempt = async {
            let bus = KafkaBus::connect(kafka.clone()).await?;
            bus.ensure_topics(&medledger_proto::ALL_TOPICS).await?;
            Ok::<_, medledger_bus::BusError>(bus)
        };
        match attempt.await {
            Ok(bus) => break bus,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka not reachable yet; writes wait in the outbox");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => { return; }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    tracing::info!("outbox relays connected to Kafka");
    // Two outboxes: ingest's (record events, and the AuditEvents of writes, committed with
    // them) and the audit schema's, where query and consent queue the AuditEvents of reads and
    // consent changes. Ingest relays both, so only it needs to reach Kafka; while it is down
    // those events wait, durably, in PostgreSQL.
    let publisher: Arc<dyn medledger_bus::EventPublisher> = Arc::new(bus.clone());
    tokio::join!(
        OutboxRelay::new(pool.clone(), publisher.clone(), batch).run(stopped.clone()),
        OutboxRelay::of(Outbox::Audit, pool, publisher, batch).run(stopped),
    );
    if let Err(e) = bus.flush() {
        tracing::warn!(error = %e, "flushing the producer at shutdown");
    }
    alive.store(false, Ordering::Release);
}

/// The feed account of MLLP writes: a bearer token in a file, verified like any request's.
struct TokenFileFeed {
    path: std::path::PathBuf,
    verifier: medledger_auth::TokenVerifier,
}

#[async_trait::async_trait]
impl medledger_ingest::mllp::FeedCredential for TokenFileFeed {
    async fn caller(&self) -> Result<medledger_auth::Caller, medledger_http::ApiError> {
        let token = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            medledger_http::ApiError::unavailable(
                format!("reading {}: {e}", self.path.display()),
                5,
            )
        })?;
        let token = token.trim();
        let claims = self.verifier.verify(token).map_err(|e| {
            medledger_http::ApiError::unavailable(format!("the feed token: {e}"), 5)
        })?;
        Ok(medledger_auth::Caller::new(claims, token))
    }
}
