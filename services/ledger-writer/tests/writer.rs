//! The ledger writer against the real embedded backends: SQLite store and bus, in-process chain.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use medledger_bus::{EventBus, EventPublisher};
use medledger_chain::Ledger;
use medledger_chain_evm::EmbeddedChain;
use medledger_ledger::{AuditLeaf, LeafKind};
use medledger_ledger_writer::{LedgerWriter, Settings};
use medledger_merkle::MerkleTree;
use medledger_proto::v1::{AuditRecorded, DeadLetter, RecordVersionStored};
use medledger_proto::{AUDIT_TOPIC, DEAD_LETTER_TOPIC, Message, RECORDS_TOPIC};
use medledger_storage_api::LedgerStore;
use medledger_storage_sqlx::SqliteBus;
use medledger_storage_sqlx::SqliteStore;
use tokio_util::sync::CancellationToken;

fn event(id: &str, version: u64) -> Vec<u8> {
    RecordVersionStored {
        event_id: format!("{id}-{version}"),
        resource_type: "Observation".into(),
        id: id.into(),
        version,
        cid: "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am".into(),
        commitment: vec![7; 32],
        deleted: false,
        recorded_at_ms: 1_700_000_000_000,
        actor: "Practitioner/dr-1".into(),
        owner_pseudonym: "ab".into(),
    }
    .encode_to_vec()
}

async fn wait_for_size(store: &SqliteStore, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if store
            .latest_tree_head()
            .await
            .unwrap()
            .is_some_and(|h| h.tree_size == size)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tree head of size {size} never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A SQLite store, the bus in the same database, and an embedded private chain, in a fresh dir.
async fn embedded() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    Arc<EmbeddedChain>,
    Arc<SqliteBus>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let chain_dir = dir.path().join("chain");
    let chain = Arc::new(
        tokio::task::spawn_blocking(move || EmbeddedChain::open(&chain_dir))
            .await
            .unwrap()
            .unwrap(),
    );
    let bus = Arc::new(SqliteBus::new(store.pool().clone()));
    (dir, store, chain, bus)
}

#[tokio::test]
async fn events_become_leaves_and_heads_on_chain_exactly_once() {
    let (_dir, store, chain, bus) = embedded().await;
    let config = Settings {
        batch_interval: Duration::from_millis(10),
        ..Settings::default()
    };

    for (id, v) in [("a", 1), ("b", 1), ("a", 2)] {
        bus.publish(RECORDS_TOPIC, b"k", &event(id, v))
            .await
            .unwrap();
    }
    // A poison message must not block what follows it.
    bus.publish(RECORDS_TOPIC, b"k", b"\xff\xff not protobuf")
        .await
        .unwrap();
    // A redelivered event adds no second leaf.
    bus.publish(RECORDS_TOPIC, b"k", &event("b", 1))
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let rx = stop.clone();
    let writer = LedgerWriter::start(store.clone(), chain.clone(), bus.clone(), config.clone())
        .await
        .unwrap();
    let task = tokio::spawn(writer.run(rx));
    wait_for_size(&store, 3).await;

    let leaves = store.leaves().await.unwrap();
    assert_eq!(leaves.len(), 3);
    let tree =
        MerkleTree::from_leaf_hashes(leaves.iter().map(|l| medledger_merkle::leaf_hash(&l.leaf)));
    let head = store.latest_tree_head().await.unwrap().unwrap();
    let on_chain = chain.tree_head(head.chain_index).await.unwrap();
    assert_eq!((on_chain.tree_size, on_chain.root), (3, tree.root()));

    // The poison message was parked with its reason and original bytes.
    let mut parked = bus.subscribe("ops", DEAD_LETTER_TOPIC).await.unwrap();
    let dl = parked.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(dl.len(), 1);
    let dl = DeadLetter::decode(dl[0].payload.as_slice()).unwrap();
    assert_eq!(dl.reason, "undecodable payload");
    assert_eq!(dl.payload, b"\xff\xff not protobuf");
    assert_eq!(dl.source_topic, RECORDS_TOPIC);
    assert_eq!(dl.consumer_group, config.group);

    bus.publish(RECORDS_TOPIC, b"k", &event("c", 1))
        .await
        .unwrap();
    wait_for_size(&store, 4).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    // Restarting resumes from committed offsets: nothing is logged or committed twice.
    let count = chain.tree_head_count().await.unwrap();
    let rx = CancellationToken::new();
    let writer = LedgerWriter::start(store.clone(), chain.clone(), bus, config)
        .await
        .unwrap();
    assert_eq!(writer.size(), 4);
    let task = tokio::spawn(writer.run(rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.leaves().await.unwrap().len(), 4);
    assert_eq!(chain.tree_head_count().await.unwrap(), count);
    task.abort();
}

#[tokio::test]
async fn audit_events_share_the_log_with_records_and_are_logged_once() {
    let (_dir, store, chain, bus) = embedded().await;
    let audit = |id: &str| {
        AuditRecorded {
            event_id: id.into(),
            commitment: vec![9; 32],
            recorded_at_ms: 1_700_000_000_000,
        }
        .encode_to_vec()
    };
    bus.publish(RECORDS_TOPIC, b"k", &event("a", 1))
        .await
        .unwrap();
    bus.publish(AUDIT_TOPIC, b"e1", &audit("e1")).await.unwrap();
    bus.publish(AUDIT_TOPIC, b"e2", &audit("e2")).await.unwrap();
    // Redelivered, and a malformed one that is parked.
    bus.publish(AUDIT_TOPIC, b"e1", &audit("e1")).await.unwrap();
    bus.publish(AUDIT_TOPIC, b"x", &AuditRecorded::default().encode_to_vec())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let rx = stop.clone();
    let config = Settings {
        batch_interval: Duration::from_millis(10),
        ..Settings::default()
    };
    let writer = LedgerWriter::start(store.clone(), chain.clone(), bus.clone(), config)
        .await
        .unwrap();
    let task = tokio::spawn(writer.run(rx));
    wait_for_size(&store, 3).await;
    let kind = LeafKind::AuditEvent as u8;
    for id in ["e1", "e2"] {
        let leaf = store
            .leaf_for(kind, &format!("AuditEvent/{id}"), 1)
            .await
            .unwrap()
            .unwrap();
        let decoded = AuditLeaf::decode(&leaf.leaf).unwrap();
        assert_eq!(decoded.id, id);
        assert_eq!(decoded.commitment, "09".repeat(32));
    }
    assert_eq!(store.leaves().await.unwrap().len(), 3);
    let mut parked = bus.subscribe("ops", DEAD_LETTER_TOPIC).await.unwrap();
    let dl = parked.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        DeadLetter::decode(dl[0].payload.as_slice())
            .unwrap()
            .source_topic,
        AUDIT_TOPIC
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn leaf_of_rejects_incomplete_events() {
    let mut ev = RecordVersionStored::decode(event("a", 1).as_slice()).unwrap();
    assert!(medledger_ledger::events::record_leaf(&ev).is_ok());
    ev.commitment = vec![1, 2, 3];
    assert!(medledger_ledger::events::record_leaf(&ev).is_err());
    ev.commitment = vec![7; 32];
    ev.version = 0;
    assert!(medledger_ledger::events::record_leaf(&ev).is_err());
}

/// Stores a tree head committed on `chain` as the writer would.
async fn commit_head(store: &SqliteStore, chain: &EmbeddedChain, size: u64, root: [u8; 32]) {
    let c = chain.commit_tree_head(size, root).await.unwrap();
    store
        .insert_tree_head(&medledger_storage_api::TreeHeadRow {
            tree_size: size,
            root,
            chain_id: c.chain_id,
            contract: c.contract,
            chain_index: c.index,
            block_number: c.block_number,
            block_hash: c.block_hash,
            tx_hash: c.tx_hash,
        })
        .await
        .unwrap();
}

async fn chains(dir: &std::path::Path) -> (Arc<EmbeddedChain>, Arc<EmbeddedChain>) {
    let (private_dir, public_dir) = (dir.join("chain"), dir.join("public-chain"));
    tokio::task::spawn_blocking(move || {
        let private = EmbeddedChain::open(&private_dir).unwrap();
        let public = EmbeddedChain::open_public(
            &public_dir,
            private.chain_id(),
            private.record_log_address(),
        )
        .unwrap();
        (Arc::new(private), Arc::new(public))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_latest_head_is_anchored_once_and_a_lost_anchor_receipt_is_recovered() {
    use medledger_chain::{AnchorChain, Checkpoint};
    use medledger_ledger_writer::Anchorer;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let (private, public) = chains(dir.path()).await;
    let anchorer = |store: &Arc<SqliteStore>| {
        Anchorer::new(
            store.clone(),
            private.clone(),
            public.clone(),
            Duration::from_secs(60),
        )
    };

    let mut a = anchorer(&store);
    // Nothing committed yet: nothing to anchor.
    assert!(!a.anchor_latest().await.unwrap());
    commit_head(&store, &private, 2, [2; 32]).await;
    commit_head(&store, &private, 5, [5; 32]).await;
    assert!(a.anchor_latest().await.unwrap());
    assert_eq!(a.anchored_size(), 5);
    // The same head is not anchored twice.
    assert!(!a.anchor_latest().await.unwrap());
    assert_eq!(public.checkpoint_count().await.unwrap(), 1);

    // The checkpoint on the public chain names the private block that committed the head.
    let stored = store.latest_anchor().await.unwrap().unwrap();
    let on_chain = public.checkpoint(stored.chain_index).await.unwrap();
    let head = store.latest_tree_head().await.unwrap().unwrap();
    assert_eq!(on_chain.checkpoint.tree_size, 5);
    assert_eq!(on_chain.checkpoint.root, [5; 32]);
    assert_eq!(on_chain.checkpoint.source_block_number, head.block_number);
    assert_eq!(
        format!("0x{}", hex::encode(on_chain.checkpoint.source_block_hash)),
        head.block_hash
    );
    assert_eq!(stored.block_number, on_chain.block_number);

    // A crash after the public receipt but before the store row: a fresh anchorer finds the
    // checkpoint on chain, records it, and does not anchor it again.
    commit_head(&store, &private, 8, [8; 32]).await;
    let block = store
        .latest_tree_head()
        .await
        .unwrap()
        .unwrap()
        .block_number;
    public
        .anchor_checkpoint(&Checkpoint {
            tree_size: 8,
            root: [8; 32],
            source_block_number: block,
            source_block_hash: [0; 32],
        })
        .await
        .unwrap();
    let mut b = anchorer(&store);
    assert!(!b.anchor_latest().await.unwrap());
    assert_eq!(b.anchored_size(), 8);
    assert_eq!(store.latest_anchor().await.unwrap().unwrap().tree_size, 8);
    assert_eq!(public.checkpoint_count().await.unwrap(), 2);

    // A checkpoint on the public chain that is no committed head stops the anchorer.
    public
        .anchor_checkpoint(&Checkpoint {
            tree_size: 9,
            root: [0xEE; 32],
            source_block_number: block,
            source_block_hash: [0; 32],
        })
        .await
        .unwrap();
    let err = anchorer(&store).anchor_latest().await.unwrap_err();
    assert!(
        matches!(
            err,
            medledger_ledger_writer::domain::WriterError::Inconsistent(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_anchor_loop_keeps_up_with_the_writer() {
    use medledger_ledger_writer::Anchorer;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let (private, public) = chains(dir.path()).await;
    let bus = Arc::new(SqliteBus::new(store.pool().clone()));
    let config = Settings {
        batch_interval: Duration::from_millis(10),
        ..Settings::default()
    };
    let stop = CancellationToken::new();
    let rx = stop.clone();
    let writer = LedgerWriter::start(store.clone(), private.clone(), bus.clone(), config)
        .await
        .unwrap();
    let writing = tokio::spawn(writer.run(rx.clone()));
    let anchoring = tokio::spawn(
        Anchorer::new(
            store.clone(),
            private.clone(),
            public.clone(),
            Duration::from_millis(50),
        )
        .run(rx),
    );
    for n in 0..5 {
        bus.publish(RECORDS_TOPIC, b"k", &event(&format!("o{n}"), 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait_for_size(&store, 5).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .latest_anchor()
        .await
        .unwrap()
        .is_none_or(|a| a.tree_size < 5)
    {
        assert!(
            Instant::now() < deadline,
            "the last head was never anchored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    writing.await.unwrap().unwrap();
    anchoring.await.unwrap().unwrap();
}
