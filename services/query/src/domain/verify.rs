//! `$verify`: a proof bundle for one version (format in `docs/proof-format.md`).

use std::time::Duration;

use medledger_auth::Claims;
use medledger_http::ApiError;
use medledger_ledger::{ChainLocation, LeafKind, PROOF_FORMAT, ProofBundle, RecordLeaf, TreeHead};
use medledger_storage_api::TreeHeadRow;
use tokio::time::Instant;

use super::Query;

impl Query {
    /// Builds the proof bundle of `rt/id/_history/vid`, waiting up to the configured time for a
    /// tree head covering it to be committed.
    pub async fn proof(
        &self,
        claims: &Claims,
        rt: &str,
        id: &str,
        vid: u64,
    ) -> Result<ProofBundle, ApiError> {
        let v = self.read(claims, rt, id, Some(vid)).await?;
        let head = self.wait_for_head(v.leaf.index).await?;
        let proof = {
            let mut tree = self.tree.lock().await;
            if tree.size() < head.tree_size {
                for l in self.ledger.leaves_from(tree.size()).await? {
                    tree.push(&l.leaf);
                }
            }
            let root = tree
                .root_at(head.tree_size)
                .map_err(|e| ApiError::integrity(e.to_string()))?;
            if root != head.root {
                return Err(ApiError::integrity(
                    "the stored log does not match the committed tree head",
                ));
            }
            tree.inclusion_proof(v.leaf.index, head.tree_size)
                .map_err(|e| ApiError::integrity(e.to_string()))?
        };
        let leaf =
            RecordLeaf::decode(&v.leaf.leaf).map_err(|e| ApiError::integrity(e.to_string()))?;
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
        })
    }

    async fn wait_for_head(&self, leaf_index: u64) -> Result<TreeHeadRow, ApiError> {
        let deadline = Instant::now() + self.config.verify_wait;
        loop {
            if let Some(h) = self.ledger.tree_head_covering(leaf_index).await? {
                return Ok(h);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::unavailable(
                    "this version is not committed to the chain yet",
                    2,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
