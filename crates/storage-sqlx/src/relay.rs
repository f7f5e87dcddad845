//! The outbox relays of PostgreSQL: publish `ingest.outbox` (record events, and the audits of writes) and
//! `audit.outbox` (the audits of reads and consent changes) rows to the event bus, oldest first.
//!
//! An acknowledged write has its event in the outbox, committed with the index rows, so a bus
//! outage delays events but never loses them. A row is marked published only after the bus has
//! acknowledged it (with Kafka: every in-sync replica has it); a crash in between publishes it
//! again, which consumers absorb (their effects are keyed by record version). One relay works
//! at a time, serialised by a transaction-scoped advisory lock, so running the relay in every
//! ingest replica is safe and keeps one order.

use std::sync::Arc;
use std::time::Duration;

use medledger_bus::EventPublisher;

use crate::Outbox;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio_util::sync::CancellationToken;

/// Advisory lock key serialising the relays of `outbox` ("mlrelay", "mlaudit").
fn lock_of(outbox: Outbox) -> i64 {
    match outbox {
        Outbox::Ingest => 0x006d_6c72_656c_6179,
        Outbox::Audit => 0x006d_6c61_7564_6974,
    }
}

/// Published rows are kept this long for inspection, then deleted.
const KEEP_PUBLISHED: &str = "5 minutes";

/// Rows of `pool`'s ingest outbox not published yet.
pub async fn outbox_backlog(pool: &PgPool) -> Result<u64, RelayError> {
    backlog_of(pool, Outbox::Ingest).await
}

async fn backlog_of(pool: &PgPool, outbox: Outbox) -> Result<u64, RelayError> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {} WHERE published_at IS NULL",
        outbox.table()
    )))
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// A relay failure; the relay retries, these are for logs and tests.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error("outbox database error: {0}")]
    Store(#[from] sqlx::Error),
    /// The bus did not acknowledge.
    #[error(transparent)]
    Bus(#[from] medledger_bus::BusError),
}

/// Moves outbox rows to the bus.
pub struct OutboxRelay {
    outbox: Outbox,
    pool: PgPool,
    publisher: Arc<dyn EventPublisher>,
    batch: i64,
    idle_poll: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("outbox", &self.outbox)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay over `pool`'s ingest outbox publishing through `publisher`, up to `batch` rows
    /// at a time.
    pub fn new(pool: PgPool, publisher: Arc<dyn EventPublisher>, batch: usize) -> Self {
        Self::of(Outbox::Ingest, pool, publisher, batch)
    }

    /// A relay over `outbox`.
    pub fn of(
        outbox: Outbox,
        pool: PgPool,
        publisher: Arc<dyn EventPublisher>,
        batch: usize,
    ) -> Self {
        Self {
            outbox,
            pool,
            publisher,
            batch: i64::try_from(batch.max(1)).unwrap_or(i64::MAX),
            // The NOTIFY wakes the relay at once; this only bounds the delay if one is missed
            // (e.g. while the listener reconnects).
            idle_poll: Duration::from_secs(1),
        }
    }

    /// Publishes one batch of unpublished rows; returns how many. Zero when the outbox is empty
    /// or another relay holds the lock.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        match self.relay_in(&mut tx).await {
            Ok(n) => {
                tx.commit().await?;
                Ok(n)
            }
            Err(e) => {
                // Roll back now rather than when the connection is next used: until then the
                // transaction-scoped advisory lock would stay held and keep the next attempt
                // (on another pooled connection) from relaying.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn relay_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<usize, RelayError> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(lock_of(self.outbox))
            .fetch_one(&mut **tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let table = self.outbox.table();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT seq, topic, key, payload FROM {table} \
             WHERE published_at IS NULL ORDER BY seq LIMIT $1"
        )))
        .bind(self.batch)
        .fetch_all(&mut **tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        // (topic, key, payload) in seq order; runs of one topic go out as one batch.
        let mut events: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::with_capacity(rows.len());
        for r in &rows {
            seqs.push(r.try_get::<i64, _>("seq")?);
            events.push((
                r.try_get("topic")?,
                r.try_get("key")?,
                r.try_get("payload")?,
            ));
        }
        for run in events.chunk_by(|a, b| a.0 == b.0) {
            let refs: Vec<(&[u8], &[u8])> = run
                .iter()
                .map(|(_, k, p)| (k.as_slice(), p.as_slice()))
                .collect();
            self.publisher.publish_batch(&run[0].0, &refs).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET published_at = now() WHERE seq = ANY($1)"
        )))
        .bind(&seqs)
        .execute(&mut **tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE published_at < now() - interval '{KEEP_PUBLISHED}'"
        )))
        .execute(&mut **tx)
        .await?;
        Ok(seqs.len())
    }

    /// Unpublished rows (for readiness and lag metrics).
    pub async fn backlog(&self) -> Result<u64, RelayError> {
        backlog_of(&self.pool, self.outbox).await
    }

    /// Relays until `shutdown`, waking on each outbox NOTIFY and retrying failures with
    /// backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                listener = match PgListener::connect_with(&self.pool).await {
                    Ok(mut l) => match l.listen(self.outbox.channel()).await {
                        Ok(()) => Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox LISTEN failed; polling");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox listener connect failed; polling");
                        None
                    }
                };
            }
            match self.relay_once().await {
                Ok(n) if n as i64 == self.batch => {
                    backoff = Duration::from_millis(100);
                    continue; // more may be waiting
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay failed; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            let wake = async {
                match listener.as_mut() {
                    Some(l) => {
                        if l.try_recv().await.is_err() {
                            listener = None;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(self.idle_poll) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
}
