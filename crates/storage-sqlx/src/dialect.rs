//! What differs between the backends, and nothing else: how a write transaction begins, how a
//! row is locked for the rest of a transaction, how the Merkle log is serialised, and where the
//! events of a write go (the embedded bus log, or an outbox table and `NOTIFY`).
//!
//! Everything else (every query, every row mapping) is written once in the port modules, over
//! any [`Backend`]. Queries use `$n` placeholders, which both SQLite and PostgreSQL accept, and
//! unqualified table names: SQLite keeps all tables in one file, PostgreSQL in one schema per
//! service found through the connection's `search_path` (see `postgres.rs`).

use std::future::Future;

use medledger_storage_api::OutboxEvent;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use crate::rows;

/// A query whose arguments are being bound.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

/// `DB` can bind a `T` (borrowed for `'t`) as a query argument.
pub trait Encodes<'t, T>: Database {
    /// `q` with `v` bound as its next argument.
    fn push<'q>(q: Query<'q, Self>, v: T) -> Query<'q, Self>;
}

impl<'t, DB: Database, T: Encode<'t, DB> + Type<DB>> Encodes<'t, T> for DB {
    fn push<'q>(q: Query<'q, Self>, v: T) -> Query<'q, Self> {
        q.bind(v)
    }
}

/// `DB` can read a `T` from one of its rows.
pub trait Decodes<T>: Database {
    /// The row as a `T`.
    fn decode(row: &Self::Row) -> Result<T, sqlx::Error>;
}

impl<DB: Database, T: for<'r> FromRow<'r, DB::Row>> Decodes<T> for DB {
    fn decode(row: &Self::Row) -> Result<T, sqlx::Error> {
        T::from_row(row)
    }
}

/// A connection queries can run on.
pub trait Executes<DB: Database>: Send {
    /// The connection as an executor.
    fn executor(&mut self) -> impl Executor<'_, Database = DB>;
}

impl<DB: Database, C: Send> Executes<DB> for C
where
    for<'c> &'c mut C: Executor<'c, Database = DB>,
{
    fn executor(&mut self) -> impl Executor<'_, Database = DB> {
        self
    }
}

/// Declares [`Backend`] with its bounds and implements it for every database that meets them,
/// so the list of bounds is written once.
macro_rules! backend {
    ($($bound:tt)+) => {
        /// A sqlx database the shared queries run on: it binds the argument types and reads the
        /// row types they use. Met by SQLite and PostgreSQL; the bounds are listed here once so
        /// that generic code over a [`Dialect`] can rely on them.
        pub trait Backend: $($bound)+ {}

        impl<DB> Backend for DB where DB: $($bound)+ {}
    };
}

backend!(
    Database<Arguments: IntoArguments<Self>, Connection: Executes<Self>>
        + for<'a> Encodes<'a, i64>
        + for<'a> Encodes<'a, i32>
        + for<'a> Encodes<'a, i16>
        + for<'a> Encodes<'a, bool>
        + for<'a> Encodes<'a, &'a str>
        + for<'a> Encodes<'a, Option<&'a str>>
        + for<'a> Encodes<'a, &'a [u8]>
        + for<'a> Encodes<'a, Option<&'a [u8]>>
        + for<'a> Encodes<'a, Option<i64>>
        + Decodes<rows::Version>
        + Decodes<rows::Head>
        + Decodes<rows::Leaf>
        + Decodes<rows::TreeHead>
        + Decodes<rows::Anchor>
        + Decodes<rows::Account>
        + Decodes<rows::AccountRegistration>
        + Decodes<rows::Consent>
        + Decodes<rows::ConsentRegistration>
        + Decodes<rows::AccessRequest>
        + Decodes<rows::Audit>
        + Decodes<rows::Accepted>
        + Decodes<rows::DeadLetter>
        + Decodes<(i64,)>
        + Decodes<(Option<i64>,)>
        + Decodes<(Vec<u8>,)>
        + Decodes<(i64, Vec<u8>)>
        + Decodes<(String,)>
);

/// Binds arguments through [`Encodes`] (so generic code needs no per-type bounds).
pub(crate) trait Bind<DB: Database>: Sized {
    /// Binds `v` as the next argument.
    fn arg<'t, T>(self, v: T) -> Self
    where
        DB: Encodes<'t, T>;
}

impl<DB: Database> Bind<DB> for Query<'_, DB> {
    fn arg<'t, T>(self, v: T) -> Self
    where
        DB: Encodes<'t, T>,
    {
        DB::push(self, v)
    }
}

/// Which outbox a transaction's events belong to. On SQLite both are the embedded bus log; on
/// PostgreSQL each has its own table, relay lock and wake-up channel (`relay.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// Record events and the AuditEvents of writes, committed with the record index.
    Ingest,
    /// AuditEvents of reads and consent changes, committed with the audit trail.
    Audit,
}

/// Advisory lock key serialising leaf appends ("mlleaves"), so leaf indexes stay dense even
/// with several ledger-writer processes.
pub(crate) const LEAF_LOCK: i64 = 0x6d6c_6c65_6176_6573;

/// The backend-specific part of the store.
pub trait Dialect: Send + Sync + 'static + std::fmt::Debug {
    /// The sqlx database.
    type Db: Backend;

    /// Appended to a `SELECT` of rows the transaction is about to change, so no concurrent
    /// writer changes them before it commits: `FOR UPDATE` where rows can be locked, nothing
    /// where [`Dialect::begin_write`] already holds the database's write lock.
    const FOR_UPDATE: &'static str;

    /// An SQL expression giving a new record's number (`record_heads.rec`, which its tag rows
    /// name): a sequence on PostgreSQL, one more than the largest on SQLite (whose write lock
    /// makes that safe).
    const NEXT_RECORD_NUMBER: &'static str;

    /// Appended to a `SELECT` of queued rows a worker is about to process, so concurrent
    /// workers take different rows: `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite
    /// (one writer at a time).
    const SKIP_LOCKED: &'static str;

    /// An SQL condition: the bytes `haystack` hold the bytes `needle` (both SQL expressions).
    fn contains_bytes(haystack: &str, needle: &str) -> String;

    /// After a large background write (a merge) on `c`: SQLite copies its WAL into the
    /// database now, on this connection, so the next small write does not cross the
    /// autocheckpoint threshold and pay for the merge's pages; PostgreSQL has nothing to do.
    fn after_bulk_write(
        c: &mut <Self::Db as Database>::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Begins a transaction that reads rows and then changes them: on SQLite it takes the
    /// database's write lock at once (`BEGIN IMMEDIATE`), so its reads cannot go stale and it
    /// waits for the lock instead of failing on upgrade; on PostgreSQL a plain transaction whose
    /// reads lock with [`Dialect::FOR_UPDATE`].
    fn begin_write(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// Serialises the transaction with every other holder of `lock` until it ends: nothing more
    /// on SQLite (the write lock serialises everything); a transaction-scoped advisory lock on
    /// PostgreSQL.
    fn lock(
        tx: &mut <Self::Db as Database>::Connection,
        lock: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Appends `events` to `outbox` inside the transaction, so they are published if and only if
    /// it commits.
    fn append_outbox(
        tx: &mut <Self::Db as Database>::Connection,
        outbox: Outbox,
        events: &[OutboxEvent],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// `c` as an executor of `D`'s queries (a pooled connection or a transaction, by deref).
pub(crate) fn on<D: Dialect>(
    c: &mut <D::Db as Database>::Connection,
) -> impl Executor<'_, Database = D::Db> {
    c.executor()
}
