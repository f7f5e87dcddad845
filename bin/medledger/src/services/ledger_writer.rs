//! `medledger ledger-writer`: record events from Kafka into the PostgreSQL Merkle log, tree heads
//! onto the private chain over JSON-RPC, checkpoints of them onto the public chain.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use medledger_bus_kafka::{KafkaBus, KafkaConfig};
use medledger_chain::{Address, AnchorChain, Ledger, Registry};
use medledger_chain_rpc::{RpcAnchor, RpcLedger};
use medledger_storage_api::RegistryQueue;

use crate::process::Process;

/// Fails when the session holding the writer lock is gone (PostgreSQL restarted, the
/// connection broke): from then on a standby may take over, so this writer must stop.
async fn hold_lock(
    mut conn: sqlx::PgConnection,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        let ping = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query("SELECT 1").execute(&mut conn),
        )
        .await;
        if !matches!(ping, Ok(Ok(_))) {
            anyhow::bail!(
                "lost the writer lock's database session; stopping so that a standby can take over"
            );
        }
    }
}

/// Advisory lock key that makes one ledger writer the active one ("mlwriter").
const WRITER_LOCK: i64 = 0x6d6c_7772_6974_6572;

/// Waits until this process is the one active ledger writer of the database: the Merkle log is
/// one sequence, so replicas stand by until the active writer's session ends (a crash or
/// SIGKILL ends it at once). The returned connection holds the lock for the process's life.
async fn become_active(pool: &sqlx::PgPool) -> anyhow::Result<sqlx::PgConnection> {
    let mut conn = pool
        .acquire()
        .await
        .context("connecting for the writer lock")?
        .detach();
    let mut announced = false;
    loop {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK)
            .fetch_one(&mut conn)
            .await
            .context("taking the writer lock")?;
        if locked {
            return Ok(conn);
        }
        if !announced {
            tracing::info!("another ledger writer is active; standing by");
            announced = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(crate) async fn run(cfg: medledger_ledger_writer::Config) -> anyhow::Result<()> {
    let mut process = Process::new(true);
    let store = super::postgres(&cfg.postgres).await?;
    let active = become_active(store.pool()).await?;
    let bus = KafkaBus::connect(KafkaConfig::of(&cfg.kafka, "medledger-ledger-writer"))
        .await
        .context("connecting to Kafka")?;
    bus.ensure_topics(&medledger_proto::ALL_TOPICS)
        .await
        .context("creating the topics")?;
    let address = Address::from_str(cfg.chain.record_log_address.trim())
        .context("chain.record_log_address is not an address (run `medledger chain deploy`)")?;
    let ledger = RpcLedger::connect(
        &cfg.chain.rpc_url,
        super::signer(&cfg.chain.signer_key_file)?,
        address,
    )
    .await
    .context("connecting to the chain")?;
    let registry: Option<(Arc<dyn RegistryQueue>, Arc<dyn Registry>)> = match (
        cfg.chain.roles_address.trim(),
        cfg.chain.consent_registry_address.trim(),
    ) {
        ("", "") => {
            tracing::warn!(
                "chain.roles_address and chain.consent_registry_address are empty: role and consent changes are not committed to the chain"
            );
            None
        }
        (roles, registry) => {
            let roles = Address::from_str(roles)
                .context("chain.roles_address is not an address (run `medledger chain deploy`)")?;
            let registry = Address::from_str(registry).context(
                "chain.consent_registry_address is not an address (run `medledger chain deploy`)",
            )?;
            let chain = ledger
                .registry(roles, registry)
                .await
                .context("connecting to Roles and ConsentRegistry")?;
            Some((store.clone(), Arc::new(chain)))
        }
    };
    let ledger = Arc::new(ledger);
    let anchor: Option<Arc<dyn AnchorChain>> = match cfg.anchor.rpc_url.trim() {
        "" => {
            tracing::warn!(
                "anchor.rpc_url is empty: tree heads are not anchored on a public chain"
            );
            None
        }
        url => {
            let address = Address::from_str(cfg.anchor.anchor_address.trim()).context(
                "anchor.anchor_address is not an address (run `medledger chain deploy --public-rpc …`)",
            )?;
            let anchor = RpcAnchor::connect(
                url,
                super::signer(&cfg.anchor.signer_key_file)?,
                address,
                ledger.chain_id(),
                ledger.record_log_address(),
            )
            .await
            .context("connecting to the public chain's Anchor")?;
            tracing::info!(anchor = %anchor.anchor(), chain = AnchorChain::chain_id(&anchor), "anchoring on the public chain");
            Some(Arc::new(anchor))
        }
    };
    let writer = medledger_ledger_writer::Service::start(
        medledger_ledger_writer::Ports {
            store: store.clone(),
            ledger,
            bus: Arc::new(bus),
            anchor,
            registry,
        },
        medledger_ledger_writer::Settings::of(&cfg),
    )
    .await
    .context("starting the ledger writer")?;
    process
        .serve(
            "admin listener",
            cfg.admin_listen,
            medledger_http::probes(process.readiness(), medledger_ledger_writer::gauges(store)),
        )
        .await?;
    tracing::info!(size = writer.size(), "ledger writer running");
    let stop = process.shutdown();
    process.spawn("ledger writer", writer.run(stop.clone()));
    process.spawn("writer lock", hold_lock(active, stop));
    process.run().await
}
