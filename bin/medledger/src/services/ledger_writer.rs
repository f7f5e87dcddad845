//! `medledger ledger-writer`: record events from Kafka into the PostgreSQL Merkle log, tree heads
//! onto the private chain over JSON-RPC, checkpoints of them onto the public chain.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use medledger_bus_kafka::KafkaBus;
use medledger_chain::{Address, AnchorChain, Ledger, RpcAnchor, RpcLedger};
use medledger_ledger_writer::{Anchorer, LedgerWriter, LedgerWriterConfig, Registrar};
use tokio::sync::watch;

use super::config::LedgerWriterServiceConfig;

/// Resolves when the session holding the writer lock is gone (PostgreSQL restarted, the
/// connection broke): from then on a standby may take over, so this writer must stop.
async fn lock_lost(mut conn: sqlx::PgConnection) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ping = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query("SELECT 1").execute(&mut conn),
        )
        .await;
        if !matches!(ping, Ok(Ok(_))) {
            return;
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

pub(crate) async fn run(cfg: LedgerWriterServiceConfig) -> anyhow::Result<()> {
    let store = super::postgres(&cfg.postgres).await?;
    let active = become_active(store.pool()).await?;
    let bus = KafkaBus::connect(cfg.kafka.client("medledger-ledger-writer"))
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
    let registrar = match (
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
            Some(Registrar::new(
                store.clone(),
                Arc::new(chain),
                Duration::from_millis(cfg.registrar_interval_ms),
            ))
        }
    };
    let ledger = Arc::new(ledger);
    let anchorer = match cfg.anchor.rpc_url.trim() {
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
            Some(Anchorer::new(
                store.clone(),
                ledger.clone(),
                Arc::new(anchor),
                Duration::from_millis(cfg.anchor.interval_ms),
            ))
        }
    };
    let writer = LedgerWriter::start(
        store.clone(),
        ledger,
        Arc::new(bus),
        LedgerWriterConfig {
            batch_interval: Duration::from_millis(cfg.batch_interval_ms),
            max_batch: cfg.max_batch,
            group: cfg.group.clone(),
        },
    )
    .await
    .context("starting the ledger writer")?;
    let alive = Arc::new(AtomicBool::new(true));
    let probe = alive.clone();
    super::serve_admin(
        cfg.admin_listen,
        move || {
            if probe.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("ledger writer stopped")
            }
        },
        crate::web::ledger_gauges(store),
    )
    .await?;
    tracing::info!(size = writer.size(), "ledger writer running");
    let (stop, stopped) = watch::channel(false);
    let anchor_stop = stopped.clone();
    let registrar_stop = stopped.clone();
    // Any loop failing ends all (try_join), so readiness reflects the whole writer.
    let mut task = tokio::spawn(async move {
        let anchoring = async move {
            match anchorer {
                Some(a) => a.run(anchor_stop).await,
                None => Ok(()),
            }
        };
        let registering = async move {
            match registrar {
                Some(r) => r.run(registrar_stop).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(writer.run(stopped), anchoring, registering).map(|_| ())
    });
    tokio::select! {
        _ = lock_lost(active) => {
            alive.store(false, Ordering::Release);
            let _ = stop.send(true);
            task.abort();
            anyhow::bail!("lost the writer lock's database session; stopping so that a standby can take over");
        }
        _ = crate::web::shutdown_signal() => {
            let _ = stop.send(true);
            match tokio::time::timeout(Duration::from_secs(10), &mut task).await {
                Ok(Ok(r)) => r.context("ledger writer")?,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => tracing::warn!("ledger writer did not stop in time"),
            }
        }
        r = &mut task => {
            alive.store(false, Ordering::Release);
            r?.context("ledger writer stopped")?;
        }
    }
    Ok(())
}
