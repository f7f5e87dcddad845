//! The contract every Ledger and AnchorChain backend must meet, as test functions run against
//! the embedded chains and a JSON-RPC node (anvil) alike.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use crate::{AnchorChain, Checkpoint, Ledger};

/// Against a ledger whose RecordLog holds no tree head yet.
pub async fn ledger(l: &dyn Ledger) {
    assert_eq!(l.tree_head_count().await.unwrap(), 0);
    let c1 = l.commit_tree_head(3, [1; 32]).await.unwrap();
    assert_eq!(c1.index, 0);
    assert_eq!(c1.chain_id, l.chain_id());
    assert!(c1.contract.eq_ignore_ascii_case(&l.record_log()));
    assert!(c1.tx_hash.starts_with("0x") && c1.block_hash.starts_with("0x"));
    let c2 = l.commit_tree_head(5, [2; 32]).await.unwrap();
    assert_eq!(c2.index, 1);
    assert!(c2.block_number >= c1.block_number);

    let e = l.commit_tree_head(5, [3; 32]).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("TreeSizeNotIncreasing"), "{e}");
    assert_eq!(
        l.tree_head_count().await.unwrap(),
        2,
        "a reverted commit was counted"
    );

    let h0 = l.tree_head(0).await.unwrap();
    assert_eq!(
        (h0.tree_size, h0.root, h0.block_number),
        (3, [1; 32], c1.block_number)
    );
    let h1 = l.tree_head(1).await.unwrap();
    assert_eq!((h1.tree_size, h1.root), (5, [2; 32]));
    let e = l.tree_head(2).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("IndexOutOfRange"), "{e}");
}

/// Block hashes: the block a commit names has the hash the commit reports.
pub async fn ledger_block_hashes(l: &dyn Ledger) {
    let count = l.tree_head_count().await.unwrap();
    let next = match count {
        0 => 1,
        n => l.tree_head(n - 1).await.unwrap().tree_size + 1,
    };
    let c = l.commit_tree_head(next, [7; 32]).await.unwrap();
    let hash = l.block_hash(c.block_number).await.unwrap();
    assert_eq!(hash.to_string(), c.block_hash);
    assert!(l.block_hash(c.block_number + 1_000_000).await.is_err());
}

/// Against an Anchor that holds no checkpoint yet.
pub async fn anchor(a: &dyn AnchorChain) {
    assert_eq!(a.checkpoint_count().await.unwrap(), 0);
    let cp = |size: u64, fill: u8| Checkpoint {
        tree_size: size,
        root: [fill; 32],
        source_block_number: size * 10,
        source_block_hash: [fill.wrapping_add(1); 32],
    };
    let c1 = a.anchor_checkpoint(&cp(4, 1)).await.unwrap();
    assert_eq!(c1.index, 0);
    assert_eq!(c1.chain_id, a.chain_id());
    assert!(c1.contract.eq_ignore_ascii_case(&a.anchor()));
    assert!(c1.tx_hash.starts_with("0x") && c1.block_hash.starts_with("0x"));
    let c2 = a.anchor_checkpoint(&cp(9, 2)).await.unwrap();
    assert_eq!(c2.index, 1);
    assert!(c2.block_number >= c1.block_number);

    let e = a.anchor_checkpoint(&cp(9, 3)).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("TreeSizeNotIncreasing"), "{e}");
    assert_eq!(a.checkpoint_count().await.unwrap(), 2);

    let got = a.checkpoint(0).await.unwrap();
    assert_eq!(got.checkpoint, cp(4, 1));
    assert_eq!(got.block_number, c1.block_number);
    assert_eq!(a.checkpoint(1).await.unwrap().checkpoint, cp(9, 2));
    let e = a.checkpoint(2).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("IndexOutOfRange"), "{e}");
}
