//! The embedded bus (`medledger dev`): an append-only log table in the SQLite file plus
//! committed offsets per group, behind the `medledger-bus` port.
//!
//! The log lives in the same database as the record index, so ingest appends its event in the
//! same transaction as the index row ([`append`]): the write and its event are one atomic
//! step, which is what the transactional outbox achieves in distributed mode. The embedded bus
//! has one partition per topic; a total order implies per-key order.

use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};
use tokio::time::Instant;

use medledger_bus::{BusError, BusRecord, EventBus, EventPublisher, Subscription};

/// Schema of the embedded bus; applied by [`SqliteBus::migrate`].
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bus_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_log_topic_seq ON bus_log (topic, seq);
CREATE TABLE IF NOT EXISTS bus_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
"#;

fn err(e: sqlx::Error) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Appends an event on `conn`: inside a caller's transaction, it is the embedded outbox.
pub async fn append(
    conn: &mut SqliteConnection,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO bus_log (topic, key, payload) VALUES (?, ?, ?)")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// The embedded bus over a SQLite pool.
#[derive(Debug, Clone)]
pub struct SqliteBus {
    pool: SqlitePool,
    /// How often an idle subscription looks for new events.
    idle_poll: Duration,
}

impl SqliteBus {
    /// Wraps a pool; call [`SqliteBus::migrate`] once before use.
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            idle_poll: Duration::from_millis(10),
        }
    }

    /// Creates the bus tables if missing.
    pub async fn migrate(&self) -> Result<(), BusError> {
        sqlx::raw_sql(SCHEMA)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventPublisher for SqliteBus {
    async fn publish(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(), BusError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        append(&mut tx, topic, key, payload).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

#[async_trait::async_trait]
impl EventBus for SqliteBus {
    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        let committed: Option<i64> = sqlx::query_scalar(
            "SELECT committed FROM bus_offsets WHERE group_id = ? AND topic = ? AND partition = 0",
        )
        .bind(group)
        .bind(topic)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        Ok(Box::new(SqliteSubscription {
            bus: self.clone(),
            group: group.to_owned(),
            topic: topic.to_owned(),
            position: committed.unwrap_or(0),
        }))
    }
}

struct SqliteSubscription {
    bus: SqliteBus,
    group: String,
    topic: String,
    /// Highest sequence handed out so far (committed or not).
    position: i64,
}

#[async_trait::async_trait]
impl Subscription for SqliteSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError> {
        let deadline = Instant::now() + wait;
        loop {
            let rows: Vec<(i64, Vec<u8>, Vec<u8>)> =
                sqlx::query_as("SELECT seq, key, payload FROM bus_log WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?")
                    .bind(&self.topic)
                    .bind(self.position)
                    .bind(max as i64)
                    .fetch_all(&self.bus.pool)
                    .await
                    .map_err(err)?;
            if let Some(last) = rows.last() {
                self.position = last.0;
                return Ok(rows
                    .into_iter()
                    .map(|(seq, key, payload)| BusRecord {
                        topic: self.topic.clone(),
                        partition: 0,
                        offset: seq as u64,
                        key,
                        payload,
                    })
                    .collect());
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(self.bus.idle_poll).await;
        }
    }

    async fn commit(&mut self, record: &BusRecord) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO bus_offsets (group_id, topic, partition, committed) VALUES (?, ?, 0, ?) \
             ON CONFLICT (group_id, topic, partition) DO UPDATE SET committed = MAX(committed, excluded.committed)",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(record.offset as i64)
        .execute(&self.bus.pool)
        .await
        .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_bus::conformance;
    use sqlx::sqlite::SqliteConnectOptions;

    async fn bus(path: &std::path::Path) -> SqliteBus {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let bus = SqliteBus::new(SqlitePool::connect_with(opts).await.expect("pool"));
        bus.migrate().await.expect("migrate");
        bus
    }

    #[tokio::test]
    async fn meets_the_ordering_and_offset_contract() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("bus.db");
        let first = bus(&db).await;
        conformance::ordering_and_offsets(&first, "t", "other", || bus(&db)).await;
    }

    #[tokio::test]
    async fn meets_the_per_key_order_contract() {
        let dir = tempfile::tempdir().expect("tmp");
        conformance::per_key_order_across_partitions(&bus(&dir.path().join("b.db")).await, "t")
            .await;
    }

    #[tokio::test]
    async fn meets_the_waiting_poll_contract() {
        let dir = tempfile::tempdir().expect("tmp");
        conformance::poll_waits_for_new_events(&bus(&dir.path().join("b.db")).await, "t").await;
    }

    #[tokio::test]
    async fn meets_the_abandoned_subscription_contract() {
        let dir = tempfile::tempdir().expect("tmp");
        let bus = bus(&dir.path().join("b.db")).await;
        conformance::an_abandoned_subscription_does_not_stall_its_group(&bus, "t").await;
    }
}
