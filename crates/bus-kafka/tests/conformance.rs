//! The EventBus conformance suite against a real Kafka-protocol broker (tansu), started per test.
//!
//! tansu comes from `MEDLEDGER_TANSU` (set by the tools env that `make test` sources) or `PATH`;
//! a missing broker fails the test rather than skipping it.

#![allow(clippy::unwrap_used, missing_docs)]

use medledger_bus::conformance;
use medledger_bus_kafka::{KafkaBus, KafkaConfig, testing::Tansu};

fn topic(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

async fn bus(broker: &Tansu) -> KafkaBus {
    KafkaBus::connect(KafkaConfig::new(broker.brokers()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_meets_the_ordering_and_offset_contract() {
    let broker = Tansu::start();
    let first = bus(&broker).await;
    let (t, other) = (topic("t"), topic("other"));
    conformance::ordering_and_offsets(&first, &t, &other, || bus(&broker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_meets_the_per_key_order_contract() {
    let broker = Tansu::start();
    conformance::per_key_order_across_partitions(&bus(&broker).await, &topic("keys")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_meets_the_waiting_poll_contract() {
    let broker = Tansu::start();
    conformance::poll_waits_for_new_events(&bus(&broker).await, &topic("wait")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_meets_the_abandoned_subscription_contract() {
    let broker = Tansu::start();
    conformance::an_abandoned_subscription_does_not_stall_its_group(
        &bus(&broker).await,
        &topic("abandoned"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_with_the_configured_partitions() {
    let broker = Tansu::start();
    let mut config = KafkaConfig::new(broker.brokers());
    config.partitions = 5;
    let bus = KafkaBus::connect(config).await.unwrap();
    let t = topic("parts");
    bus.ensure_topics(&[&t]).await.unwrap();
    // Creating again is a no-op, also from a fresh client that has not seen the topic.
    let again = KafkaBus::connect(KafkaConfig::new(broker.brokers()))
        .await
        .unwrap();
    again.ensure_topics(&[&t]).await.unwrap();
    assert_eq!(again.partition_count(&t).await.unwrap(), 5);
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_not_waited_on_forever() {
    let port = medledger_test_utils::ports::free_port();
    let mut config = KafkaConfig::new(format!("127.0.0.1:{port}"));
    config.timeout = std::time::Duration::from_secs(2);
    let err = KafkaBus::connect(config).await.unwrap_err();
    assert!(err.to_string().contains("no broker answered"), "{err}");
}
