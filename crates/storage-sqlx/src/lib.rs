//! SQLite implementation of the storage ports via sqlx.
//!
//! One database file holds the record index, owner keys, the ledger's log and the embedded bus,
//! so ingest can write index rows and their events in one transaction. WAL mode lets readers in
//! other processes (e.g. `medledger verify`) look while the server writes; `synchronous = FULL`
//! makes a committed transaction survive power loss, not just a process crash.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use medledger_storage_api::{
    AcceptedMessage, AccessRequestRow, AccessRequestStore, AccountRegistration, AccountRow,
    AnchorRow, AuditFilter, AuditRow, AuditStore, ConsentRegistration, ConsentRow, ConsentStore,
    DeadLetter, Hl7MessageLog, LeafRow, LedgerStore, OutboxEvent, OwnerKeyStore, RecordHead,
    RecordIndex, RegistryQueue, StoreError, TreeHeadRow, VersionRow, VersionWrite,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Now, Unix milliseconds (the order in which account changes are registered).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let bus = medledger_bus::SqliteBus::new(pool.clone());
        bus.migrate()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Opens an existing database read-only (for tools running beside a server).
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(err)?
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(err)?;
        Ok(Self { pool })
    }

    /// The pool, for the embedded bus which shares the database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn version_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<VersionRow, StoreError> {
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
        deleted: r.try_get::<i64, _>("deleted").map_err(err)? != 0,
        last_updated: r.try_get("last_updated").map_err(err)?,
        actor: r.try_get("actor").map_err(err)?,
    })
}

#[async_trait::async_trait]
impl RecordIndex for SqliteStore {
    async fn head(&self, resource_type: &str, id: &str) -> Result<Option<RecordHead>, StoreError> {
        let row = sqlx::query(
            "SELECT version, deleted, owner FROM record_heads WHERE resource_type = ? AND id = ?",
        )
        .bind(resource_type)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|r| {
            Ok(RecordHead {
                version: r.try_get::<i64, _>("version").map_err(err)? as u64,
                deleted: r.try_get::<i64, _>("deleted").map_err(err)? != 0,
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
        let row = sqlx::query(
            "SELECT * FROM record_versions WHERE resource_type = ? AND id = ? AND version = ?",
        )
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
        // BEGIN IMMEDIATE takes the write lock up front, so the version checks below cannot be
        // invalidated by another writer before this transaction commits.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        for w in writes {
            let r = &w.row;
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM record_heads WHERE resource_type = ? AND id = ?",
            )
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
            sqlx::query(
                "INSERT INTO record_versions (resource_type, id, version, cid, wrapped_key, owner, commitment, deleted, last_updated, actor) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.resource_type)
            .bind(&r.id)
            .bind(r.version as i64)
            .bind(&r.cid)
            .bind(&r.wrapped_key)
            .bind(&r.owner)
            .bind(r.commitment.map(|c| c.to_vec()))
            .bind(r.deleted as i64)
            .bind(&r.last_updated)
            .bind(&r.actor)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            sqlx::query(
                "INSERT INTO record_heads (resource_type, id, version, deleted, owner) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (resource_type, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, owner = excluded.owner",
            )
            .bind(&r.resource_type)
            .bind(&r.id)
            .bind(r.version as i64)
            .bind(r.deleted as i64)
            .bind(&r.owner)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        insert_audit(&mut tx, audit).await?;
        for e in events {
            medledger_bus::sqlite::append_in_tx(&mut tx, &e.topic, &e.key, &e.payload)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn referenced_cids(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT cid FROM record_versions WHERE cid IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }
}

#[async_trait::async_trait]
impl OwnerKeyStore for SqliteStore {
    async fn wrapped_owner_key(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT wrapped FROM owner_keys WHERE owner = ?")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
    }

    async fn insert_owner_key(&self, owner: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO owner_keys (owner, wrapped) VALUES (?, ?) ON CONFLICT (owner) DO NOTHING",
        )
        .bind(owner)
        .bind(wrapped)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        sqlx::query_scalar("SELECT wrapped FROM owner_keys WHERE owner = ?")
            .bind(owner)
            .fetch_one(&self.pool)
            .await
            .map_err(err)
    }
}

fn leaf_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<LeafRow, StoreError> {
    Ok(LeafRow {
        index: r.try_get::<i64, _>("leaf_index").map_err(err)? as u64,
        kind: r.try_get::<i64, _>("kind").map_err(err)? as u8,
        subject: r.try_get("subject").map_err(err)?,
        version: r.try_get::<i64, _>("version").map_err(err)? as u64,
        leaf: r.try_get("leaf").map_err(err)?,
    })
}

fn head_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<TreeHeadRow, StoreError> {
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

fn anchor_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AnchorRow, StoreError> {
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
impl LedgerStore for SqliteStore {
    async fn leaves_from(&self, start: u64) -> Result<Vec<LeafRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM ledger_leaves WHERE leaf_index >= ? ORDER BY leaf_index")
                .bind(start as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn append_leaves(&self, leaves: &[LeafRow]) -> Result<Vec<LeafRow>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM ledger_leaves")
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        let mut appended = Vec::new();
        for l in leaves {
            let done = sqlx::query("INSERT INTO ledger_leaves (leaf_index, kind, subject, version, leaf) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (kind, subject, version) DO NOTHING")
                .bind(next)
                .bind(i64::from(l.kind))
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
            "SELECT * FROM ledger_leaves WHERE kind = ? AND subject = ? AND version = ?",
        )
        .bind(i64::from(kind))
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
            "SELECT MAX(version) FROM ledger_leaves WHERE kind = ? AND subject = ?",
        )
        .bind(i64::from(kind))
        .bind(subject)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(v.map(|v| v as u64))
    }

    async fn insert_tree_head(&self, h: &TreeHeadRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ledger_tree_heads (tree_size, root, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
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
        let row = sqlx::query("SELECT * FROM ledger_tree_heads ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(head_from_row).transpose()
    }

    async fn tree_head_covering(&self, index: u64) -> Result<Option<TreeHeadRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM ledger_tree_heads WHERE tree_size > ? ORDER BY tree_size LIMIT 1",
        )
        .bind(index as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(head_from_row).transpose()
    }

    async fn insert_anchor(&self, a: &AnchorRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ledger_anchors (tree_size, root, source_block_number, source_block_hash, chain_id, contract, chain_index, block_number, block_hash, tx_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
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
        let row = sqlx::query("SELECT * FROM ledger_anchors ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(anchor_from_row).transpose()
    }

    async fn anchor_covering(&self, tree_size: u64) -> Result<Option<AnchorRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM ledger_anchors WHERE tree_size >= ? ORDER BY tree_size LIMIT 1",
        )
        .bind(tree_size as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(anchor_from_row).transpose()
    }
}

fn account_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        account: r.try_get("account").map_err(err)?,
        role: r.try_get("role").map_err(err)?,
        verified: r.try_get::<i64, _>("verified").map_err(err)? != 0,
    })
}

fn consent_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ConsentRow, StoreError> {
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
impl ConsentStore for SqliteStore {
    async fn account(&self, account: &str) -> Result<Option<AccountRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM consent_accounts WHERE account = ?")
            .bind(account)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn put_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        // A change that changes something is queued for the chain (a new revision).
        sqlx::query(
            "INSERT INTO consent_accounts (account, role, verified, salt, revision, changed_at) \
             VALUES (?, ?, ?, ?, 1, ?) \
             ON CONFLICT (account) DO UPDATE SET role = excluded.role, verified = excluded.verified, \
             revision = revision + 1, changed_at = excluded.changed_at \
             WHERE role <> excluded.role OR verified <> excluded.verified",
        )
        .bind(&row.account)
        .bind(&row.role)
        .bind(i64::from(row.verified))
        .bind(rand::random::<[u8; 32]>().to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn ensure_account(&self, account: &str, role: &str) -> Result<AccountRow, StoreError> {
        sqlx::query(
            "INSERT INTO consent_accounts (account, role, verified, salt, revision, changed_at) \
             VALUES (?, ?, 0, ?, 1, ?) ON CONFLICT (account) DO NOTHING",
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
            "SELECT v.* FROM consent_versions v WHERE v.patient = ? AND v.version = \
             (SELECT MAX(w.version) FROM consent_versions w WHERE w.id = v.id)",
        )
        .bind(patient)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(consent_from_row).collect()
    }

    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM consent_versions WHERE id = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(consent_from_row).transpose()
    }

    async fn put_consent(&self, row: &ConsentRow, expected: Option<u64>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM consent_versions WHERE id = ? ORDER BY version DESC LIMIT 1",
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
        sqlx::query("INSERT INTO consent_subjects (id, salt) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(&row.id)
            .bind(rand::random::<[u8; 32]>().to_vec())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO consent_versions \
             (id, version, patient, status, resource, actor, recorded_at_ms, salt, seq) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM consent_versions))",
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

fn salt_of(r: &sqlx::sqlite::SqliteRow, column: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = r.try_get(column).map_err(err)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Unavailable(format!("{column} is not 32 bytes")))
}

fn account_registration_from_row(
    r: &sqlx::sqlite::SqliteRow,
) -> Result<AccountRegistration, StoreError> {
    Ok(AccountRegistration {
        account: account_from_row(r)?,
        salt: salt_of(r, "salt")?,
        revision: r.try_get::<i64, _>("revision").map_err(err)? as u64,
        registered_revision: r.try_get::<i64, _>("registered_revision").map_err(err)? as u64,
    })
}

fn consent_registration_from_row(
    r: &sqlx::sqlite::SqliteRow,
) -> Result<ConsentRegistration, StoreError> {
    Ok(ConsentRegistration {
        consent: consent_from_row(r)?,
        salt: salt_of(r, "salt")?,
        subject_salt: salt_of(r, "subject_salt")?,
        registration: r.try_get("registration").map_err(err)?,
    })
}

/// Consent versions joined with their subject salt.
const CONSENT_REGISTRATIONS: &str = "SELECT v.*, s.salt AS subject_salt FROM consent_versions v \
     JOIN consent_subjects s ON s.id = v.id";

#[async_trait::async_trait]
impl RegistryQueue for SqliteStore {
    async fn unregistered_accounts(
        &self,
        limit: u32,
    ) -> Result<Vec<AccountRegistration>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM consent_accounts WHERE registered_revision < revision \
             ORDER BY changed_at, account LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(account_registration_from_row).collect()
    }

    async fn account_registered(&self, account: &str, revision: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE consent_accounts SET registered_revision = ? \
             WHERE account = ? AND registered_revision < ?",
        )
        .bind(revision as i64)
        .bind(account)
        .bind(revision as i64)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn account_registration(
        &self,
        account: &str,
    ) -> Result<Option<AccountRegistration>, StoreError> {
        let row = sqlx::query("SELECT * FROM consent_accounts WHERE account = ?")
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
            "{CONSENT_REGISTRATIONS} WHERE v.registration IS NULL ORDER BY v.seq LIMIT ?"
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
        sqlx::query("UPDATE consent_versions SET registration = ? WHERE id = ? AND version = ?")
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
            "{CONSENT_REGISTRATIONS} WHERE v.id = ? AND v.version = ?"
        )))
        .bind(id)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(consent_registration_from_row).transpose()
    }
}

fn request_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AccessRequestRow, StoreError> {
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
impl AccessRequestStore for SqliteStore {
    async fn put_request(&self, row: &AccessRequestRow) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO consent_access_requests (id, requester, patient, purpose, period_start, period_end, status, consent, requested_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM consent_access_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn requests_for(&self, patient: &str) -> Result<Vec<AccessRequestRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM consent_access_requests WHERE patient = ? ORDER BY requested_at_ms, id",
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
            "UPDATE consent_access_requests SET status = ?, consent = ? WHERE id = ? AND status = 'pending'",
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

async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    for r in rows {
        sqlx::query(
            "INSERT INTO audit_events (id, recorded_at_ms, patient, actor, outcome, resource, salt) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
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

fn audit_of(r: &sqlx::sqlite::SqliteRow) -> Result<AuditRow, StoreError> {
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
impl AuditStore for SqliteStore {
    async fn record_audit(
        &self,
        rows: &[AuditRow],
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        insert_audit(&mut tx, rows).await?;
        for e in events {
            medledger_bus::sqlite::append_in_tx(&mut tx, &e.topic, &e.key, &e.payload)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit_events \
             WHERE (?1 IS NULL OR patient = ?1) AND (?2 IS NULL OR actor = ?2) \
               AND (?3 IS NULL OR recorded_at_ms >= ?3) \
             ORDER BY seq DESC LIMIT ?4",
        )
        .bind(&f.patient)
        .bind(&f.actor)
        .bind(f.since_ms)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(audit_of).collect()
    }

    async fn audit_event(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit_events WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(audit_of).transpose()
    }
}

#[async_trait::async_trait]
impl Hl7MessageLog for SqliteStore {
    async fn accepted(
        &self,
        sender: &str,
        control_id: &str,
    ) -> Result<Option<AcceptedMessage>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT digest, ack FROM hl7_accepted WHERE sender = ? AND control_id = ?",
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
            "INSERT INTO hl7_accepted (sender, control_id, digest, ack, accepted_at_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender, control_id) DO NOTHING",
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
            "INSERT INTO hl7_dead_letters (id, received_at_ms, sender, control_id, code, reason, sealed) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&l.id)
        .bind(l.received_at_ms)
        .bind(&l.sender)
        .bind(&l.control_id)
        .bind(i64::from(l.code))
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
             FROM hl7_dead_letters ORDER BY seq DESC LIMIT ?",
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
                    code: u16::try_from(r.try_get::<i64, _>("code").map_err(err)?).map_err(
                        |_| StoreError::Unavailable("dead letter code out of range".into()),
                    )?,
                    reason: r.try_get("reason").map_err(err)?,
                    sealed: r.try_get("sealed").map_err(err)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_storage_api::conformance;

    async fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tmp");
        let s = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("open");
        (dir, s)
    }

    #[tokio::test]
    async fn meets_the_record_index_contract() {
        let (_d, s) = fresh().await;
        conformance::record_index(&s).await;
        // The embedded outbox is the bus log: only the committed event is there.
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bus_log")
            .fetch_one(s.pool())
            .await
            .expect("count");
        assert_eq!(events, 1);
    }

    #[tokio::test]
    async fn meets_the_owner_key_contract() {
        let (_d, s) = fresh().await;
        conformance::owner_keys(&s).await;
    }

    #[tokio::test]
    async fn meets_the_ledger_store_contract() {
        let (_d, s) = fresh().await;
        conformance::ledger_store(&s).await;
    }

    #[tokio::test]
    async fn meets_the_consent_store_contract() {
        let (_d, s) = fresh().await;
        conformance::consent_store(&s).await;
    }

    #[tokio::test]
    async fn meets_the_registry_queue_contract() {
        let (_d, s) = fresh().await;
        conformance::registry_queue(&s).await;
    }

    #[tokio::test]
    async fn meets_the_audit_trail_contract() {
        let (_d, s) = fresh().await;
        conformance::audit_trail(&s, &s).await;
    }

    #[tokio::test]
    async fn meets_the_access_request_contract() {
        let (_d, s) = fresh().await;
        conformance::access_requests(&s).await;
    }

    #[tokio::test]
    async fn meets_the_hl7_message_log_contract() {
        let (_d, s) = fresh().await;
        conformance::hl7_message_log(&s).await;
    }
}
