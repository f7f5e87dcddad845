//! Cost of checking one proof bundle offline, as `medledger verify` does before it asks the
//! chains: parse the JSON bundle, check the leaf hash and the inclusion proof (log of 100,000
//! leaves), the resource against its salted commitment (a ~2 KB canonical resource), and the
//! consistency proof from the tree head to an anchored checkpoint of 200,000 leaves. The chain
//! reads that follow (the tree head in RecordLog, the checkpoint in Anchor) are node round trips
//! and are not part of this figure.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::Criterion;
use medledger_ledger::{
    AnchorLocation, ChainLocation, LeafKind, PROOF_FORMAT, ProofBundle, RecordLeaf, TreeHead,
};
use medledger_merkle::MerkleTree;

const LOG: u64 = 100_000;
const CHECKPOINT: u64 = 200_000;
const INDEX: u64 = 77_777;

fn leaf(i: u64, commitment: [u8; 32]) -> RecordLeaf {
    RecordLeaf {
        resource_type: "Observation".into(),
        id: format!("obs-{i}"),
        version: 1,
        cid: "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am".into(),
        commitment: hex::encode(commitment),
        recorded_at_ms: 1_700_000_000_000 + i as i64,
        actor: "Practitioner/dr-1".into(),
        deleted: false,
    }
}

fn setup() -> (String, Vec<u8>) {
    let salt = [7u8; 32];
    let resource = format!(
        "{{\"resourceType\":\"Observation\",\"id\":\"obs-{INDEX}\",\"status\":\"final\",\"note\":[{{\"text\":\"{}\"}}]}}",
        "x".repeat(1900)
    )
    .into_bytes();
    let ours = leaf(INDEX, medledger_crypto::commitment(&salt, &resource));
    let mut tree = MerkleTree::new();
    for i in 0..CHECKPOINT {
        let l = if i == INDEX {
            ours.clone()
        } else {
            leaf(i, [i as u8; 32])
        };
        tree.push(&l.encode().unwrap());
    }
    let hexes = |v: Vec<[u8; 32]>| v.iter().map(hex::encode).collect::<Vec<_>>();
    let bundle = ProofBundle {
        format: PROOF_FORMAT.into(),
        leaf_kind: LeafKind::RecordVersion,
        leaf_hash: hex::encode(tree.leaf(INDEX).unwrap()),
        leaf: ours,
        salt: hex::encode(salt),
        leaf_index: INDEX,
        inclusion_proof: hexes(tree.inclusion_proof(INDEX, LOG).unwrap()),
        tree_head: TreeHead {
            tree_size: LOG,
            root_hash: hex::encode(tree.root_at(LOG).unwrap()),
        },
        chain: ChainLocation {
            network: "json-rpc".into(),
            chain_id: 1337,
            record_log: format!("0x{}", "11".repeat(20)),
            record_log_index: 41,
            block_number: 1_234,
            block_hash: format!("0x{}", "22".repeat(32)),
            transaction_hash: format!("0x{}", "33".repeat(32)),
        },
        anchor: Some(AnchorLocation {
            network: "json-rpc".into(),
            chain_id: 11_155_111,
            anchor: format!("0x{}", "44".repeat(20)),
            anchor_index: 9,
            block_number: 5_678,
            block_hash: format!("0x{}", "55".repeat(32)),
            transaction_hash: format!("0x{}", "66".repeat(32)),
            checkpoint: TreeHead {
                tree_size: CHECKPOINT,
                root_hash: hex::encode(tree.root()),
            },
            source_block_number: 2_345,
            source_block_hash: format!("0x{}", "77".repeat(32)),
            consistency_proof: hexes(tree.consistency_proof(LOG, CHECKPOINT).unwrap()),
        }),
    };
    (serde_json::to_string(&bundle).unwrap(), resource)
}

fn verify(json: &str, resource: &[u8]) {
    let b: ProofBundle = serde_json::from_str(json).unwrap();
    b.verify_inclusion().unwrap();
    b.verify_resource(resource).unwrap();
    b.verify_anchor_consistency().unwrap();
}

fn main() {
    let (json, resource) = setup();
    // The bundle really verifies, and a changed resource byte really fails.
    verify(&json, &resource);
    let mut changed = resource.clone();
    changed[40] ^= 1;
    let b: ProofBundle = serde_json::from_str(&json).unwrap();
    assert!(b.verify_resource(&changed).is_err());

    let mut c = Criterion::default().configure_from_args();
    c.bench_function(
        "proof bundle: parse + leaf + inclusion + resource + consistency",
        |b| b.iter(|| verify(&json, &resource)),
    );
    c.final_summary();
}
