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

/// Against a registry whose Roles and ConsentRegistry hold nothing about the accounts and
/// consents used here.
pub async fn registry(r: &dyn crate::Registry) {
    let account = [0xa1; 32];
    r.ensure_authority().await.unwrap();
    r.ensure_authority().await.unwrap();
    assert_eq!(
        r.role_state(account).await.unwrap(),
        crate::RoleState::default()
    );
    // Verification needs the practitioner role.
    let e = r.set_verified(account, true).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("NotPractitioner"), "{e}");
    r.set_role(account, 2, true).await.unwrap();
    r.set_verified(account, true).await.unwrap();
    let s = r.role_state(account).await.unwrap();
    assert!(s.has(2) && !s.has(1) && s.verified, "{s:?}");
    // Revoking the role clears the verification; another role is independent.
    r.set_role(account, 4, true).await.unwrap();
    r.set_role(account, 2, false).await.unwrap();
    let s = r.role_state(account).await.unwrap();
    assert!(s.has(4) && !s.has(2) && !s.verified, "{s:?}");
    let e = r.set_role(account, 7, true).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("InvalidRole"), "{e}");

    // Consents: grant, grant again (a new version), revoke; each change is findable by its
    // transaction and shows the fields it recorded.
    let (id, patient) = ([0xc1; 32], [0xd1; 32]);
    assert_eq!(r.consent_state(id).await.unwrap().version, 0);
    let g1 = r.record_grant(id, patient, [1; 32], [2; 32]).await.unwrap();
    assert!(g1.granted && g1.chain_version == 1, "{g1:?}");
    assert_eq!(g1.commitment, hex::encode([1u8; 32]));
    assert_eq!(g1.authorization, hex::encode([2u8; 32]));
    assert_eq!(g1.consent_id, hex::encode(id));
    let g2 = r.record_grant(id, patient, [3; 32], [4; 32]).await.unwrap();
    assert_eq!(g2.chain_version, 2);
    let v = r.record_revocation(id, patient, [5; 32]).await.unwrap();
    assert!(
        !v.granted && v.chain_version == 3 && v.commitment.is_empty(),
        "{v:?}"
    );
    let state = r.consent_state(id).await.unwrap();
    assert_eq!(
        (state.patient, state.commitment, state.version, state.active),
        (patient, [3; 32], 3, false)
    );
    for change in [&g1, &g2, &v] {
        let tx = change.tx_hash.parse().unwrap();
        let found = r.consent_change(tx).await.unwrap();
        assert_eq!(found.as_ref(), Some(change));
    }
    assert_eq!(r.consent_history(id).await.unwrap(), [g1.clone(), g2, v]);
    assert!(r.consent_history([0xc9; 32]).await.unwrap().is_empty());
    // Revoking twice, or for another patient, is refused and changes nothing.
    let e = r.record_revocation(id, patient, [6; 32]).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("ConsentNotActive"), "{e}");
    let e = r
        .record_grant(id, [0xd2; 32], [7; 32], [8; 32])
        .await
        .unwrap_err();
    assert_eq!(e.revert_name(), Some("PatientMismatch"), "{e}");
    assert_eq!(r.consent_state(id).await.unwrap().version, 3);
    // A transaction that is not a consent change has none.
    assert_eq!(
        r.consent_change(crate::B256::repeat_byte(0x77))
            .await
            .unwrap(),
        None
    );
}
