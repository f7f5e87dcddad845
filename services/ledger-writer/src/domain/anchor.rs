//! Anchoring: the latest committed tree head of the private chain goes onto the public chain's
//! Anchor contract, at most once per interval.
//!
//! It runs beside the log-and-commit loop, not inside it, so a slow or absent public chain
//! delays anchoring only: records keep being logged and committed on the private chain. Each
//! checkpoint covers everything before it (consistency proofs link any earlier tree head to
//! it), so anchoring only the latest head loses nothing.

use std::sync::Arc;
use std::time::Duration;

use medledger_chain::{AnchorChain, ChainCommit, Checkpoint, Ledger};
use medledger_storage_api::{AnchorRow, LedgerStore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WriterError;

/// Anchors committed tree heads on a public chain.
pub struct Anchorer {
    store: Arc<dyn LedgerStore>,
    ledger: Arc<dyn Ledger>,
    chain: Arc<dyn AnchorChain>,
    interval: Duration,
    /// Tree size of the latest checkpoint known to be anchored and recorded.
    anchored_size: u64,
    /// Whether the stored anchors were checked against the public chain yet.
    reconciled: bool,
}

impl Anchorer {
    /// An anchorer for the heads in `store` (committed on `ledger`) onto `chain`.
    pub fn new(
        store: Arc<dyn LedgerStore>,
        ledger: Arc<dyn Ledger>,
        chain: Arc<dyn AnchorChain>,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            ledger,
            chain,
            interval,
            anchored_size: 0,
            reconciled: false,
        }
    }

    /// Tree size covered by the latest anchored checkpoint.
    pub fn anchored_size(&self) -> u64 {
        self.anchored_size
    }

    /// Anchors until `shutdown`. A failed attempt (public chain away, store busy) is
    /// retried with backoff; only an anchor history that contradicts the store ends the loop
    /// with [`WriterError::Inconsistent`].
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), WriterError> {
        let mut backoff = Duration::from_secs(1);
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let wait = match self.anchor_latest().await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    self.interval
                }
                Err(e @ WriterError::Inconsistent(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "anchoring on the public chain failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.interval.max(Duration::from_secs(1)));
                    wait
                }
            };
            let deadline = Instant::now() + wait;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Anchors the latest committed tree head unless it is anchored already; returns whether a
    /// new checkpoint was anchored.
    pub async fn anchor_latest(&mut self) -> Result<bool, WriterError> {
        if !self.reconciled {
            self.reconcile().await?;
        }
        let Some(head) = self.store.latest_tree_head().await? else {
            return Ok(false);
        };
        if head.tree_size <= self.anchored_size {
            return Ok(false);
        }
        let source_block_hash = match parse_hash(&head.block_hash) {
            Some(h) => h,
            None => self.ledger.block_hash(head.block_number).await?.0,
        };
        let checkpoint = Checkpoint {
            tree_size: head.tree_size,
            root: head.root,
            source_block_number: head.block_number,
            source_block_hash,
        };
        let commit = match self.chain.anchor_checkpoint(&checkpoint).await {
            Ok(c) => c,
            Err(e) if e.revert_name() == Some("TreeSizeNotIncreasing") => {
                // Anchored earlier but not recorded (a crash in between): take it from the chain.
                self.reconcile().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        self.store
            .insert_anchor(&anchor_row(&checkpoint, &commit))
            .await?;
        tracing::debug!(
            size = head.tree_size,
            block = commit.block_number,
            "checkpoint anchored"
        );
        self.anchored_size = head.tree_size;
        Ok(true)
    }

    /// Brings the stored anchors and the public chain into agreement, as the writer does for
    /// tree heads: every recorded checkpoint must still be on the public chain, unchanged, and
    /// one on chain that the store lacks must be a committed tree head, and is then recorded.
    async fn reconcile(&mut self) -> Result<(), WriterError> {
        let stored = self.store.latest_anchor().await?;
        let count = self.chain.checkpoint_count().await?;
        if let Some(s) = &stored {
            if count <= s.chain_index {
                return Err(WriterError::Inconsistent(format!(
                    "the public chain holds {count} checkpoints but checkpoint {} was recorded: the Anchor was replaced",
                    s.chain_index
                )));
            }
            let on_chain = self.chain.checkpoint(s.chain_index).await?;
            if (on_chain.checkpoint.tree_size, on_chain.checkpoint.root) != (s.tree_size, s.root) {
                return Err(WriterError::Inconsistent(format!(
                    "checkpoint {} on the public chain differs from the recorded one",
                    s.chain_index
                )));
            }
        }
        let mut anchored = stored.as_ref().map_or(0, |s| s.tree_size);
        if count > 0 {
            let last = self.chain.checkpoint(count - 1).await?;
            let cp = &last.checkpoint;
            if cp.tree_size > anchored {
                let committed = self
                    .store
                    .tree_head_covering(cp.tree_size - 1)
                    .await?
                    .is_some_and(|h| h.tree_size == cp.tree_size && h.root == cp.root);
                if !committed {
                    return Err(WriterError::Inconsistent(format!(
                        "the public chain's last checkpoint (size {}) is not a committed tree head",
                        cp.tree_size
                    )));
                }
                // The receipt was lost; the checkpoint is found by its Anchor index.
                let located = ChainCommit {
                    chain_id: self.chain.chain_id(),
                    contract: self.chain.anchor(),
                    block_number: last.block_number,
                    block_hash: String::new(),
                    tx_hash: String::new(),
                    index: count - 1,
                };
                self.store.insert_anchor(&anchor_row(cp, &located)).await?;
                anchored = cp.tree_size;
            }
        }
        self.anchored_size = anchored;
        self.reconciled = true;
        Ok(())
    }
}

fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash.trim_start_matches("0x"))
        .ok()?
        .try_into()
        .ok()
}

fn anchor_row(cp: &Checkpoint, c: &ChainCommit) -> AnchorRow {
    AnchorRow {
        tree_size: cp.tree_size,
        root: cp.root,
        source_block_number: cp.source_block_number,
        source_block_hash: format!("0x{}", hex::encode(cp.source_block_hash)),
        chain_id: c.chain_id,
        contract: c.contract.clone(),
        chain_index: c.index,
        block_number: c.block_number,
        block_hash: c.block_hash.clone(),
        tx_hash: c.tx_hash.clone(),
    }
}
