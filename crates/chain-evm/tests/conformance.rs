//! The Ledger, AnchorChain and Registry conformance suites against the embedded chains.

#![allow(clippy::unwrap_used, missing_docs)]

use medledger_chain::{AnchorChain, ChainError, Ledger, conformance};
use medledger_chain_evm::EmbeddedChain;

async fn open_private(dir: &std::path::Path) -> EmbeddedChain {
    let path = dir.join("chain");
    tokio::task::spawn_blocking(move || EmbeddedChain::open(&path))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn embedded_chain_meets_the_ledger_contract() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open_private(dir.path()).await;
    conformance::ledger(&chain).await;
    conformance::ledger_block_hashes(&chain).await;
}

#[tokio::test]
async fn embedded_chain_meets_the_registry_contract() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open_private(dir.path()).await;
    conformance::registry(&chain).await;
    // The consent history survives a restart (events are re-derived by the replay), and a
    // read-only verifier sees the same changes.
    let state = medledger_chain::Registry::consent_state(&chain, [0xc1; 32])
        .await
        .unwrap();
    drop(chain);
    let chain = open_private(dir.path()).await;
    assert_eq!(
        medledger_chain::Registry::consent_state(&chain, [0xc1; 32])
            .await
            .unwrap(),
        state
    );
    let path = dir.path().join("chain");
    let reader = tokio::task::spawn_blocking(move || medledger_chain_evm::ChainReader::open(&path))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.consent_state([0xc1; 32]).unwrap(), state);
    assert!(reader.role_state([0xa1; 32]).unwrap().has(4));
}

#[tokio::test]
async fn embedded_public_chain_meets_the_anchor_contract() {
    let dir = tempfile::tempdir().unwrap();
    let private = open_private(dir.path()).await;
    let (id, log) = (private.chain_id(), private.record_log_address());
    let path = dir.path().join("public-chain");
    let public = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || EmbeddedChain::open_public(&path, id, log))
            .await
            .unwrap()
            .unwrap()
    };
    assert_ne!(AnchorChain::chain_id(&public), Ledger::chain_id(&private));
    conformance::anchor(&public).await;
    // The private chain has no Anchor, the public one no RecordLog.
    assert!(matches!(
        private.checkpoint_count().await,
        Err(ChainError::WrongChain(_))
    ));
    assert!(matches!(
        public.commit_tree_head(1, [1; 32]).await,
        Err(ChainError::WrongChain(_))
    ));
    drop(public);
    // Reopened for another private log, the public chain refuses.
    let other = alloy_address(0x42);
    let reopened =
        tokio::task::spawn_blocking(move || EmbeddedChain::open_public(&path, id, other))
            .await
            .unwrap();
    assert!(
        matches!(reopened, Err(ChainError::WrongChain(_))),
        "{reopened:?}"
    );
    // And the private directory is not a public chain.
    let private_dir = dir.path().join("chain");
    drop(private);
    let wrong =
        tokio::task::spawn_blocking(move || EmbeddedChain::open_public(&private_dir, id, log))
            .await
            .unwrap();
    assert!(matches!(wrong, Err(ChainError::WrongChain(_))), "{wrong:?}");
}

fn alloy_address(byte: u8) -> medledger_chain::Address {
    medledger_chain::Address::repeat_byte(byte)
}
