//! The Ledger conformance suite against the embedded chain and a real anvil node over JSON-RPC.
//!
//! anvil comes from `MEDLEDGER_ANVIL` (set by the tools env that `make test` sources) or `PATH`;
//! a missing anvil fails the test rather than skipping it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use medledger_chain::{EmbeddedChain, PrivateKeySigner, RpcLedger, conformance};

/// anvil's first development account: a published test key, funded on every anvil chain.
const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = std::env::var("MEDLEDGER_ANVIL").unwrap_or_else(|_| "anvil".to_owned());
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start anvil ({bin}): {e}; run scripts/install-tools")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "anvil did not open its port");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn embedded_chain_meets_the_ledger_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    let chain = tokio::task::spawn_blocking(move || EmbeddedChain::open(&path))
        .await
        .unwrap()
        .unwrap();
    conformance::ledger(&chain).await;
}

#[tokio::test]
async fn json_rpc_ledger_on_anvil_meets_the_ledger_contract() {
    let anvil = Anvil::start();
    let key = PrivateKeySigner::from_str(ANVIL_KEY_0).unwrap();
    let ledger = RpcLedger::deploy(&anvil.url, key.clone()).await.unwrap();
    conformance::ledger(&ledger).await;

    // A second client finds the deployed contract and its heads; a different key may not commit.
    let again = RpcLedger::connect(&anvil.url, key, ledger.record_log_address())
        .await
        .unwrap();
    assert_eq!(
        medledger_chain::Ledger::tree_head_count(&again)
            .await
            .unwrap(),
        2
    );
    let stranger = PrivateKeySigner::random();
    let other = RpcLedger::connect(&anvil.url, stranger, ledger.record_log_address())
        .await
        .unwrap();
    let e = medledger_chain::Ledger::commit_tree_head(&other, 9, [9; 32])
        .await
        .unwrap_err();
    assert_eq!(e.revert_name(), Some("NotCommitter"), "{e}");
}
