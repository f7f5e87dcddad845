//! `medledger ingest`: FHIR writes and HL7 v2 on PostgreSQL + IPFS, decisions from the consent
//! service, events relayed from the outbox to Kafka.

use std::sync::Arc;
use std::time::Duration;

use medledger_audit::Auditor;
use medledger_bus_kafka::{KafkaBus, KafkaConfig};
use medledger_http::Shell;
use medledger_storage_sqlx::{Outbox, OutboxRelay};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::process::Process;
use crate::wiring;

pub(crate) async fn run(cfg: medledger_ingest::Config) -> anyhow::Result<()> {
    let mut process = Process::new(true);
    let (store, keys, blobs) = super::records(
        &cfg.postgres,
        &cfg.master_key_file,
        &cfg.ipfs,
        cfg.search_key,
    )
    .await?;
    let verifier = super::verifier(&cfg.auth, &process).await?;
    let ingest = medledger_ingest::Service::start(
        medledger_ingest::Ports {
            index: store.clone(),
            search: store.clone(),
            blobs,
            keys,
            policy: super::consent_policy(&cfg.consent)?,
            audit: Auditor::new(store.clone()),
            messages: store.clone(),
            feed: Arc::new(medledger_ingest::mllp::TokenFileFeed {
                path: cfg.mllp.token_file.clone(),
                verifier: verifier.clone(),
            }),
        },
        &cfg,
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    let pool = store.pool().clone();
    let shell = Shell::new(
        cfg.http.gate(verifier),
        cfg.http.max_body_bytes,
        wiring::capability(Some(&cfg.auth)),
        process.readiness(),
    )
    .with_smart_configuration(cfg.auth.smart_configuration())
    .with_gauges(Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            medledger_storage_sqlx::outbox_backlog(&pool)
                .await
                .map(|n| medledger_http::Gauge {
                    name: "medledger_outbox_backlog",
                    help: "Events committed with their writes but not yet acknowledged by Kafka.",
                    value: n as f64,
                })
                .into_iter()
                .collect()
        })
    }));
    process
        .serve("admin listener", cfg.admin_listen, shell.probes())
        .await?;
    let stop = process.shutdown();
    // Writes do not wait for Kafka: they land in the outbox, and the relay delivers them
    // whenever the brokers are reachable.
    process.spawn(
        "outbox relay",
        relay(
            store.pool().clone(),
            KafkaConfig::of(&cfg.kafka, "medledger-ingest"),
            cfg.relay_batch,
            stop.clone(),
        ),
    );
    let app = ingest.app(&shell);
    process.spawn("MLLP listener", async move {
        ingest.run(stop).await.map_err(anyhow::Error::from_boxed)
    });
    let addr = process.serve("FHIR listener", cfg.http.listen, app).await?;
    tracing::info!(%addr, "ingest serving FHIR");
    process.run().await
}

/// Connects to Kafka (retrying while the brokers are away), creates the topics, then relays
/// until `shutdown`.
async fn relay(
    pool: PgPool,
    kafka: KafkaConfig,
    batch: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
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
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return Ok(()),
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
        OutboxRelay::new(pool.clone(), publisher.clone(), batch).run(shutdown.clone()),
        OutboxRelay::of(Outbox::Audit, pool, publisher, batch).run(shutdown),
    );
    if let Err(e) = bus.flush() {
        tracing::warn!(error = %e, "flushing the producer at shutdown");
    }
    Ok(())
}
