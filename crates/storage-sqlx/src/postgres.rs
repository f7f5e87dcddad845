//! The PostgreSQL dialect: one schema per service, many writers at once.
//!
//! - Schemas: `ingest` (record index, owner keys, HL7 v2 log, its outbox), `ledger` (the Merkle
//!   log, tree heads, anchors), `consent` (accounts, consents, access requests), `audit` (the
//!   trail and its outbox). Each connection's `search_path` names them, so the shared queries
//!   use the same unqualified table names as on SQLite.
//! - Writers serialise per record with `SELECT … FOR UPDATE` on the head row, and on a missing
//!   head through the primary key: a concurrent insert of the same new record fails the second
//!   transaction, which is reported as a version conflict. Leaf appends take a
//!   transaction-scoped advisory lock, so leaf indexes stay dense even with several
//!   ledger-writer processes.
//! - A write's events go to its outbox table (`ingest.outbox` or `audit.outbox`) in the same
//!   transaction, with a `NOTIFY` that wakes the relay (`relay.rs`) once it commits.

use std::str::FromStr;
use std::time::Duration;

use medledger_storage_api::{OutboxEvent, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Pool, Transaction};

use crate::dialect::{Dialect, Outbox};
use crate::{SqlStore, err};

/// The PostgreSQL dialect.
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

/// Where unqualified table names are looked up. `public` comes first because it holds sqlx's
/// migration table (`_sqlx_migrations`) and nothing else of ours; every service table is in
/// exactly one of the others, under a name no other schema uses.
const SEARCH_PATH: &str = "public, ingest, ledger, consent, audit";

impl Outbox {
    /// The PostgreSQL table.
    pub fn table(self) -> &'static str {
        match self {
            Self::Ingest => "ingest.outbox",
            Self::Audit => "audit.outbox",
        }
    }

    /// The NOTIFY channel its writers raise.
    pub fn channel(self) -> &'static str {
        match self {
            Self::Ingest => "medledger_outbox",
            Self::Audit => "medledger_audit_outbox",
        }
    }
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;

    const FOR_UPDATE: &'static str = " FOR UPDATE";

    const NEXT_RECORD_NUMBER: &'static str = "nextval('ingest.record_numbers')";

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn contains_bytes(haystack: &str, needle: &str) -> String {
        format!("position({needle} in {haystack}) > 0")
    }

    async fn after_bulk_write(_: &mut PgConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn begin_write(
        pool: &Pool<sqlx::Postgres>,
    ) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        pool.begin().await
    }

    async fn lock(tx: &mut PgConnection, lock: i64) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn append_outbox(
        tx: &mut PgConnection,
        outbox: Outbox,
        events: &[OutboxEvent],
    ) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let insert = match outbox {
            Outbox::Ingest => "INSERT INTO ingest.outbox (topic, key, payload) VALUES ($1, $2, $3)",
            Outbox::Audit => "INSERT INTO audit.outbox (topic, key, payload) VALUES ($1, $2, $3)",
        };
        for e in events {
            sqlx::query(insert)
                .bind(&e.topic)
                .bind(&e.key)
                .bind(&e.payload)
                .execute(&mut *tx)
                .await?;
        }
        // Delivered at commit only, so the relay wakes for rows it can already see.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(outbox.channel())
            .execute(tx)
            .await?;
        Ok(())
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (e.g. `postgres://user@host/db`) and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(err)?
            .options([("search_path", SEARCH_PATH)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(err)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self::from_pool(pool))
    }
}
