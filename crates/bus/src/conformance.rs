//! The contract every EventBus backend must meet, as test functions: the embedded bus runs them
//! now, the Kafka adapter will run the same ones against a real broker.

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
