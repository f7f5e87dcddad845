//! PostgreSQL implementation of the storage ports via sqlx: one schema per service, versioned
//! migrations, and the ingest outbox written in the same transaction as the index rows.
//!
//! Writers serialise per record with `SELECT … FOR UPDATE` on the head row (and on a missing
//! head through the primary key: a concurrent insert of the same new record fails the second
//! transaction, which is reported as a version conflict). Leaf appends take a transaction-scoped
//! advisory lock so leaf indexes stay dense even with several ledger-writer processes.

use std::time::Duration;

use medledger_storage_api::{
    AcceptedMessage, AccessRequestRow, AccessRequestStore, AccountRegistration, AccountRow,
    AnchorRow, AuditFilter, AuditRow, AuditStore, ConsentRegistration, ConsentRow, ConsentStore,
    DeadLetter, Hl7MessageLog, LeafRow, LedgerStore, OutboxEvent, OwnerKeyStore, RecordHead,
    RecordIndex, RegistryQueue, StoreError, TreeHeadRow, VersionRow, VersionWrite,
};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

pub mod relay;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use relay::{Outbox, OutboxRelay, outbox_backlog};

fn err(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Advisory lock key serialising leaf appends ("mlleaves").
const LEAF_LOCK: i64 = 0x6d6c_6c65_6176_6573;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (e.g. `postgres://user@host/db`) and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The pool (for the outbox relay).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn version_from_row(r: &PgRow) -> Result<VersionRow, StoreError> {
    let commitment: Option<Vec<u8>> = r.try_get("commitment").map_err(err)?;
    let commitment = match commitment {
        Some(c) => Some(
            c.try_into()
                .map_err(|_| StoreError::Unavailable("commitment is not 32 bytes".into()))?,
        ),
        None => None,
    };
    Ok(VersionRow {
        resource_type: r.try_get("resource_type").map_err(err)?,
        id: r.try_get("id").map_err(err)?,
        version: r.try_get::<i64, _>("version").map_err(err)? as u64,
        cid: r.try_get("cid").map_err(err)?,
        wrapped_key: r.try_get("wrapped_key").map_err(err)?,
        owner: r.try_get("owner").map_err(err)?,
        commitment,
        deleted: r.try_get("deleted").map_err(err)?,
        last_updated: r.try_get("last_updated").map_err(err)?,
        actor: r.try_get("actor").map_err(err)?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("23505"))
}

#[async_trait::async_trait]
impl RecordIndex for PgStore {
    async fn head(&self, resource_type: &str, id: &str) -> Result<Option<RecordHead>, StoreError> {
        let row = sqlx::query("SELECT version, deleted, owner FROM ingest.record_heads WHERE resource_type = $1 AND id = $2")
            .bind(resource_type)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| {
            Ok(RecordHead {
                version: r.try_get::<i64, _>("version").map_err(err)? as u64,
                deleted: r.try_get("deleted").map_err(err)?,
                owner: r.try_get("owner").map_err(err)?,
            })
        })
        .transpose()
    }

    async fn version(
        &self,
        resource_type: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<VersionRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM ingest.record_versions WHERE resource_type = $1 AND id = $2 AND version = $3")
            .bind(resource_type)
            .bind(id)
            .bind(version as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn commit(
        &self,
        writes: &[VersionWrite],
        events: &[OutboxEvent],
        audit: &[AuditRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        for w in writes {
            let r = &w.row;
            let found: Option<i64> =
                sqlx::query_scalar("SELECT version FROM ingest.record_heads WHERE resource_type = $1 AND id = $2 FOR UPDATE")
                    .bind(&r.resource_type)
                    .bind(&r.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            let found = found.map(|v| v as u64);
            if found != w.expected {
                return Err(StoreError::Conflict {
                    resource: r.key(),
                    expected: w.expected,
                    found,
                });
            }
            let conflict = |e: sqlx::Error| {
                if is_unique_violation(&e) {
                    // A concurrent writer created this record first.
                    StoreError::Conflict {
                        resource: r.key(),
                        expected: w.expected,
                        found: None,
                    }
                } else {
                    err(e)
                }
            };
            sqlx::query(
                "INSERT INTO ingest.record_versions (resource_type, id, version, cid, wrapped_key, owner, commitment, deleted, last_updated, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.resource_type)
            .bind(&r.id)
            .bind(r.version as i64)
            .bind(&r.cid)
            .bind(&r.wrapped_key)
            .bind(&r.owner)
            .bind(r.commitment.map(|c| c.to_vec()))
            .bind(r.deleted)
            .bind(&r.last_updated)
            .bind(&r.actor)
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
            sqlx::query(
                "INSERT INTO ingest.record_heads (resource_type, id, version, deleted, owner) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (resource_type, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, owner = excluded.owner",
            )
            .bind(&r.resource_type)
            .bind(&r.id)
            .bind(r.version as i64)
            .bind(r.deleted)
            .bind(&r.owner)
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
        }
        insert_audit(&mut tx, audit).await?;
        enqueue(&mut tx, relay::Outbox::Ingest, events).await?;
        tx.commit().await.map_err(err)
    }

    async fn referenced_cids(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT cid FROM ingest.record_versions WHERE cid IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }
}

/// Adds `events` to `outbox` and wakes its relay at commit.
async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    outbox: relay::Outbox,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    for e in events {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (topic, key, payload) VALUES ($1, $2, $3)",
            outbox.table()
        )))
        .bind(&e.topic)
        .bind(&e.key)
        .bind(&e.payload)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    if !events.is_empty() {
        // Delivered at commit only, so the relay wakes for rows it can already see.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(outbox.channel())
            .execute(&mut **tx)
            .await
            .map_err(err)?;
    }
    Ok(())
}

async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    for r in rows {
        sqlx::query(
            "INSERT INTO audit.events (id, recorded_at_ms, patient, actor, outcome, resource, salt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(r.recorded_at_ms)
        .bind(&r.patient)
        .bind(&r.actor)
        .bind(&r.outcome)
        .bind(&r.resource)
        .bind(r.salt.as_slice())
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

fn audit_from_row(r: &PgRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: r.try_get("id").map_err(err)?,
        recorded_at_ms: r.try_get("recorded_at_ms").map_err(err)?,
        patient: r.try_get("patient").map_err(err)?,
        actor: r.try_get("actor").map_err(err)?,
        outcome: r.try_get("outcome").map_err(err)?,
        resource: r.try_get("resource").map_err(err)?,
        salt: r
            .try_get::<Vec<u8>, _>("salt")
            .map_err(err)?
            .try_into()
            .map_err(|_| StoreError::Unavailable("audit salt is not 32 bytes".into()))?,
    })
}

#[async_trait::async_trait]
impl Hl7MessageLog for PgStore {
    async fn accepted(
        &self,
        sender: &str,
        control_id: &str,
    ) -> Result<Option<AcceptedMessage>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT digest, ack FROM ingest.hl7_accepted WHERE sender = $1 AND control_id = $2",
        )
        .bind(sender)
        .bind(control_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        Ok(row.map(|(digest, ack)| AcceptedMessage { digest, ack }))
    }

    async fn record_accepted(
        &self,
        sender: &str,
        control_id: &str,
        accepted: &AcceptedMessage,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ingest.hl7_accepted (sender, control_id, digest, ack, accepted_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sender, control_id) DO NOTHING",
        )
        .bind(sender)
        .bind(control_id)
        .bind(&accepted.digest)
        .bind(&accepted.ack)
        .bind(at_ms)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn dead_letter(&self, l: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ingest.hl7_dead_letters \
             (id, received_at_ms, sender, control_id, code, reason, sealed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.id)
        .bind(l.received_at_ms)
        .bind(&l.sender)
        .bind(&l.control_id)
        .bind(i32::from(l.code))
        .bind(&l.reason)
        .bind(&l.sealed)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, received_at_ms, sender, control_id, code, reason, sealed \
             FROM ingest.hl7_dead_letters ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id").map_err(err)?,
                    received_at_ms: r.try_get("received_at_ms").map_err(err)?,
                    sender: r.try_get("sender").map_err(err)?,
                    control_id: r.try_get("control_id").map_err(err)?,
                    code: u16::try_from(r.try_get::<i32, _>("code").map_err(err)?).map_err(
                        |_| StoreError::Unavailable("dead letter code out of range".into()),
                    )?,
                    reason: r.try_get("reason").map_err(err)?,
                    sealed: r.try_get("sealed").map_err(err)?,
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl AuditStore for PgStore {
    async fn record_audit(
        &self,
        rows: &[AuditRow],
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        insert_audit(&mut tx, rows).await?;
        enqueue(&mut tx, relay::Outbox::Audit, events).await?;
        tx.commit().await.map_err(err)
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit.events \
             WHERE ($1::text IS NULL OR patient = $1) AND ($2::text IS NULL OR actor = $2) \
               AND ($3::bigint IS NULL OR recorded_at_ms >= $3) \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(&f.patient)
        .bind(&f.actor)
        .bind(f.since_ms)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_event(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit.events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(audit_from_row).transpose()
    }
}

#[async_trait::async_trait]
impl OwnerKeyStore for PgStore {
    async fn wrapped_owner_key(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT wrapped FROM ingest.owner_keys WHERE owner = $1")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
    }

    async fn insert_owner_key(&self, owner: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO ingest.owner_keys (owner, wrapped) VALUES ($1, $2) ON CONFLICT (owner) DO NOTHING")
            .bind(owner)
            .bind(wrapped)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        sqlx::query_scalar("SELECT wrapped FROM ingest.owner_keys WHERE owner = $1")
            .bind(owner)
            .fetch_one(&self.pool)
            .await
            .map_err(err)
    }
}

fn leaf_from_row(r: &PgRow) -> Result<LeafRow, StoreError> {
    Ok(LeafRow {
        index: r.try_get::<i64, _>("leaf_index").map_err(err)? as u64,
        kind: r.try_get::<i16, _>("kind").map_err(err)? as u8,
        subject: r.try_get("subject").map_err(err)?,
        version: r.try_get::<i64, _>("version").map_err(err)? as u64,
        leaf: r.try_get("leaf").map_err(err)?,
    })
}

fn head_from_row(r: &PgRow) -> Result<TreeHeadRow, StoreError> {
    let root: Vec<u8> = r.try_get("root").map_err(err)?;
    Ok(TreeHeadRow {
        tree_size: r.try_get::<i64, _>("tree_size").map_err(err)? as u64,
        root: root
            .try_into()
            .map_err(|_| StoreError::Unavailable("root is not 32 bytes".into()))?,
        chain_id: r.try_get::<i64, _>("chain_id").map_err(err)? as u64,
        contract: r.try_get("contract").map_err(err)?,
        chain_index: r.try_get::<i64, _>("chain_index").map_err(err)? as u64,
        block_number: r.try_get::<i64, _>("block_number").map_err(err)? as u64,
        block_hash: r.try_get("block_hash").map_err(err)?,
        tx_hash: r.try_get("tx_hash").map_err(err)?,
    })
}

fn anchor_from_row(r: &PgRow) -> Result<AnchorRow, StoreError> {
    let root: Vec<u8> = r.try_get("root").map_err(err)?;
    Ok(AnchorRow {
        tree_size: r.try_get::<i64, _>("tree_size").map_err(err)? as u64,
        root: root
            .try_into()
            .map_err(|_| StoreError::Unavailable("root is not 32 bytes".into()))?,
        source_block_number: r.try_get::<i64, _>("source_block_number").map_err(err)? as u64,
        source_block_hash: r.try_get("source_block_hash").map_err(err)?,
        chain_id: r.try_get::<i64, _>("chain_id").map_err(err)? as u64,
        contract: r.try_get("contract").map_err(err)?,
        chain_index: r.try_get::<i64, _>("chain_index").map_err(err)? as u64,
        block_number: r.try_get::<i64, _>("block_number").map_err(err)? as u64,
        block_hash: r.try_get("block_hash").map_err(err)?,
        tx_hash: r.try_get("tx_hash").map_err(err)?,
    })
}

#[async_trait::async_trait]
impl LedgerStore for PgStore {
    async fn leaves_from(&self, start: u64) -> Result<Vec<LeafRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM ledger.leaves WHERE leaf_index >= $1 ORDER BY leaf_index")
                .bind(start as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn append_leaves(&self, leaves: &[LeafRow]) -> Result<Vec<LeafRow>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LEAF_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM ledger.leaves")
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        let mut appended = Vec::new();
        for l in leaves {
            let done = sqlx::query(
                "INSERT INTO ledger.leaves (leaf_index, kind, subject, version, leaf) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kind, subject, version) DO NOTHING",
            )
            .bind(next)
            .bind(i16::from(l.kind))
            .bind(&l.subject)
            .bind(l.version as i64)
            .bind(&l.leaf)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            if done.rows_affected() == 1 {
                appended.push(LeafRow {
                    index: next as u64,
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
        let row = sqlx::query(
            "SELECT * FROM ledger.leaves WHERE kind = $1 AND subject = $2 AND version = $3",
        )
        .bind(i16::from(kind))
        .bind(subject)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(leaf_from_row).transpose()
    }

    async fn latest_logged_version(
        &self,
        kind: u8,
        subject: &str,
    ) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM ledger.leaves WHERE kind = $1 AND subject = $2",
        )
        .bind(i16::from(kind))
        .bind(subject)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(v.map(|v| v as u64))
    }

    async fn insert_tree_head(&self, h: &TreeHeadRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ledger.tree_heads (tree_size, root, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(h.tree_size as i64)
        .bind(h.root.to_vec())
        .bind(h.chain_id as i64)
        .bind(&h.contract)
        .bind(h.chain_index as i64)
        .bind(h.block_number as i64)
        .bind(&h.block_hash)
        .bind(&h.tx_hash)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn latest_tree_head(&self) -> Result<Option<TreeHeadRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM ledger.tree_heads ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(head_from_row).transpose()
    }

    async fn tree_head_covering(&self, index: u64) -> Result<Option<TreeHeadRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM ledger.tree_heads WHERE tree_size > $1 ORDER BY tree_size LIMIT 1",
        )
        .bind(index as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(head_from_row).transpose()
    }

    async fn insert_anchor(&self, a: &AnchorRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ledger.anchors (tree_size, root, source_block_number, source_block_hash, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(a.tree_size as i64)
        .bind(a.root.to_vec())
        .bind(a.source_block_number as i64)
        .bind(&a.source_block_hash)
        .bind(a.chain_id as i64)
        .bind(&a.contract)
        .bind(a.chain_index as i64)
        .bind(a.block_number as i64)
        .bind(&a.block_hash)
        .bind(&a.tx_hash)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn latest_anchor(&self) -> Result<Option<AnchorRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM ledger.anchors ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(anchor_from_row).transpose()
    }

    async fn anchor_covering(&self, tree_size: u64) -> Result<Option<AnchorRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM ledger.anchors WHERE tree_size >= $1 ORDER BY tree_size LIMIT 1",
        )
        .bind(tree_size as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(anchor_from_row).transpose()
    }
}

/// Now, Unix milliseconds (the order in which account changes are registered).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn account_from_row(r: &PgRow) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        account: r.try_get("account").map_err(err)?,
        role: r.try_get("role").map_err(err)?,
        verified: r.try_get::<bool, _>("verified").map_err(err)?,
    })
}

fn consent_from_row(r: &PgRow) -> Result<ConsentRow, StoreError> {
    Ok(ConsentRow {
        id: r.try_get("id").map_err(err)?,
        version: r.try_get::<i64, _>("version").map_err(err)? as u64,
        patient: r.try_get("patient").map_err(err)?,
        status: r.try_get("status").map_err(err)?,
        resource: r.try_get("resource").map_err(err)?,
        actor: r.try_get("actor").map_err(err)?,
        recorded_at_ms: r.try_get("recorded_at_ms").map_err(err)?,
    })
}

#[async_trait::async_trait]
impl ConsentStore for PgStore {
    async fn account(&self, account: &str) -> Result<Option<AccountRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM consent.accounts WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn put_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        // A change that changes something is queued for the chain (a new revision).
        sqlx::query(
            "INSERT INTO consent.accounts (account, role, verified, salt, revision, changed_at) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (account) DO UPDATE SET role = excluded.role, verified = excluded.verified, \
             revision = consent.accounts.revision + 1, changed_at = excluded.changed_at \
             WHERE consent.accounts.role <> excluded.role \
             OR consent.accounts.verified <> excluded.verified",
        )
        .bind(&row.account)
        .bind(&row.role)
        .bind(row.verified)
        .bind(rand::random::<[u8; 32]>().to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn ensure_account(&self, account: &str, role: &str) -> Result<AccountRow, StoreError> {
        sqlx::query(
            "INSERT INTO consent.accounts (account, role, verified, salt, revision, changed_at) \
             VALUES ($1, $2, FALSE, $3, 1, $4) ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .bind(role)
        .bind(rand::random::<[u8; 32]>().to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(err)?;
        self.account(account)
            .await?
            .ok_or_else(|| StoreError::Unavailable("account vanished after insert".into()))
    }

    async fn consents_of(&self, patient: &str) -> Result<Vec<ConsentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.* FROM consent.versions v WHERE v.patient = $1 AND v.version = \
             (SELECT MAX(w.version) FROM consent.versions w WHERE w.id = v.id)",
        )
        .bind(patient)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(consent_from_row).collect()
    }

    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM consent.versions WHERE id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(consent_from_row).transpose()
    }

    async fn put_consent(&self, row: &ConsentRow, expected: Option<u64>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM consent.versions WHERE id = $1 ORDER BY version DESC LIMIT 1 FOR UPDATE",
        )
        .bind(&row.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let found = found.map(|v| v as u64);
        if found != expected {
            return Err(StoreError::Conflict {
                resource: format!("Consent/{}", row.id),
                expected,
                found,
            });
        }
        sqlx::query(
            "INSERT INTO consent.subjects (id, salt) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&row.id)
        .bind(rand::random::<[u8; 32]>().to_vec())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO consent.versions \
             (id, version, patient, status, resource, actor, recorded_at_ms, salt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(row.version as i64)
        .bind(&row.patient)
        .bind(&row.status)
        .bind(&row.resource)
        .bind(&row.actor)
        .bind(row.recorded_at_ms)
        .bind(rand::random::<[u8; 32]>().to_vec())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Two creators of one new id: the primary key decides, the loser sees a conflict.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(StoreError::Conflict {
                    resource: format!("Consent/{}", row.id),
                    expected,
                    found: Some(row.version),
                });
            }
            Err(e) => return Err(err(e)),
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }
}

fn salt_of(r: &PgRow, column: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = r.try_get(column).map_err(err)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Unavailable(format!("{column} is not 32 bytes")))
}

fn account_registration_from_row(r: &PgRow) -> Result<AccountRegistration, StoreError> {
    Ok(AccountRegistration {
        account: account_from_row(r)?,
        salt: salt_of(r, "salt")?,
        revision: r.try_get::<i64, _>("revision").map_err(err)? as u64,
        registered_revision: r.try_get::<i64, _>("registered_revision").map_err(err)? as u64,
    })
}

fn consent_registration_from_row(r: &PgRow) -> Result<ConsentRegistration, StoreError> {
    Ok(ConsentRegistration {
        consent: consent_from_row(r)?,
        salt: salt_of(r, "salt")?,
        subject_salt: salt_of(r, "subject_salt")?,
        registration: r.try_get("registration").map_err(err)?,
    })
}

/// Consent versions joined with their subject salt.
const CONSENT_REGISTRATIONS: &str = "SELECT v.*, s.salt AS subject_salt FROM consent.versions v \
     JOIN consent.subjects s ON s.id = v.id";

#[async_trait::async_trait]
impl RegistryQueue for PgStore {
    async fn unregistered_accounts(
        &self,
        limit: u32,
    ) -> Result<Vec<AccountRegistration>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM consent.accounts WHERE registered_revision < revision \
             ORDER BY changed_at, account LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(account_registration_from_row).collect()
    }

    async fn account_registered(&self, account: &str, revision: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE consent.accounts SET registered_revision = $1 \
             WHERE account = $2 AND registered_revision < $1",
        )
        .bind(revision as i64)
        .bind(account)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn account_registration(
        &self,
        account: &str,
    ) -> Result<Option<AccountRegistration>, StoreError> {
        let row = sqlx::query("SELECT * FROM consent.accounts WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(account_registration_from_row).transpose()
    }

    async fn unregistered_consents(
        &self,
        limit: u32,
    ) -> Result<Vec<ConsentRegistration>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CONSENT_REGISTRATIONS} WHERE v.registration IS NULL ORDER BY v.seq LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(consent_registration_from_row).collect()
    }

    async fn consent_registered(
        &self,
        id: &str,
        version: u64,
        registration: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE consent.versions SET registration = $1 WHERE id = $2 AND version = $3")
            .bind(registration)
            .bind(id)
            .bind(version as i64)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn consent_registration(
        &self,
        id: &str,
        version: u64,
    ) -> Result<Option<ConsentRegistration>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CONSENT_REGISTRATIONS} WHERE v.id = $1 AND v.version = $2"
        )))
        .bind(id)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(consent_registration_from_row).transpose()
    }
}

fn request_from_row(r: &PgRow) -> Result<AccessRequestRow, StoreError> {
    Ok(AccessRequestRow {
        id: r.try_get("id").map_err(err)?,
        requester: r.try_get("requester").map_err(err)?,
        patient: r.try_get("patient").map_err(err)?,
        purpose: r.try_get("purpose").map_err(err)?,
        start: r.try_get("period_start").map_err(err)?,
        end: r.try_get("period_end").map_err(err)?,
        status: r.try_get("status").map_err(err)?,
        consent: r.try_get("consent").map_err(err)?,
        requested_at_ms: r.try_get("requested_at_ms").map_err(err)?,
    })
}

#[async_trait::async_trait]
impl AccessRequestStore for PgStore {
    async fn put_request(&self, row: &AccessRequestRow) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO consent.access_requests (id, requester, patient, purpose, period_start, period_end, status, consent, requested_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.id)
        .bind(&row.requester)
        .bind(&row.patient)
        .bind(&row.purpose)
        .bind(row.start)
        .bind(row.end)
        .bind(&row.status)
        .bind(&row.consent)
        .bind(row.requested_at_ms)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(StoreError::Conflict {
                resource: format!("access request {}", row.id),
                expected: None,
                found: Some(1),
            }),
            Err(e) => Err(err(e)),
        }
    }

    async fn request(&self, id: &str) -> Result<Option<AccessRequestRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM consent.access_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn requests_for(&self, patient: &str) -> Result<Vec<AccessRequestRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM consent.access_requests WHERE patient = $1 ORDER BY requested_at_ms, id",
        )
        .bind(patient)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(request_from_row).collect()
    }

    async fn decide_request(
        &self,
        id: &str,
        status: &str,
        consent: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE consent.access_requests SET status = $1, consent = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(status)
        .bind(consent)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                resource: format!("access request {id}"),
                expected: None,
                found: None,
            })
        }
    }
}
