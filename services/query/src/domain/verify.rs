//! `$verify`: a proof bundle for one version (format in `docs/proof-format.md`).

use std::time::Duration;

use medledger_auth::Caller;
use medledger_ledger::{
    AnchorLocation, ChainLocation, LeafKind, PROOF_FORMAT, ProofBundle, RecordLeaf, TreeHead,
};
use medledger_storage_api::{AnchorRow, TreeHeadRow};
use tokio::time::Instant;

use super::Query;
use crate::QueryError;

impl Query {
    /// Builds the proof bundle of `rt/id/_history/vid`, waiting up to the configured time for a
    /// tree head covering it to be committed (and for a public anchor covering that head).
    pub async fn proof(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        vid: u64,
    ) -> Result<ProofBundle, QueryError> {
        let v = self.read(caller, "operation", rt, id, Some(vid)).await?;
        let head = self.wait_for_head(v.leaf.index).await?;
        let anchor = self.wait_for_anchor(head.tree_size).await?;
        let (proof, consistency) = {
            let mut tree = self.tree.lock().await;
            let needed = anchor.as_ref().map_or(head.tree_size, |a| a.tree_size);
            if tree.size() < needed {
                for l in self.ledger.leaves_from(tree.size()).await? {
                    tree.push(&l.leaf);
                }
            }
            let integrity = |e: medledger_merkle::MerkleError| QueryError::Integrity(e.to_string());
            if tree.root_at(head.tree_size).map_err(integrity)? != head.root {
                return Err(QueryError::Integrity(
                    "the stored log does not match the committed tree head".into(),
                ));
            }
            let consistency = match &anchor {
                Some(a) => {
                    if tree.root_at(a.tree_size).map_err(integrity)? != a.root {
                        return Err(QueryError::Integrity(
                            "the stored log does not match the anchored checkpoint".into(),
                        ));
                    }
                    tree.consistency_proof(head.tree_size, a.tree_size)
                        .map_err(integrity)?
                }
                None => Vec::new(),
            };
            let inclusion = tree
                .inclusion_proof(v.leaf.index, head.tree_size)
                .map_err(integrity)?;
            (inclusion, consistency)
        };
        let leaf =
            RecordLeaf::decode(&v.leaf.leaf).map_err(|e| QueryError::Integrity(e.to_string()))?;
        Ok(ProofBundle {
            format: PROOF_FORMAT.to_owned(),
            leaf_kind: LeafKind::RecordVersion,
            leaf,
            salt: hex::encode(v.salt),
            leaf_index: v.leaf.index,
            leaf_hash: hex::encode(medledger_merkle::leaf_hash(&v.leaf.leaf)),
            inclusion_proof: proof.iter().map(hex::encode).collect(),
            tree_head: TreeHead {
                tree_size: head.tree_size,
                root_hash: hex::encode(head.root),
            },
            chain: ChainLocation {
                network: self.config.chain_network.clone(),
                chain_id: head.chain_id,
                record_log: head.contract,
                record_log_index: head.chain_index,
                block_number: head.block_number,
                block_hash: head.block_hash,
                transaction_hash: head.tx_hash,
            },
            anchor: anchor.map(|a| AnchorLocation {
                network: self.config.anchor_network.clone(),
                chain_id: a.chain_id,
                anchor: a.contract,
                anchor_index: a.chain_index,
                block_number: a.block_number,
                block_hash: a.block_hash,
                transaction_hash: a.tx_hash,
                checkpoint: TreeHead {
                    tree_size: a.tree_size,
                    root_hash: hex::encode(a.root),
                },
                source_block_number: a.source_block_number,
                source_block_hash: a.source_block_hash,
                consistency_proof: consistency.iter().map(hex::encode).collect(),
            }),
        })
    }

    /// The first anchored checkpoint covering a head of `tree_size`, waiting up to the
    /// configured time; `None` when there is none yet.
    async fn wait_for_anchor(&self, tree_size: u64) -> Result<Option<AnchorRow>, QueryError> {
        let deadline = Instant::now() + self.config.anchor_wait;
        loop {
            if let Some(a) = self.ledger.anchor_covering(tree_size).await? {
                return Ok(Some(a));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_head(&self, leaf_index: u64) -> Result<TreeHeadRow, QueryError> {
        let deadline = Instant::now() + self.config.verify_wait;
        loop {
            if let Some(h) = self.ledger.tree_head_covering(leaf_index).await? {
                return Ok(h);
            }
            if Instant::now() >= deadline {
                return Err(QueryError::NotYet {
                    message: "this version is not committed to the chain yet".into(),
                    retry_after_secs: 2,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
