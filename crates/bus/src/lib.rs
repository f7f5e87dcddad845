//! The event bus port: publishers, subscriptions with committed offsets, per-key order, and
//! its conformance suite (feature `test-utils`). Implementations: the embedded bus in the
//! SQLite file (`medledger-storage-sqlx`, `SqliteBus`) and Kafka (`medledger-bus-kafka`).
//!
//! The port has Kafka's semantics: a producer appends to a topic, each consumer group reads from
//! its last committed offset, and events with the same key are delivered in the order they were
//! appended. Delivery is at-least-once; consumers make their effects idempotent and commit offsets
//! only after the effect is durable.

#[cfg(any(test, feature = "test-utils"))]
pub mod conformance;

use std::time::Duration;

/// Where the Kafka brokers are and the shape of the topics a service creates (the `kafka`
/// section of its configuration in distributed mode; `medledger-bus-kafka` connects to it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Partitions of topics created if missing.
    pub partitions: i32,
    /// Replication factor of topics created if missing.
    pub replication: i32,
    /// Longest wait for a broker acknowledgement, milliseconds.
    pub timeout_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            partitions: 6,
            replication: 1,
            timeout_ms: 30_000,
        }
    }
}

/// A bus failure.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backend is unreachable or failed.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// One event as read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: u32,
    /// Offset within the partition; strictly increasing.
    pub offset: u64,
    /// Partition key.
    pub key: Vec<u8>,
    /// Protobuf payload.
    pub payload: Vec<u8>,
}

/// Producer side.
#[async_trait::async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Appends an event durably; returns once it will survive a crash.
    async fn publish(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(), BusError>;

    /// Appends several events to `topic`, keeping their order per key; returns once all are
    /// durable. On error some may have been appended: the caller retries the whole batch, and
    /// consumers recognise the duplicates (delivery is at-least-once).
    async fn publish_batch(&self, topic: &str, events: &[(&[u8], &[u8])]) -> Result<(), BusError> {
        for (key, payload) in events {
            self.publish(topic, key, payload).await?;
        }
        Ok(())
    }
}

/// Consumer side: one group's cursor over one topic.
#[async_trait::async_trait]
pub trait Subscription: Send + 'static {
    /// Waits up to `wait` for events after the committed offset and returns at most `max`.
    /// Events not yet committed are returned again by the next poll after a restart.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError>;

    /// Commits everything up to and including `record`, for its partition.
    async fn commit(&mut self, record: &BusRecord) -> Result<(), BusError>;
}

/// A bus that can open subscriptions.
#[async_trait::async_trait]
pub trait EventBus: EventPublisher {
    /// Opens `group`'s subscription to `topic`, resuming from its committed offsets.
    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Subscription>, BusError>;
}
