//! The SQLite dialect: one file, one writer at a time.
//!
//! A write transaction takes the database's write lock when it begins (`BEGIN IMMEDIATE`), so
//! its version checks cannot be invalidated before it commits, and no row locks or advisory
//! locks are needed. A write's events go into the embedded bus log (`bus_log`) in the same
//! transaction: the embedded bus is the outbox.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use medledger_storage_api::{OutboxEvent, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Transaction};

use crate::dialect::{Dialect, Outbox};
use crate::{SqlStore, err};

/// The SQLite dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;

    const FOR_UPDATE: &'static str = "";

    const NEXT_RECORD_NUMBER: &'static str = "(SELECT COALESCE(MAX(rec), 0) + 1 FROM record_heads)";

    const SKIP_LOCKED: &'static str = "";

    fn contains_bytes(haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }

    async fn after_bulk_write(c: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(c)
            .await?;
        Ok(())
    }

    async fn begin_write(
        pool: &Pool<sqlx::Sqlite>,
    ) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn lock(_: &mut SqliteConnection, _: i64) -> Result<(), sqlx::Error> {
        // The write lock taken by `begin_write` already excludes every other writer.
        Ok(())
    }

    async fn append_outbox(
        tx: &mut SqliteConnection,
        _: Outbox,
        events: &[OutboxEvent],
    ) -> Result<(), sqlx::Error> {
        for e in events {
            crate::bus::append(tx, &e.topic, &e.key, &e.payload).await?;
        }
        Ok(())
    }
}

impl SqlStore<Sqlite> {
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        crate::bus::SqliteBus::new(pool.clone())
            .migrate()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self::from_pool(pool))
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
        Ok(Self::from_pool(pool))
    }
}
