//! `medledger ledger-writer`: record events from Kafka into the PostgreSQL Merkle log, tree heads
//! onto the private chain over JSON-RPC.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use medledger_bus_kafka::KafkaBus;
use medledger_chain::{Address, RpcLedger};
use medledger_ledger_writer::{LedgerWriter, LedgerWriterConfig};
use tokio::sync::watch;

use super::config::LedgerWriterServiceConfig;

pub(crate) async fn run(cfg: LedgerWriterServiceConfig) -> anyhow::Result<()> {
    let store = super::postgres(&cfg.postgres).await?;
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
    let writer = LedgerWriter::start(
        store,
        Arc::new(ledger),
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
    super::serve_admin(cfg.admin_listen, move || {
        if probe.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("ledger writer stopped")
        }
    })
    .await?;
    tracing::info!(size = writer.size(), "ledger writer running");
    let (stop, stopped) = watch::channel(false);
    let mut task = tokio::spawn(writer.run(stopped));
    tokio::select! {
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
