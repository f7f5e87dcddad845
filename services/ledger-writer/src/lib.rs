//! Ledger writer: consumes record and audit events, appends leaves to the Merkle log and commits
//! tree heads to the private chain; anchors checkpoints of them on the public chain
//! ([`Anchorer`]); commits role and consent changes to Roles and ConsentRegistry
//! ([`Registrar`]) with the same chain key.
//!
//! Exactly-once effect: a leaf is keyed by (kind, subject, version), so a redelivered event adds
//! nothing; leaves are durable in the ledger store before a tree head covering them is committed;
//! the consumer offset is committed only after the chain receipt of a head covering the events.
//! After a crash, leaves not yet covered by a head on chain are committed by the next head.
//!
//! The service's shape: [`Config`], the [`Ports`] it needs, [`Service::start`] (reconciles the
//! log with the chain) and [`Service::run`] (the three loops, supervised together, until
//! shutdown).

pub mod config;
pub mod domain;

use std::sync::Arc;

use medledger_bus::EventBus;
use medledger_chain::{AnchorChain, Ledger, Registry};
use medledger_storage_api::{LedgerStore, RegistryQueue};
use medledger_telemetry::metrics::{Gauge, Gauges};
use tokio_util::sync::CancellationToken;

pub use config::{AnchorConfig, ChainConfig, Config, Settings};
pub use domain::{Anchorer, LedgerWriter, Registrar, WriterError};

/// What the ledger writer needs from the world, chosen where the backends are.
pub struct Ports {
    /// The log, tree heads and anchors.
    pub store: Arc<dyn LedgerStore>,
    /// The private chain (RecordLog).
    pub ledger: Arc<dyn Ledger>,
    /// Where record and audit events come from.
    pub bus: Arc<dyn EventBus>,
    /// The public chain to anchor checkpoints on; `None`: not anchored.
    pub anchor: Option<Arc<dyn AnchorChain>>,
    /// The role and consent changes to register, and where (Roles, ConsentRegistry); `None`:
    /// not registered.
    pub registry: Option<(Arc<dyn RegistryQueue>, Arc<dyn Registry>)>,
}

/// The ledger writer, reconciled with the chain and ready to run.
pub struct Service {
    writer: LedgerWriter,
    anchorer: Option<Anchorer>,
    registrar: Option<Registrar>,
}

impl Service {
    /// Rebuilds the Merkle tree from the store and reconciles it with the chain.
    pub async fn start(ports: Ports, settings: Settings) -> Result<Self, WriterError> {
        let anchorer = ports.anchor.map(|public| {
            Anchorer::new(
                ports.store.clone(),
                ports.ledger.clone(),
                public,
                settings.anchor_interval,
            )
        });
        let registrar = ports
            .registry
            .map(|(queue, chain)| Registrar::new(queue, chain, settings.registrar_interval));
        let writer = LedgerWriter::start(ports.store, ports.ledger, ports.bus, settings).await?;
        Ok(Self {
            writer,
            anchorer,
            registrar,
        })
    }

    /// Leaves in the log.
    pub fn size(&self) -> u64 {
        self.writer.size()
    }

    /// Runs the log-and-commit loop, the anchorer and the registrar until `shutdown`. Any one
    /// failing stops all: proofs would stop being made, and the process should say so.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WriterError> {
        let anchoring = async {
            match self.anchorer {
                Some(a) => a.run(shutdown.clone()).await,
                None => Ok(()),
            }
        };
        let registering = async {
            match self.registrar {
                Some(r) => r.run(shutdown.clone()).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(self.writer.run(shutdown.clone()), anchoring, registering).map(|_| ())
    }
}

/// The ledger's progress from its store, read at scrape time: the tree size committed on the
/// private chain and the tree size anchored on the public chain. A store that does not answer
/// reports nothing.
pub fn gauges(store: Arc<dyn LedgerStore>) -> Gauges {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            if let Ok(head) = store.latest_tree_head().await {
                out.push(Gauge {
                    name: "medledger_ledger_committed_tree_size",
                    help: "Leaves covered by the latest tree head committed on the private chain.",
                    value: head.map_or(0.0, |h| h.tree_size as f64),
                });
            }
            if let Ok(anchor) = store.latest_anchor().await {
                out.push(Gauge {
                    name: "medledger_ledger_anchored_tree_size",
                    help: "Leaves covered by the latest checkpoint anchored on the public chain.",
                    value: anchor.map_or(0.0, |a| a.tree_size as f64),
                });
            }
            out
        })
    })
}
