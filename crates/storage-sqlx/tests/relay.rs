//! The outbox relay against a real PostgreSQL: events reach the bus in order, exactly the
//! committed ones, survive a bus outage, and a NOTIFY wakes the relay.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use medledger_bus::{BusError, EventBus, EventPublisher, Subscription};
use medledger_storage_api::{
    AuditRow, AuditStore, OutboxEvent, RecordIndex, VersionRow, VersionWrite,
};
use medledger_storage_sqlx::SqliteBus;
use medledger_storage_sqlx::{Outbox, OutboxRelay, PgStore, testing::TempDb};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// The embedded bus, which can be switched off to play a broker outage.
#[derive(Clone)]
struct SwitchableBus {
    inner: SqliteBus,
    down: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl EventPublisher for SwitchableBus {
    async fn publish(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("broker away".into()));
        }
        self.inner.publish(topic, key, payload).await
    }
}

async fn sqlite_bus(dir: &std::path::Path) -> SqliteBus {
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("bus.db"))
        .create_if_missing(true);
    let bus = SqliteBus::new(SqlitePool::connect_with(opts).await.unwrap());
    bus.migrate().await.unwrap();
    bus
}

async fn write(store: &PgStore, id: &str, payload: u8) {
    let row = VersionRow {
        resource_type: "Observation".into(),
        id: id.into(),
        version: 1,
        cid: Some(format!("bafy-{id}")),
        wrapped_key: vec![1],
        owner: "Patient/p".into(),
        commitment: Some([payload; 32]),
        deleted: false,
        last_updated: "2026-01-01T00:00:00.000Z".into(),
        actor: "Practitioner/x".into(),
    };
    let ev = OutboxEvent {
        topic: "records".into(),
        key: b"patient-p".to_vec(),
        payload: vec![payload],
    };
    store
        .commit(
            &[VersionWrite {
                row,
                expected: None,
                tags: Vec::new(),
                unless: None,
            }],
            &[ev],
            &[],
        )
        .await
        .unwrap();
}

async fn drain(sub: &mut dyn Subscription, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = sub.poll(100, Duration::from_secs(10)).await.unwrap();
        assert!(
            !batch.is_empty(),
            "only {} of {n} events arrived",
            got.len()
        );
        got.extend(batch.into_iter().map(|r| r.payload[0]));
    }
    got
}

#[tokio::test]
async fn relays_committed_events_in_order_once_and_keeps_them_through_an_outage() {
    let db = TempDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&db.url, 4).await.unwrap();
    let bus = SwitchableBus {
        inner: sqlite_bus(dir.path()).await,
        down: Arc::new(AtomicBool::new(true)),
    };
    let relay = OutboxRelay::new(store.pool().clone(), Arc::new(bus.clone()), 3);
    for i in 0..5u8 {
        write(&store, &format!("o{i}"), i).await;
    }
    // A failed transaction leaves no event behind.
    let dup = VersionWrite {
        row: store
            .version("Observation", "o0", 1)
            .await
            .unwrap()
            .unwrap(),
        expected: None,
        tags: Vec::new(),
        unless: None,
    };
    let ghost = OutboxEvent {
        topic: "records".into(),
        key: b"patient-p".to_vec(),
        payload: vec![99],
    };
    assert!(store.commit(&[dup], &[ghost], &[]).await.is_err());

    // Broker away: nothing is published, nothing is lost.
    assert!(relay.relay_once().await.is_err());
    assert_eq!(relay.backlog().await.unwrap(), 5);

    bus.down.store(false, Ordering::SeqCst);
    assert_eq!(relay.relay_once().await.unwrap(), 3, "one batch of three");
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "nothing is published twice"
    );
    assert_eq!(relay.backlog().await.unwrap(), 0);

    let mut sub = bus.inner.subscribe("g", "records").await.unwrap();
    assert_eq!(drain(sub.as_mut(), 5).await, vec![0, 1, 2, 3, 4]);
    assert!(
        sub.poll(10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty(),
        "the failed transaction's event was published"
    );
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_running_relay_is_woken_by_new_writes() {
    let db = TempDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&db.url, 4).await.unwrap();
    let bus = sqlite_bus(dir.path()).await;
    let relay = OutboxRelay::new(store.pool().clone(), Arc::new(bus.clone()), 100);
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(relay.run(stopped));
    let mut sub = bus.subscribe("g", "records").await.unwrap();
    for i in 0..3u8 {
        write(&store, &format!("w{i}"), i).await;
        assert_eq!(drain(sub.as_mut(), 1).await, vec![i]);
    }
    stop.cancel();
    task.await.unwrap();
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn the_audit_relay_publishes_audit_rows_and_leaves_the_ingest_outbox_alone() {
    let db = TempDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&db.url, 4).await.unwrap();
    let bus = sqlite_bus(dir.path()).await;
    write(&store, "r", 9).await;
    let relay = OutboxRelay::of(
        Outbox::Audit,
        store.pool().clone(),
        Arc::new(bus.clone()),
        100,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(relay.run(stopped));
    let mut sub = bus.subscribe("g", "audit").await.unwrap();
    for i in 0..3u8 {
        let row = AuditRow {
            also_about: Vec::new(),
            id: format!("a{i}"),
            recorded_at_ms: i64::from(i),
            patient: Some("Patient/p".into()),
            actor: "Practitioner/x".into(),
            outcome: "0".into(),
            resource: b"{}".to_vec(),
            salt: [i; 32],
        };
        let ev = OutboxEvent {
            topic: "audit".into(),
            key: vec![i],
            payload: vec![i],
        };
        store.record_audit(&[row], &[ev]).await.unwrap();
        assert_eq!(drain(sub.as_mut(), 1).await, vec![i]);
    }
    stop.cancel();
    task.await.unwrap();
    // The record event is still waiting for the ingest relay.
    assert_eq!(
        medledger_storage_sqlx::outbox_backlog(store.pool())
            .await
            .unwrap(),
        1
    );
    store.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn two_relays_never_publish_the_same_rows() {
    let db = TempDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&db.url, 6).await.unwrap();
    let bus = sqlite_bus(dir.path()).await;
    for i in 0..40u8 {
        write(&store, &format!("r{i}"), i).await;
    }
    let a = OutboxRelay::new(store.pool().clone(), Arc::new(bus.clone()), 4);
    let b = OutboxRelay::new(store.pool().clone(), Arc::new(bus.clone()), 4);
    let mut total = 0;
    loop {
        let (x, y) = tokio::join!(a.relay_once(), b.relay_once());
        let n = x.unwrap() + y.unwrap();
        if n == 0 && a.backlog().await.unwrap() == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 40);
    let mut sub = bus.subscribe("g", "records").await.unwrap();
    assert_eq!(drain(sub.as_mut(), 40).await, (0..40).collect::<Vec<u8>>());
    assert!(
        sub.poll(10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    store.pool().close().await;
    db.drop_db().await;
}
