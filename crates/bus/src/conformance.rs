//! The contract every EventBus backend must meet, as test functions: the embedded bus runs them
//! and the Kafka adapter runs the same ones against a real broker.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::Duration;

use crate::EventBus;

/// Per-key order, committed offsets survive a new subscription, groups are independent, topics
/// are separate. `topic` and `other_topic` must be empty; `reopen` opens the same bus anew (as a
/// restarted process would).
pub async fn ordering_and_offsets<B: EventBus, F, Fut>(
    bus: &B,
    topic: &str,
    other_topic: &str,
    reopen: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = B>,
{
    for i in 0..5u8 {
        bus.publish(topic, b"patient-1", &[i]).await.unwrap();
    }
    bus.publish(other_topic, b"patient-1", b"elsewhere")
        .await
        .unwrap();
    let mut sub = bus.subscribe("g", topic).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(
            sub.poll(3 - got.len(), Duration::from_secs(10))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        got.iter().map(|r| r.payload[0]).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        got.iter()
            .all(|r| r.key == b"patient-1" && r.topic == topic)
    );
    sub.commit(&got[1]).await.unwrap();
    drop(sub);

    let bus2 = reopen().await;
    let mut sub = bus2.subscribe("g", topic).await.unwrap();
    let mut after = Vec::new();
    while after.len() < 3 {
        let batch = sub.poll(10, Duration::from_secs(10)).await.unwrap();
        assert!(
            !batch.is_empty(),
            "events after the committed offset were not redelivered"
        );
        after.extend(batch);
    }
    assert_eq!(
        after.iter().map(|r| r.payload[0]).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(
        after
            .windows(2)
            .all(|w| w[0].partition != w[1].partition || w[0].offset < w[1].offset)
    );

    let mut other_group = bus2.subscribe("g2", topic).await.unwrap();
    let mut all = Vec::new();
    while all.len() < 5 {
        all.extend(other_group.poll(10, Duration::from_secs(10)).await.unwrap());
    }
    assert_eq!(all.len(), 5, "another group must see every event");
}

/// A poll with nothing to read waits for the next event rather than returning at once.
pub async fn poll_waits_for_new_events<B: EventBus + Clone>(bus: &B, topic: &str) {
    let mut sub = bus.subscribe("waiter", topic).await.unwrap();
    let producer = bus.clone();
    let topic_owned = topic.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        producer.publish(&topic_owned, b"k", b"late").await.unwrap();
    });
    let got = sub.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"late");
}

/// Events of many keys, published in batches and one by one, come back complete and in order
/// per key, whatever partitions the backend spreads the keys over.
pub async fn per_key_order_across_partitions<B: EventBus>(bus: &B, topic: &str) {
    let keys: Vec<Vec<u8>> = (0..8)
        .map(|k| format!("patient-{k}").into_bytes())
        .collect();
    for round in 0..10u8 {
        let batch: Vec<(Vec<u8>, Vec<u8>)> =
            keys.iter().map(|k| (k.clone(), vec![round])).collect();
        let refs: Vec<(&[u8], &[u8])> = batch
            .iter()
            .map(|(k, p)| (k.as_slice(), p.as_slice()))
            .collect();
        if round % 2 == 0 {
            bus.publish_batch(topic, &refs).await.unwrap();
        } else {
            for (k, p) in refs {
                bus.publish(topic, k, p).await.unwrap();
            }
        }
    }
    let mut sub = bus.subscribe("ordered", topic).await.unwrap();
    let mut got = Vec::new();
    while got.len() < keys.len() * 10 {
        let batch = sub.poll(100, Duration::from_secs(10)).await.unwrap();
        assert!(!batch.is_empty(), "events went missing: {} read", got.len());
        got.extend(batch);
    }
    for k in &keys {
        let rounds: Vec<u8> = got
            .iter()
            .filter(|r| &r.key == k)
            .map(|r| r.payload[0])
            .collect();
        assert_eq!(
            rounds,
            (0..10).collect::<Vec<u8>>(),
            "order of one key's events"
        );
    }
}

/// A subscription that vanishes without closing (its process was SIGKILLed) must not hold up the
/// next subscription of its group: it resumes after the committed offset at once, well before
/// any session timeout could have expired the vanished one.
pub async fn an_abandoned_subscription_does_not_stall_its_group<B: EventBus>(bus: &B, topic: &str) {
    for i in 0..3u8 {
        bus.publish(topic, b"patient-1", &[i]).await.unwrap();
    }
    let mut first = bus.subscribe("solo", topic).await.unwrap();
    let mut got = Vec::new();
    while got.is_empty() {
        got = first.poll(1, Duration::from_secs(10)).await.unwrap();
    }
    first.commit(&got[0]).await.unwrap();
    // Never closed: as if its process died.
    std::mem::forget(first);

    let mut next = bus.subscribe("solo", topic).await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    while rest.len() < 2 && started.elapsed() < Duration::from_secs(5) {
        rest.extend(next.poll(10, Duration::from_millis(500)).await.unwrap());
    }
    assert_eq!(
        rest.iter().map(|r| r.payload[0]).collect::<Vec<_>>(),
        vec![1, 2],
        "the next subscription must resume after the committed offset without waiting"
    );
}
