//! Kafka implementation of the event bus port via rdkafka: an idempotent `acks=all` producer
//! keyed by patient pseudonym, and consumers that commit their group's offsets only when told to.
//!
//! A subscription owns every partition of its topic (manual assignment) and resumes each one from
//! the offset its group last committed. MedLedger's consumers are singletons by design (one
//! ledger writer appends to one Merkle log; replicas stand by on a PostgreSQL advisory lock), so
//! nothing is gained from the group protocol's rebalancing, and a great deal is lost when a
//! consumer is SIGKILLed: the group would hold the dead member's partitions until its session
//! times out, and a broker that never expires it would stall the log for good.
//!
//! The guarantees match the embedded bus: events with one key land in one partition and are
//! read in the order they were appended; a group resumes after its last committed offset; a
//! publish returns only once every in-sync replica has the event. Topics are created on first
//! use (or up front with [`KafkaBus::ensure_topics`]) with the configured partition count.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medledger_bus::{BusError, BusRecord, EventBus, EventPublisher, Subscription};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[cfg(feature = "test-utils")]
pub mod testing;

/// How to reach the brokers and shape new topics.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Partitions of topics this bus creates.
    pub partitions: i32,
    /// Replication factor of topics this bus creates.
    pub replication: i32,
    /// Client id reported to the brokers (shows up in broker logs and quotas).
    pub client_id: String,
    /// Upper bound on any one broker call: a publish not acknowledged by then fails, so the
    /// caller (the outbox relay) retries instead of hanging.
    pub timeout: Duration,
}

impl KafkaConfig {
    /// The client `client_id` of the brokers and topics a service's configuration names.
    pub fn of(brokers: &medledger_bus::BrokerConfig, client_id: &str) -> Self {
        Self {
            brokers: brokers.brokers.clone(),
            partitions: brokers.partitions,
            replication: brokers.replication,
            client_id: client_id.to_owned(),
            timeout: Duration::from_millis(brokers.timeout_ms),
        }
    }

    /// Defaults for `brokers`: three partitions, replication 1, 30 s timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            partitions: 3,
            replication: 1,
            client_id: "medledger".to_owned(),
            timeout: Duration::from_secs(30),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("socket.timeout.ms", ms(self.timeout));
        c
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// The Kafka bus: one shared producer; each subscription has its own consumer.
#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer,
    admin: Arc<AdminClient<DefaultClientContext>>,
    config: Arc<KafkaConfig>,
    topics: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the producer and checks that a broker answers within the timeout.
    pub async fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        let mut pc = config.base();
        // Idempotence makes the broker drop duplicates from producer retries and keeps the
        // per-partition order even with several requests in flight; it implies acks=all.
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", ms(config.timeout));
        let producer: FutureProducer = pc.create().map_err(unavailable)?;
        let admin: AdminClient<DefaultClientContext> =
            config.base().create().map_err(unavailable)?;
        let probe = producer.clone();
        let timeout = config.timeout;
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout))
            .await
            .map_err(unavailable)?
            .map_err(|e| BusError::Unavailable(format!("no broker answered: {e}")))?;
        Ok(Self {
            producer,
            admin: Arc::new(admin),
            config: Arc::new(config),
            topics: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// Creates the topics that do not exist yet; existing ones are left as they are.
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let missing: Vec<&str> = {
            let known = self.topics.lock().map_err(unavailable)?;
            topics
                .iter()
                .copied()
                .filter(|t| !known.contains(*t))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(self.config.timeout));
        let results = self
            .admin
            .create_topics(&new, &opts)
            .await
            .map_err(unavailable)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(BusError::Unavailable(format!(
                        "cannot create topic {t}: {code}"
                    )));
                }
            }
        }
        self.topics
            .lock()
            .map_err(unavailable)?
            .extend(missing.iter().map(|t| (*t).to_owned()));
        Ok(())
    }

    /// Partitions of `topic` according to the brokers' metadata.
    pub async fn partition_count(&self, topic: &str) -> Result<usize, BusError> {
        let producer = self.producer.clone();
        let (topic, timeout) = (topic.to_owned(), self.config.timeout);
        let md = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&topic), timeout)
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        Ok(md.topics().first().map_or(0, |t| t.partitions().len()))
    }

    /// Waits until every queued event is acknowledged (used at shutdown).
    pub fn flush(&self) -> Result<(), BusError> {
        self.producer
            .flush(self.config.timeout)
            .map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl EventPublisher for KafkaBus {
    async fn publish(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(), BusError> {
        self.publish_batch(topic, &[(key, payload)]).await
    }

    async fn publish_batch(&self, topic: &str, events: &[(&[u8], &[u8])]) -> Result<(), BusError> {
        self.ensure_topics(&[topic]).await?;
        // All sends are queued before any is awaited, so a batch costs one round trip; the
        // idempotent producer keeps their order within each partition.
        let sends = events.iter().map(|(key, payload)| {
            self.producer.send(
                FutureRecord::to(topic).key(*key).payload(*payload),
                self.config.timeout,
            )
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| unavailable(e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventBus for KafkaBus {
    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.ensure_topics(&[topic]).await?;
        let mut cc = self.config.base();
        cc.set("group.id", group)
            // Offsets are committed explicitly, after the consumer's effect is durable.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = cc.create().map_err(unavailable)?;
        let partitions = self.partition_count(topic).await?;
        if partitions == 0 {
            return Err(BusError::Unavailable(format!(
                "topic {topic} has no partitions"
            )));
        }
        let mut wanted = TopicPartitionList::new();
        for p in 0..partitions {
            wanted.add_partition(topic, i32::try_from(p).map_err(unavailable)?);
        }
        let consumer = Arc::new(consumer);
        let (c, timeout) = (consumer.clone(), self.config.timeout);
        // The group's committed offsets; partitions it never committed start at the beginning.
        let committed = tokio::task::spawn_blocking(move || c.committed_offsets(wanted, timeout))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let mut assignment = TopicPartitionList::new();
        for e in committed.elements() {
            let start = match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            assignment
                .add_partition_offset(topic, e.partition(), start)
                .map_err(unavailable)?;
        }
        consumer.assign(&assignment).map_err(unavailable)?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            buffered: VecDeque::new(),
            timeout: self.config.timeout,
        }))
    }
}

/// One group's consumer over one topic.
struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    /// Records fetched but not yet handed out (a poll returns at most `max`).
    buffered: VecDeque<BusRecord>,
    timeout: Duration,
}

impl KafkaSubscription {
    fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> BusRecord {
        BusRecord {
            topic: m.topic().to_owned(),
            partition: u32::try_from(m.partition()).unwrap_or_default(),
            offset: u64::try_from(m.offset()).unwrap_or_default(),
            key: m.key().unwrap_or_default().to_vec(),
            payload: m.payload().unwrap_or_default().to_vec(),
        }
    }

    async fn next(&self, wait: Duration) -> Result<Option<BusRecord>, BusError> {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => Ok(None),
            Ok(Ok(m)) => Ok(Some(Self::record(&m))),
            Ok(Err(e)) => Err(unavailable(e)),
        }
    }
}

#[async_trait::async_trait]
impl Subscription for KafkaSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError> {
        if self.buffered.is_empty() {
            if let Some(r) = self.next(wait).await? {
                self.buffered.push_back(r);
            }
            // Whatever librdkafka has already fetched is handed out in the same batch.
            while self.buffered.len() < max {
                match self.next(Duration::from_millis(1)).await? {
                    Some(r) => self.buffered.push_back(r),
                    None => break,
                }
            }
        }
        let n = max.min(self.buffered.len());
        Ok(self.buffered.drain(..n).collect())
    }

    async fn commit(&mut self, record: &BusRecord) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        let partition = i32::try_from(record.partition).map_err(unavailable)?;
        let next = i64::try_from(record.offset + 1).map_err(unavailable)?;
        tpl.add_partition_offset(&record.topic, partition, Offset::Offset(next))
            .map_err(unavailable)?;
        let consumer = self.consumer.clone();
        let timeout = self.timeout;
        // A synchronous commit blocks its thread until the coordinator answers.
        let commit = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync));
        match tokio::time::timeout(timeout, commit).await {
            Err(_) => Err(BusError::Unavailable("offset commit timed out".into())),
            Ok(joined) => joined
                .map_err(unavailable)?
                .map_err(|e: KafkaError| unavailable(e)),
        }
    }
}
