//! The contract every Ledger backend must meet, as a test function run against the embedded
//! chain and a JSON-RPC node (anvil) alike.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use crate::Ledger;

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
