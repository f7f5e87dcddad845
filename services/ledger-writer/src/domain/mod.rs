//! The log-and-commit loop, and the anchoring of its tree heads on the public chain.

mod anchor;
mod registrar;

pub use anchor::Anchorer;
pub use registrar::Registrar;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medledger_bus::{BusRecord, EventBus, Subscription};
use medledger_chain::Ledger;
use medledger_ledger::events::{audit_leaf, record_leaf};
use medledger_merkle::MerkleTree;
use medledger_proto::v1::{AuditRecorded, DeadLetter, RecordVersionStored};
use medledger_proto::{AUDIT_TOPIC, DEAD_LETTER_TOPIC, Message, RECORDS_TOPIC};
use medledger_storage_api::{LeafRow, LedgerStore, TreeHeadRow};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Settings;

/// Failures that stop the writer from starting.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] medledger_storage_api::StoreError),
    /// Chain failure.
    #[error(transparent)]
    Chain(#[from] medledger_chain::ChainError),
    /// Bus failure.
    #[error(transparent)]
    Bus(#[from] medledger_bus::BusError),
    /// The stored log does not match the chain.
    #[error("ledger state is inconsistent: {0}")]
    Inconsistent(String),
}

/// The ledger writer.
pub struct LedgerWriter {
    store: Arc<dyn LedgerStore>,
    ledger: Arc<dyn Ledger>,
    bus: Arc<dyn EventBus>,
    config: Settings,
    tree: MerkleTree,
    committed_size: u64,
}

/// The leaf of a bus record, by its topic.
fn parse(r: &BusRecord) -> Result<LeafRow, &'static str> {
    if r.topic == AUDIT_TOPIC {
        AuditRecorded::decode(r.payload.as_slice())
            .map_err(|_| "undecodable payload")
            .and_then(|ev| audit_leaf(&ev))
    } else {
        RecordVersionStored::decode(r.payload.as_slice())
            .map_err(|_| "undecodable payload")
            .and_then(|ev| record_leaf(&ev))
    }
}

impl LedgerWriter {
    /// Loads the log and reconciles it with the chain.
    pub async fn start(
        store: Arc<dyn LedgerStore>,
        ledger: Arc<dyn Ledger>,
        bus: Arc<dyn EventBus>,
        config: Settings,
    ) -> Result<Self, WriterError> {
        let leaves = store.leaves().await?;
        let tree = MerkleTree::from_leaf_hashes(
            leaves.iter().map(|l| medledger_merkle::leaf_hash(&l.leaf)),
        );
        let mut writer = Self {
            store,
            ledger,
            bus,
            config,
            tree,
            committed_size: 0,
        };
        writer.reconcile().await?;
        Ok(writer)
    }

    /// Brings the stored tree heads and the chain into agreement, or fails closed.
    ///
    /// Every head the store recorded must still be on chain, unchanged: a chain that was
    /// replaced or cut short would otherwise make stored proofs point at heads that are gone.
    /// A head on chain that the store lacks (a crash between the chain receipt and recording it)
    /// must match the local leaves and is then recorded.
    async fn reconcile(&mut self) -> Result<(), WriterError> {
        let stored = self.store.latest_tree_head().await?;
        let count = self.ledger.tree_head_count().await?;
        if let Some(h) = &stored {
            if count <= h.chain_index {
                return Err(WriterError::Inconsistent(format!(
                    "the chain holds {count} tree heads but head {} was recorded: the chain was replaced or truncated",
                    h.chain_index
                )));
            }
            let on_chain = self.ledger.tree_head(h.chain_index).await?;
            if (on_chain.tree_size, on_chain.root) != (h.tree_size, h.root) {
                return Err(WriterError::Inconsistent(format!(
                    "tree head {} on chain differs from the recorded one",
                    h.chain_index
                )));
            }
        }
        self.committed_size = stored.map_or(0, |h| h.tree_size);
        if count > 0 {
            let on_chain = self.ledger.tree_head(count - 1).await?;
            let root = self.tree.root_at(on_chain.tree_size).map_err(|e| {
                WriterError::Inconsistent(format!(
                    "the chain's last head is beyond the local log: {e}"
                ))
            })?;
            if root != on_chain.root {
                return Err(WriterError::Inconsistent(format!(
                    "chain head of size {} has a different root",
                    on_chain.tree_size
                )));
            }
            if on_chain.tree_size > self.committed_size {
                // The receipt was lost with the crash: the head is found on chain by its
                // RecordLog index (what verification uses) and its block by number; only the
                // transaction hash stays unknown.
                let block_hash = self.ledger.block_hash(on_chain.block_number).await?;
                let located = medledger_chain::ChainCommit {
                    chain_id: self.ledger.chain_id(),
                    contract: self.ledger.record_log(),
                    block_number: on_chain.block_number,
                    block_hash: block_hash.to_string(),
                    tx_hash: String::new(),
                    index: count - 1,
                };
                self.store
                    .insert_tree_head(&head_row(on_chain.tree_size, root, &located))
                    .await?;
                self.committed_size = on_chain.tree_size;
            }
        }
        Ok(())
    }

    /// Leaves in the log.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), WriterError> {
        // Record versions and audit events share the log; each topic has its own subscription
        // (and offsets), polled in turn.
        let mut subs = [
            self.bus
                .subscribe(&self.config.group, RECORDS_TOPIC)
                .await?,
            self.bus.subscribe(&self.config.group, AUDIT_TOPIC).await?,
        ];
        // The last record read from each partition of each subscription, committed once a head
        // covers it.
        let mut uncommitted: BTreeMap<(usize, u32), BusRecord> = BTreeMap::new();
        let mut turn = 0usize;
        let mut oldest_pending: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            turn = (turn + 1) % subs.len();
            let polled = tokio::select! {
                r = subs[turn].poll(self.config.max_batch, Duration::from_millis(25)) => r,
                () = shutdown.cancelled() => continue,
            };
            let records = match polled {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "bus poll failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if !records.is_empty() {
                // The subscription has moved past these records, so they are retried here until
                // they are stored; skipping them would lose leaves.
                while let Err(e) = self.append(&records).await {
                    if matches!(e, WriterError::Inconsistent(_)) || shutdown.is_cancelled() {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "storing leaves failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                for r in &records {
                    uncommitted.insert((turn, r.partition), r.clone());
                }
                oldest_pending.get_or_insert_with(Instant::now);
            }
            let pending = self.tree.size() - self.committed_size;
            let due = oldest_pending.is_some_and(|t| t.elapsed() >= self.config.batch_interval)
                || pending as usize >= self.config.max_batch;
            if pending > 0 && due {
                match self.commit_head().await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e @ WriterError::Inconsistent(_)) => return Err(e),
                    Err(e) => {
                        // Leaves are durable; the next attempt commits them. Offsets stay put.
                        tracing::warn!(error = %e, "tree head commit failed; will retry");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            if self.tree.size() == self.committed_size {
                oldest_pending = None;
                for ((sub, _), rec) in std::mem::take(&mut uncommitted) {
                    commit_offset(subs[sub].as_mut(), &rec).await;
                }
            }
        }
        Ok(())
    }

    async fn append(&mut self, records: &[BusRecord]) -> Result<(), WriterError> {
        let mut rows = Vec::with_capacity(records.len());
        for r in records {
            match parse(r) {
                Ok(row) => rows.push(row),
                // A poison event must not block its partition: it is parked, with the reason,
                // before the offset moves past it (a failure here retries the whole batch).
                Err(reason) => self.dead_letter(r, reason).await?,
            }
        }
        for l in self.store.append_leaves(&rows).await? {
            if l.index != self.tree.size() {
                return Err(WriterError::Inconsistent(format!(
                    "leaf index {} but tree size {}",
                    l.index,
                    self.tree.size()
                )));
            }
            self.tree.push(&l.leaf);
        }
        Ok(())
    }

    async fn dead_letter(&self, r: &BusRecord, reason: &str) -> Result<(), WriterError> {
        tracing::error!(
            topic = %r.topic,
            partition = r.partition,
            offset = r.offset,
            reason,
            "parking malformed record event on the dead-letter topic"
        );
        let parked = DeadLetter {
            source_topic: r.topic.clone(),
            source_partition: r.partition,
            source_offset: r.offset,
            consumer_group: self.config.group.clone(),
            reason: reason.to_owned(),
            key: r.key.clone(),
            payload: r.payload.clone(),
            parked_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        };
        self.bus
            .publish(DEAD_LETTER_TOPIC, &r.key, &parked.encode_to_vec())
            .await?;
        Ok(())
    }

    async fn commit_head(&mut self) -> Result<(), WriterError> {
        let size = self.tree.size();
        let root = self.tree.root();
        let c = match self.ledger.commit_tree_head(size, root).await {
            Ok(c) => c,
            Err(e) if e.revert_name() == Some("TreeSizeNotIncreasing") => {
                // The chain already holds this head: an earlier attempt committed it and then
                // failed to record it. Record it from the chain instead of retrying forever.
                self.reconcile().await?;
                if self.committed_size >= size {
                    return Ok(());
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        self.store
            .insert_tree_head(&head_row(size, root, &c))
            .await?;
        tracing::debug!(size, block = c.block_number, "tree head committed");
        self.committed_size = size;
        Ok(())
    }
}

async fn commit_offset(sub: &mut dyn Subscription, rec: &BusRecord) {
    if let Err(e) = sub.commit(rec).await {
        // Harmless: redelivered events are recognised by their leaf key.
        tracing::warn!(error = %e, "offset commit failed");
    }
}

fn head_row(size: u64, root: [u8; 32], c: &medledger_chain::ChainCommit) -> TreeHeadRow {
    TreeHeadRow {
        tree_size: size,
        root,
        chain_id: c.chain_id,
        contract: c.contract.clone(),
        chain_index: c.index,
        block_number: c.block_number,
        block_hash: c.block_hash.clone(),
        tx_hash: c.tx_hash.clone(),
    }
}
