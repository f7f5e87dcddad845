//! The storage ports over sqlx, written once for both backends: SQLite for `medledger dev` and
//! the unit tests, PostgreSQL for distributed mode.
//!
//! [`SqlStore<D>`] implements every port of `medledger-storage-api`; each query and each row
//! mapping exists once, in the module of its port (`index.rs`, `ledger.rs`, `consent.rs`, …).
//! What truly differs between the backends is a [`Dialect`] (`sqlite.rs`, `postgres.rs`): how a
//! write transaction begins and locks, and where a write's events go. Tables have the same names
//! in both; the migrations (`migrations/sqlite`, `migrations/postgres`) differ only where the
//! DDL must (types, schemas, identity columns).
//!
//! - SQLite ([`SqliteStore`]): one database file holds the record index, owner keys, the
//!   ledger's log, the consent and audit stores and the embedded bus, so a write and its events
//!   are one transaction. WAL mode lets readers in other processes (e.g. `medledger verify`)
//!   look while the server writes; `synchronous = FULL` makes a committed transaction survive
//!   power loss, not just a process crash.
//! - PostgreSQL ([`PgStore`]): one schema per service (`ingest`, `ledger`, `consent`, `audit`);
//!   writers serialise per record with `SELECT … FOR UPDATE`, leaf appends with an advisory
//!   lock; a write's events go to an outbox table in its transaction, which [`relay`] publishes.
//!
//! Nothing here ever holds resource plaintext: rows carry ids, versions, CIDs, wrapped keys and
//! commitments only.
//!
//! Feature `test-utils`: [`testing`], a throwaway PostgreSQL database per test, and the checks
//! of this crate's own guarantees beyond the port contracts.

pub mod bus;
mod dialect;
pub mod postgres;
pub mod relay;
pub mod rows;
pub mod sqlite;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

mod audit;
mod consent;
mod hl7;
mod index;
mod keys;
mod ledger;
mod registry;
mod requests;
mod search;

use std::marker::PhantomData;

use medledger_storage_api::StoreError;
use sqlx::{Database, Pool};

pub use bus::SqliteBus;
pub use dialect::{Backend, Decodes, Dialect, Encodes, Executes, Outbox};
pub use postgres::Postgres;
pub use relay::{OutboxRelay, outbox_backlog};
pub use sqlite::Sqlite;

use dialect::{Query, on};

/// Every storage port on one database.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::Db>,
    dialect: PhantomData<D>,
}

/// The embedded store: one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;
/// The distributed store: a PostgreSQL database, one schema per service.
pub type PgStore = SqlStore<Postgres>;

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &std::any::type_name::<D>())
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    fn from_pool(pool: Pool<D::Db>) -> Self {
        Self {
            pool,
            dialect: PhantomData,
        }
    }

    /// The pool (for the embedded bus, which shares the SQLite file, and the outbox relays).
    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// At most one row of `q`, read as `R` and converted.
    async fn optional<R, T>(&self, q: Query<'_, D::Db>) -> Result<Option<T>, StoreError>
    where
        D::Db: Decodes<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        let mut c = self.pool.acquire().await.map_err(err)?;
        optional::<D, R, T>(&mut c, q).await
    }

    /// Every row of `q`, read as `R` and converted.
    async fn all<R, T>(&self, q: Query<'_, D::Db>) -> Result<Vec<T>, StoreError>
    where
        D::Db: Decodes<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        let mut c = self.pool.acquire().await.map_err(err)?;
        let rows = q.fetch_all(on::<D>(&mut c)).await.map_err(err)?;
        rows.iter()
            .map(|r| <D::Db as Decodes<R>>::decode(r).map_err(err)?.try_into())
            .collect()
    }

    /// Runs `q`.
    async fn execute(&self, q: Query<'_, D::Db>) -> Result<(), StoreError> {
        let mut c = self.pool.acquire().await.map_err(err)?;
        execute::<D>(&mut c, q).await
    }
}

/// At most one row of `q` on `c` (a connection or a transaction), read as `R` and converted.
async fn optional<D: Dialect, R, T>(
    c: &mut <D::Db as Database>::Connection,
    q: Query<'_, D::Db>,
) -> Result<Option<T>, StoreError>
where
    D::Db: Decodes<R>,
    T: TryFrom<R, Error = StoreError>,
{
    let row = q.fetch_optional(on::<D>(c)).await.map_err(err)?;
    row.map(|r| <D::Db as Decodes<R>>::decode(&r).map_err(err)?.try_into())
        .transpose()
}

/// Runs `q` on `c`. (Whether a statement changed a row is asked with `RETURNING`, which both
/// backends answer alike, rather than from the backend-specific result.)
async fn execute<D: Dialect>(
    c: &mut <D::Db as Database>::Connection,
    q: Query<'_, D::Db>,
) -> Result<(), StoreError> {
    q.execute(on::<D>(c)).await.map_err(err)?;
    Ok(())
}

/// A scalar read as the only column of a row.
struct Scalar<T>(T);

impl<T> TryFrom<(T,)> for Scalar<T> {
    type Error = StoreError;
    fn try_from((v,): (T,)) -> Result<Self, StoreError> {
        Ok(Self(v))
    }
}

/// The port error for a database failure. A value that cannot be read as its type is
/// [`StoreError::Corrupt`] (the data is wrong); anything else may pass.
fn err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// `conflict` when `e` is a unique-key violation (a concurrent writer inserted the same key
/// first), else the error as [`err`] maps it.
fn conflict_or(e: sqlx::Error, conflict: impl FnOnce() -> StoreError) -> StoreError {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        conflict()
    } else {
        err(e)
    }
}

/// Now, Unix milliseconds (the order in which account changes are registered).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fresh random salt.
fn salt() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
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
    async fn meets_the_search_index_contract() {
        let (_d, s) = fresh().await;
        conformance::search_index(&s).await;
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

    #[tokio::test]
    async fn a_corrupt_row_is_its_own_error() {
        let (_d, s) = fresh().await;
        testing::corrupt_rows_are_their_own_error(&s).await;
    }
}
