//! The ledger writer's state: the Merkle log's leaves, the tree heads committed to the private
//! chain, and the checkpoints anchored on the public chain.

use medledger_storage_api::{AnchorRow, LeafRow, LedgerStore, StoreError, TreeHeadRow};

use crate::dialect::{Bind, Dialect, LEAF_LOCK};
use crate::rows::{self, stored};
use crate::{Scalar, SqlStore, err, optional};

#[async_trait::async_trait]
impl<D: Dialect> LedgerStore for SqlStore<D> {
    async fn leaves_from(&self, start: u64) -> Result<Vec<LeafRow>, StoreError> {
        self.all::<rows::Leaf, _>(
            sqlx::query("SELECT * FROM ledger_leaves WHERE leaf_index >= $1 ORDER BY leaf_index")
                .arg(stored(start)),
        )
        .await
    }

    async fn append_leaves(&self, leaves: &[LeafRow]) -> Result<Vec<LeafRow>, StoreError> {
        let mut tx = D::begin_write(&self.pool).await.map_err(err)?;
        D::lock(&mut tx, LEAF_LOCK).await.map_err(err)?;
        let Scalar(mut next) = optional::<D, (i64,), Scalar<i64>>(
            &mut tx,
            sqlx::query("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM ledger_leaves"),
        )
        .await?
        .unwrap_or(Scalar(0));
        let mut appended = Vec::new();
        for l in leaves {
            // A leaf already logged under (kind, subject, version) is skipped: RETURNING gives
            // a row only for an inserted one.
            let inserted: Option<Scalar<i64>> = optional::<D, (i64,), _>(
                &mut tx,
                sqlx::query(
                    "INSERT INTO ledger_leaves (leaf_index, kind, subject, version, leaf) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (kind, subject, version) DO NOTHING RETURNING leaf_index",
                )
                .arg(next)
                .arg(i16::from(l.kind))
                .arg(l.subject.as_str())
                .arg(stored(l.version))
                .arg(l.leaf.as_slice()),
            )
            .await?;
            if inserted.is_some() {
                appended.push(LeafRow {
                    index: rows::int(next, "leaf index")?,
                    ..l.clone()
                });
                next += 1;
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(appended)
    }

    async fn leaf_for(
        &self,
        kind: u8,
        subject: &str,
        version: u64,
    ) -> Result<Option<LeafRow>, StoreError> {
        self.optional::<rows::Leaf, _>(
            sqlx::query(
                "SELECT * FROM ledger_leaves WHERE kind = $1 AND subject = $2 AND version = $3",
            )
            .arg(i16::from(kind))
            .arg(subject)
            .arg(stored(version)),
        )
        .await
    }

    async fn latest_logged_version(
        &self,
        kind: u8,
        subject: &str,
    ) -> Result<Option<u64>, StoreError> {
        let max: Option<Scalar<Option<i64>>> = self
            .optional::<(Option<i64>,), _>(
                sqlx::query(
                    "SELECT MAX(version) FROM ledger_leaves WHERE kind = $1 AND subject = $2",
                )
                .arg(i16::from(kind))
                .arg(subject),
            )
            .await?;
        max.and_then(|Scalar(v)| v)
            .map(|v| rows::int(v, "version"))
            .transpose()
    }

    async fn insert_tree_head(&self, h: &TreeHeadRow) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO ledger_tree_heads (tree_size, root, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tree_size) DO NOTHING",
            )
            .arg(stored(h.tree_size))
            .arg(h.root.as_slice())
            .arg(stored(h.chain_id))
            .arg(h.contract.as_str())
            .arg(stored(h.chain_index))
            .arg(stored(h.block_number))
            .arg(h.block_hash.as_str())
            .arg(h.tx_hash.as_str()),
        )
        .await
    }

    async fn latest_tree_head(&self) -> Result<Option<TreeHeadRow>, StoreError> {
        self.optional::<rows::TreeHead, _>(sqlx::query(
            "SELECT * FROM ledger_tree_heads ORDER BY tree_size DESC LIMIT 1",
        ))
        .await
    }

    async fn tree_head_covering(&self, index: u64) -> Result<Option<TreeHeadRow>, StoreError> {
        self.optional::<rows::TreeHead, _>(
            sqlx::query(
                "SELECT * FROM ledger_tree_heads WHERE tree_size > $1 ORDER BY tree_size LIMIT 1",
            )
            .arg(stored(index)),
        )
        .await
    }

    async fn insert_anchor(&self, a: &AnchorRow) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO ledger_anchors (tree_size, root, source_block_number, source_block_hash, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tree_size) DO NOTHING",
            )
            .arg(stored(a.tree_size))
            .arg(a.root.as_slice())
            .arg(stored(a.source_block_number))
            .arg(a.source_block_hash.as_str())
            .arg(stored(a.chain_id))
            .arg(a.contract.as_str())
            .arg(stored(a.chain_index))
            .arg(stored(a.block_number))
            .arg(a.block_hash.as_str())
            .arg(a.tx_hash.as_str()),
        )
        .await
    }

    async fn latest_anchor(&self) -> Result<Option<AnchorRow>, StoreError> {
        self.optional::<rows::Anchor, _>(sqlx::query(
            "SELECT * FROM ledger_anchors ORDER BY tree_size DESC LIMIT 1",
        ))
        .await
    }

    async fn anchor_covering(&self, tree_size: u64) -> Result<Option<AnchorRow>, StoreError> {
        self.optional::<rows::Anchor, _>(
            sqlx::query(
                "SELECT * FROM ledger_anchors WHERE tree_size >= $1 ORDER BY tree_size LIMIT 1",
            )
            .arg(stored(tree_size)),
        )
        .await
    }
}
