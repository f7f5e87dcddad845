//! The Ledger, AnchorChain and Registry conformance suites against real anvil nodes over
//! JSON-RPC, and the JSON-RPC ledger across a node restart.
//!
//! anvil comes from `MEDLEDGER_ANVIL` (set by the tools env that `make test` sources) or `PATH`;
//! a missing anvil fails the test rather than skipping it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use medledger_test_utils::ChildGuard;
use medledger_test_utils::ports::free_port;

use medledger_chain::{AnchorChain, ChainError, Ledger, PrivateKeySigner, conformance};
use medledger_chain_rpc::{RpcAnchor, RpcLedger};

/// anvil's first development account: a published test key, funded on every anvil chain.
const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Anvil {
    process: ChildGuard,
    port: u16,
    url: String,
}

impl Anvil {
    fn start() -> Self {
        Self::start_on(free_port(), &[])
    }

    /// anvil on `port`; `extra` adds flags such as `--state FILE`.
    fn start_on(port: u16, extra: &[&str]) -> Self {
        let bin = std::env::var("MEDLEDGER_ANVIL").unwrap_or_else(|_| "anvil".to_owned());
        let mut command = Command::new(&bin);
        command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = ChildGuard::spawn(command, &format!("anvil ({bin})"));
        process.wait_for_port(port, Duration::from_secs(30));
        Self {
            process,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Stops anvil the way an operator restarting a node does (SIGTERM: it writes its state).
    fn stop(mut self) {
        self.process.terminate();
    }
}

#[tokio::test]
async fn json_rpc_registry_on_anvil_meets_the_registry_contract() {
    let anvil = Anvil::start();
    let key = PrivateKeySigner::from_str(ANVIL_KEY_0).unwrap();
    let deployed = medledger_chain_rpc::deploy_private(&anvil.url, key.clone())
        .await
        .unwrap();
    let ledger = RpcLedger::connect(&anvil.url, key, deployed.record_log)
        .await
        .unwrap();
    let registry = ledger
        .registry(deployed.roles, deployed.consent_registry)
        .await
        .unwrap();
    // The ledger and the registry share one key: concurrent sends must not collide on nonces.
    let (a, _) = tokio::join!(conformance::registry(&registry), async {
        for size in 1..=5 {
            ledger
                .commit_tree_head(size, [size as u8; 32])
                .await
                .unwrap();
        }
    });
    let () = a;
    assert_eq!(ledger.tree_head_count().await.unwrap(), 5);
    // The history is the same when asked a block at a time (a node's log-range limit).
    let whole = medledger_chain::Registry::consent_history(&registry, [0xc1; 32])
        .await
        .unwrap();
    assert_eq!(whole.len(), 3);
    let paged =
        medledger_chain::Registry::consent_history(&registry.clone().with_log_range(1), [0xc1; 32])
            .await
            .unwrap();
    assert_eq!(paged, whole);
    let reader = medledger_chain_rpc::RpcRegistry::connect_read_only(
        &anvil.url,
        deployed.roles,
        deployed.consent_registry,
    )
    .await
    .unwrap();
    let state = medledger_chain::Registry::consent_state(&reader, [0xc1; 32])
        .await
        .unwrap();
    assert_eq!(state.version, 3);
}

fn alloy_address(byte: u8) -> medledger_chain::Address {
    medledger_chain::Address::repeat_byte(byte)
}

#[tokio::test]
async fn json_rpc_anchor_on_anvil_meets_the_anchor_contract() {
    let anvil = Anvil::start();
    let key = PrivateKeySigner::from_str(ANVIL_KEY_0).unwrap();
    let source = alloy_address(0x11);
    let anchor = RpcAnchor::deploy(&anvil.url, key.clone(), 1337, source)
        .await
        .unwrap();
    conformance::anchor(&anchor).await;
    assert_eq!(anchor.source().await.unwrap(), (1337, source));
    // Connecting for another private log is refused; for the right one it works.
    let e = RpcAnchor::connect(
        &anvil.url,
        key.clone(),
        anchor.anchor_address(),
        1337,
        alloy_address(0x12),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ChainError::WrongChain(_)), "{e}");
    let again = RpcAnchor::connect(&anvil.url, key, anchor.anchor_address(), 1337, source)
        .await
        .unwrap();
    assert_eq!(again.checkpoint_count().await.unwrap(), 2);
    // Only the anchorer anchors.
    let other = RpcAnchor::connect(
        &anvil.url,
        PrivateKeySigner::random(),
        anchor.anchor_address(),
        1337,
        source,
    )
    .await
    .unwrap();
    let cp = medledger_chain::Checkpoint {
        tree_size: 99,
        root: [9; 32],
        source_block_number: 1,
        source_block_hash: [9; 32],
    };
    let e = other.anchor_checkpoint(&cp).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("NotAnchorer"), "{e}");
}

#[tokio::test]
async fn json_rpc_ledger_keeps_committing_across_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil.state");
    let state_arg = state.to_str().unwrap().to_owned();
    let anvil = Anvil::start_on(free_port(), &["--state", &state_arg]);
    let key = PrivateKeySigner::from_str(ANVIL_KEY_0).unwrap();
    let deployed = medledger_chain_rpc::deploy_private(&anvil.url, key.clone())
        .await
        .unwrap();
    let ledger = RpcLedger::connect(&anvil.url, key, deployed.record_log)
        .await
        .unwrap();
    ledger.commit_tree_head(1, [1; 32]).await.unwrap();
    let (port, url) = (anvil.port, anvil.url.clone());
    anvil.stop();

    // The node is away: a commit fails promptly as unavailable, and nothing is counted.
    let started = Instant::now();
    let e = ledger.commit_tree_head(2, [2; 32]).await.unwrap_err();
    assert!(matches!(e, ChainError::Unavailable(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(31),
        "the call timeout bounds the wait"
    );

    // The node is back with its state: the same client commits again (its nonce comes from
    // the node, not from a local count that the failed attempt could have skewed).
    let anvil = Anvil::start_on(port, &["--state", &state_arg]);
    assert_eq!(anvil.url, url);
    assert_eq!(ledger.tree_head_count().await.unwrap(), 1);
    let c = ledger.commit_tree_head(2, [2; 32]).await.unwrap();
    assert_eq!(c.index, 1);
    ledger.commit_tree_head(3, [3; 32]).await.unwrap();
    assert_eq!(ledger.tree_head_count().await.unwrap(), 3);
    assert_eq!(ledger.tree_head(1).await.unwrap().root, [2; 32]);
}

#[tokio::test]
async fn json_rpc_ledger_on_anvil_meets_the_ledger_contract() {
    let anvil = Anvil::start();
    let key = PrivateKeySigner::from_str(ANVIL_KEY_0).unwrap();
    let ledger = RpcLedger::deploy(&anvil.url, key.clone()).await.unwrap();
    conformance::ledger(&ledger).await;
    conformance::ledger_block_hashes(&ledger).await;

    // A second client finds the deployed contract and its heads; a different key may not commit.
    let again = RpcLedger::connect(&anvil.url, key, ledger.record_log_address())
        .await
        .unwrap();
    assert_eq!(again.tree_head_count().await.unwrap(), 3);
    let stranger = PrivateKeySigner::random();
    let other = RpcLedger::connect(&anvil.url, stranger, ledger.record_log_address())
        .await
        .unwrap();
    let e = other.commit_tree_head(9, [9; 32]).await.unwrap_err();
    assert_eq!(e.revert_name(), Some("NotCommitter"), "{e}");
}
