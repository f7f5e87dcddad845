//! End-to-end tests of the embedded chain against real data directories.
#![allow(clippy::unwrap_used)]

use crate::EmbeddedChain;
use crate::block::StoredBlock;
use crate::blocklog::{MAGIC, Next, RecordReader, encode_record};
use crate::chain::BLOCK_LOG;
use crate::embedded::KEY_FILE;
use alloy::consensus::TxEnvelope;
use alloy::eips::Encodable2718;
use alloy::primitives::{Address, Bytes, TxKind};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use medledger_chain::{ChainError, Ledger};
use std::path::Path;
use tempfile::TempDir;

fn root(n: u8) -> [u8; 32] {
    [n; 32]
}

/// Copies a chain directory (block log and key) so each damage case starts from the original.
fn copy_chain(from: &Path) -> TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in [BLOCK_LOG, KEY_FILE] {
        std::fs::copy(from.join(name), to.path().join(name)).unwrap();
    }
    to
}

/// `(start, payload_start, end)` of every record, by block number.
fn record_spans(log: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut reader = RecordReader::new(&log[MAGIC.len()..], MAGIC.len() as u64);
    let mut spans = Vec::new();
    while let Next::Record { start, end, .. } = reader.next().unwrap() {
        spans.push((start as usize, start as usize + 8, end as usize));
    }
    spans
}

fn payload(log: &[u8], span: (usize, usize, usize)) -> &[u8] {
    &log[span.1..span.2 - 32]
}

fn expect_tampered<T: std::fmt::Debug>(result: Result<T, ChainError>, block: u64, what: &str) {
    match result {
        Err(ChainError::Tampered(message)) => {
            eprintln!("{what}: {message}");
            assert!(
                message.contains(&format!("block #{block} ")),
                "{what}: message should name block #{block}: {message}"
            );
        }
        other => panic!("{what}: expected Tampered, got {other:?}"),
    }
}

/// The incremental state root equals a from-scratch computation and the head's root.
fn assert_state_root_consistent(chain: &EmbeddedChain) {
    chain
        .with_writer(|writer| {
            let full = writer.state.machine.full_state_root();
            assert_eq!(full, writer.state.head.state_root);
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn deploys_commits_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    assert_eq!(chain.head().number, 1, "genesis and the deployment block");
    assert_ne!(chain.record_log_address(), chain.roles_address());
    assert_eq!(chain.tree_head_count().await.unwrap(), 0);

    let first = chain.commit_tree_head(3, root(1)).await.unwrap();
    assert_eq!(first.index, 0);
    assert_eq!(first.chain_id, 1337);
    assert_eq!(first.block_number, 2);
    assert_eq!(first.contract, chain.record_log_address().to_string());
    assert_eq!(first.block_hash, chain.head().hash);
    assert!(first.tx_hash.starts_with("0x") && first.tx_hash.len() == 66);

    let second = chain.commit_tree_head(10, root(2)).await.unwrap();
    assert_eq!(second.index, 1);
    assert_eq!(second.block_number, 3);

    let head = chain.tree_head(1).await.unwrap();
    assert_eq!(head.tree_size, 10);
    assert_eq!(head.root, root(2));
    assert_eq!(head.block_number, 3);
    assert!(head.timestamp >= chain.tree_head(0).await.unwrap().timestamp);
    assert_eq!(chain.tree_head_count().await.unwrap(), 2);

    // RecordLog's committer is the sealer, as deployed in block 1.
    let committer = chain
        .call(
            chain.record_log_address(),
            alloy::sol_types::SolCall::abi_encode(
                &medledger_chain::abi::RecordLog::committerCall {},
            )
            .into(),
        )
        .await
        .unwrap();
    assert_eq!(
        Address::from_slice(&committer[12..]),
        chain.sealer_address()
    );
    assert_state_root_consistent(&chain);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn tree_size_must_increase_and_reverts_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    chain.commit_tree_head(5, root(1)).await.unwrap();
    let height = chain.head().number;

    for proposed in [5, 4] {
        let error = chain.commit_tree_head(proposed, root(9)).await.unwrap_err();
        assert_eq!(
            error.revert_name(),
            Some("TreeSizeNotIncreasing"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("previous=5, proposed={proposed}")),
            "{error}"
        );
    }
    // A reverted call is left out and produces no block.
    assert_eq!(chain.head().number, height);
    assert_eq!(chain.tree_head_count().await.unwrap(), 1);

    let error = chain.tree_head(7).await.unwrap_err();
    assert_eq!(error.revert_name(), Some("IndexOutOfRange"), "{error}");
    let error = chain.commit_tree_head(0, root(1)).await.unwrap_err();
    assert_eq!(error.revert_name(), Some("TreeSizeNotIncreasing"));
}

#[tokio::test]
async fn state_and_heads_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (record_log, roles, sealer, head) = {
        let chain = EmbeddedChain::open(dir.path()).unwrap();
        for n in 1..=3u8 {
            chain
                .commit_tree_head(u64::from(n) * 10, root(n))
                .await
                .unwrap();
        }
        (
            chain.record_log_address(),
            chain.roles_address(),
            chain.sealer_address(),
            chain.head(),
        )
    };
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    assert_eq!(chain.record_log_address(), record_log);
    assert_eq!(chain.roles_address(), roles);
    assert_eq!(chain.sealer_address(), sealer);
    assert_eq!(chain.head(), head);
    assert_eq!(chain.tree_head_count().await.unwrap(), 3);
    assert_eq!(chain.tree_head(2).await.unwrap().root, root(3));
    let next = chain.commit_tree_head(40, root(4)).await.unwrap();
    assert_eq!(next.index, 3);
    assert_eq!(next.block_number, head.number + 1);
    assert_state_root_consistent(&chain);
}

#[tokio::test]
async fn an_interrupted_append_is_dropped() {
    let original = tempfile::tempdir().unwrap();
    {
        let chain = EmbeddedChain::open(original.path()).unwrap();
        chain.commit_tree_head(1, root(1)).await.unwrap();
        chain.commit_tree_head(2, root(2)).await.unwrap();
    }
    let log = std::fs::read(original.path().join(BLOCK_LOG)).unwrap();
    // A real next record, cut at several points, and a tail the file system zero-filled.
    let next_record = encode_record(payload(&log, *record_spans(&log).last().unwrap()));
    let tails: Vec<Vec<u8>> = vec![
        next_record[..5].to_vec(),
        next_record[..8].to_vec(),
        next_record[..next_record.len() / 2].to_vec(),
        next_record[..next_record.len() - 1].to_vec(),
        vec![0u8; 4096],
    ];
    for tail in tails {
        let dir = copy_chain(original.path());
        let path = dir.path().join(BLOCK_LOG);
        let mut damaged = log.clone();
        damaged.extend_from_slice(&tail);
        std::fs::write(&path, &damaged).unwrap();

        let reader = EmbeddedChain::open_verified_read_only(dir.path()).unwrap();
        assert_eq!(reader.tree_head_count().unwrap(), 2);

        let chain = EmbeddedChain::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            log.len() as u64,
            "tail cut off"
        );
        assert_eq!(chain.tree_head_count().await.unwrap(), 2);
        assert_eq!(chain.commit_tree_head(3, root(3)).await.unwrap().index, 2);
        drop(chain);
        assert_eq!(
            EmbeddedChain::open(dir.path())
                .unwrap()
                .tree_head_count()
                .await
                .unwrap(),
            3
        );
    }
}

#[tokio::test]
async fn one_changed_byte_in_any_stored_block_fails_open() {
    let original = tempfile::tempdir().unwrap();
    {
        let chain = EmbeddedChain::open(original.path()).unwrap();
        for n in 1..=3u8 {
            chain.commit_tree_head(u64::from(n), root(n)).await.unwrap();
        }
    }
    let log = std::fs::read(original.path().join(BLOCK_LOG)).unwrap();
    let spans = record_spans(&log);
    assert_eq!(spans.len(), 5, "blocks 0 to 4");

    // Where the transaction of block 3 sits inside its record.
    let block3 = StoredBlock::decode(payload(&log, spans[3])).unwrap();
    let tx: &TxEnvelope = &block3.transactions[0];
    let tx_bytes = tx.encoded_2718();
    let tx_offset = payload(&log, spans[3])
        .windows(tx_bytes.len())
        .position(|w| w == tx_bytes)
        .unwrap();
    let tx_start = spans[3].1 + tx_offset;

    let cases: Vec<(&str, usize, u64)> = vec![
        ("genesis header", spans[0].1 + 10, 0),
        ("deployment code in block 1", spans[1].1 + 900, 1),
        ("record length of block 3", spans[3].0 + 2, 3),
        ("record header check of block 3", spans[3].0 + 5, 3),
        ("parent hash in block 3's header", spans[3].1 + 8, 3),
        ("state root in block 3's header", spans[3].1 + 100, 3),
        ("logs bloom in block 3's header", spans[3].1 + 300, 3),
        ("mix hash in block 3's header", spans[3].1 + 500, 3),
        ("start of the transaction in block 3", tx_start + 5, 3),
        (
            "transaction calldata in block 3",
            tx_start + tx_bytes.len() - 90,
            3,
        ),
        (
            "transaction signature in block 3",
            tx_start + tx_bytes.len() - 3,
            3,
        ),
        ("seal of block 3", spans[3].2 - 32 - 10, 3),
        ("seal parity of block 3", spans[3].2 - 33, 3),
        ("checksum of block 3", spans[3].2 - 1, 3),
        ("header of the last block", spans[4].1 + 50, 4),
        ("last byte of the file", log.len() - 1, 4),
    ];
    for (what, position, block) in cases {
        let dir = copy_chain(original.path());
        let mut damaged = log.clone();
        damaged[position] ^= 0x20;
        std::fs::write(dir.path().join(BLOCK_LOG), &damaged).unwrap();
        expect_tampered(EmbeddedChain::open(dir.path()), block, what);
        expect_tampered(
            EmbeddedChain::open_verified_read_only(dir.path()),
            block,
            what,
        );
    }

    // A block whose record checksum was recomputed after the edit still fails: the edit has
    // to get past the block hash, the seal and re-execution.
    let dir = copy_chain(original.path());
    let mut edited = payload(&log, spans[3]).to_vec();
    edited[100] ^= 0x20;
    let mut damaged = log[..spans[3].0].to_vec();
    damaged.extend(encode_record(&edited));
    damaged.extend_from_slice(&log[spans[3].2..]);
    std::fs::write(dir.path().join(BLOCK_LOG), &damaged).unwrap();
    expect_tampered(
        EmbeddedChain::open(dir.path()),
        3,
        "re-checksummed header edit",
    );
}

#[tokio::test]
async fn blocks_not_signed_by_the_sealer_fail_open() {
    let attacker = PrivateKeySigner::random();
    let target = TxKind::Call(Address::repeat_byte(0x42));

    // Sealed by someone else.
    let dir = tempfile::tempdir().unwrap();
    {
        let chain = EmbeddedChain::open(dir.path()).unwrap();
        chain.commit_tree_head(1, root(1)).await.unwrap();
        chain
            .with_writer(|writer| writer.mine(&attacker, &attacker, &[(target, Bytes::new())]))
            .unwrap();
    }
    expect_tampered(EmbeddedChain::open(dir.path()), 3, "forged seal");
    expect_tampered(
        EmbeddedChain::open_verified_read_only(dir.path()),
        3,
        "forged seal",
    );

    // Sealed correctly, but carrying a transaction the sealer did not sign.
    let dir = tempfile::tempdir().unwrap();
    {
        let chain = EmbeddedChain::open(dir.path()).unwrap();
        let sealer = sealer_key(dir.path());
        chain
            .with_writer(|writer| writer.mine(&attacker, &sealer, &[(target, Bytes::new())]))
            .unwrap();
    }
    match EmbeddedChain::open_verified_read_only(dir.path()) {
        Err(ChainError::Tampered(message)) => {
            assert!(
                message.contains("block #2 ") && message.contains("not by the sealer"),
                "{message}"
            );
        }
        other => panic!("expected Tampered, got {other:?}"),
    }
}

/// Rewrites block `number` of the log with `edit` applied, re-sealed with `sealer` and
/// re-framed: what an insider holding the sealer key could produce.
fn rewrite_block(
    log: &[u8],
    number: usize,
    sealer: &PrivateKeySigner,
    edit: impl FnOnce(&mut StoredBlock),
) -> Vec<u8> {
    let spans = record_spans(log);
    let mut block = StoredBlock::decode(payload(log, spans[number])).unwrap();
    edit(&mut block);
    let block = StoredBlock::seal(block.header, block.transactions, sealer).unwrap();
    let mut out = log[..spans[number].0].to_vec();
    out.extend(encode_record(&block.encode()));
    out.extend_from_slice(&log[spans[number].2..]);
    out
}

fn sealer_key(dir: &Path) -> PrivateKeySigner {
    let text = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
    PrivateKeySigner::from_slice(&hex::decode(text.trim().trim_start_matches("0x")).unwrap())
        .unwrap()
}

#[tokio::test]
async fn sealed_blocks_must_still_link_and_re_execute() {
    let original = tempfile::tempdir().unwrap();
    {
        let chain = EmbeddedChain::open(original.path()).unwrap();
        for n in 1..=3u8 {
            chain.commit_tree_head(u64::from(n), root(n)).await.unwrap();
        }
    }
    let log = std::fs::read(original.path().join(BLOCK_LOG)).unwrap();
    let sealer = sealer_key(original.path());
    // Nonces 0 to 2 deployed the contracts; block 3 holds the second commit, nonce 4.
    let other_commit = crate::block::sign_transaction(
        &sealer,
        1337,
        4,
        TxKind::Call(sealer.address().create(0)),
        alloy::sol_types::SolCall::abi_encode(
            &medledger_chain::abi::RecordLog::commitTreeHeadCall {
                treeSize: 2,
                rootHash: root(0xEE).into(),
            },
        )
        .into(),
    )
    .unwrap();
    type Edit = Box<dyn FnOnce(&mut StoredBlock)>;
    let cases: Vec<(&str, usize, Edit, &str)> = vec![
        (
            "state root",
            3,
            Box::new(|b| b.header.state_root.0[0] ^= 1),
            "`state_root` does not match",
        ),
        (
            "gas used",
            3,
            Box::new(|b| b.header.gas_used += 1),
            "`gas_used` does not match",
        ),
        (
            "timestamp before the parent's",
            3,
            Box::new(|b| b.header.timestamp = 1),
            "timestamp goes backwards",
        ),
        (
            "parent link",
            3,
            Box::new(|b| b.header.parent_hash.0[5] ^= 1),
            "parent hash",
        ),
        // Re-signed by the sealer, so only re-execution can tell: the stored roots describe
        // the original transaction.
        (
            "swapped transaction",
            3,
            Box::new(move |b| b.transactions[0] = other_commit),
            "does not match re-execution",
        ),
        (
            "dropped transaction",
            3,
            Box::new(|b| b.transactions.clear()),
            "does not match re-execution",
        ),
        (
            "deployment block without ConsentRegistry",
            1,
            Box::new(|b| {
                b.transactions.pop();
            }),
            "does not match re-execution",
        ),
    ];
    for (what, number, edit, expected) in cases {
        let dir = copy_chain(original.path());
        std::fs::write(
            dir.path().join(BLOCK_LOG),
            rewrite_block(&log, number, &sealer, edit),
        )
        .unwrap();
        match EmbeddedChain::open_verified_read_only(dir.path()) {
            Err(ChainError::Tampered(message)) => {
                assert!(
                    message.contains(&format!("block #{number} ")),
                    "{what}: {message}"
                );
                assert!(message.contains(expected), "{what}: {message}");
            }
            other => panic!("{what}: expected Tampered, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn read_only_open_follows_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    chain.commit_tree_head(1, root(1)).await.unwrap();
    chain.commit_tree_head(2, root(2)).await.unwrap();

    assert!(matches!(
        EmbeddedChain::open(dir.path()),
        Err(ChainError::Locked(_))
    ));

    let reader = EmbeddedChain::open_verified_read_only(dir.path()).unwrap();
    assert_eq!(reader.tree_head_count().unwrap(), 2);
    assert_eq!(
        reader.tree_head(1).unwrap(),
        chain.tree_head(1).await.unwrap()
    );
    assert_eq!(reader.head(), chain.head());
    assert_eq!(
        reader.record_log_address(),
        chain.record_log_address().to_string()
    );
    assert_eq!(reader.sealer_address(), chain.sealer_address());

    let third = chain.commit_tree_head(3, root(3)).await.unwrap();
    assert_eq!(
        reader.tree_head_count().unwrap(),
        2,
        "a reader sees a snapshot until refreshed"
    );
    assert_eq!(reader.refresh().unwrap(), 1);
    assert_eq!(reader.tree_head_count().unwrap(), 3);
    assert_eq!(reader.check_commit(&third).unwrap().root, root(3));

    let mut forged = third.clone();
    forged.block_hash = reader.head().parent_hash;
    assert!(matches!(
        reader.check_commit(&forged),
        Err(ChainError::Tampered(_))
    ));
    assert_eq!(reader.refresh().unwrap(), 0);
}

#[tokio::test]
async fn roles_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    let account = [7u8; 32];
    const PRACTITIONER: u8 = 2;

    assert!(!chain.has_role(account, PRACTITIONER).await.unwrap());
    let receipt = chain.grant_role(account, PRACTITIONER).await.unwrap();
    let event = medledger_chain::abi::Roles::RoleGranted::decode_log(&receipt.logs[0]).unwrap();
    assert_eq!(event.account.0, account);
    assert_eq!(event.role, PRACTITIONER);
    assert_eq!(event.by, chain.sealer_address());
    assert!(chain.has_role(account, PRACTITIONER).await.unwrap());
    assert!(!chain.has_role(account, 3).await.unwrap());

    let error = chain
        .set_practitioner_verified(account, true)
        .await
        .unwrap_err();
    assert_eq!(error.revert_name(), Some("NotAuthority"), "{error}");
    chain
        .set_authority(chain.sealer_address(), true)
        .await
        .unwrap();
    chain
        .set_practitioner_verified(account, true)
        .await
        .unwrap();
    assert!(chain.is_verified(account).await.unwrap());

    chain.revoke_role(account, PRACTITIONER).await.unwrap();
    assert!(!chain.has_role(account, PRACTITIONER).await.unwrap());
    assert!(!chain.is_verified(account).await.unwrap());

    let error = chain.grant_role(account, 0).await.unwrap_err();
    assert_eq!(error.to_string(), "transaction reverted: InvalidRole(0)");
    let error = chain
        .set_admin(chain.sealer_address(), false)
        .await
        .unwrap_err();
    assert_eq!(error.revert_name(), Some("LastAdmin"));
    assert_state_root_consistent(&chain);

    drop(chain);
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    assert!(!chain.has_role(account, PRACTITIONER).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    let start = chain.head().number;
    // Keep the writer busy (as a block being written would) while the calls queue up.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let busy = {
        let chain = chain.clone();
        std::thread::spawn(move || {
            chain
                .with_writer(|_| {
                    locked_tx.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    Ok(())
                })
                .unwrap();
        })
    };
    locked_rx.recv().unwrap();
    let tasks: Vec<_> = (0..24u8)
        .map(|n| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.grant_role([n; 32], 1 + n % 6).await })
        })
        .collect();
    let mut blocks = std::collections::BTreeSet::new();
    for task in tasks {
        blocks.insert(task.await.unwrap().unwrap().block_number);
    }
    busy.join().unwrap();
    assert_eq!(
        blocks.len(),
        1,
        "all queued calls share one block: {blocks:?}"
    );
    assert_eq!(chain.head().number, start + 1);
    assert_eq!(chain.head().transaction_count, 24);
    for n in 0..24u8 {
        assert!(chain.has_role([n; 32], 1 + n % 6).await.unwrap());
    }
    assert_state_root_consistent(&chain);
    drop(chain);
    // A multi-transaction block replays to the same state.
    let reader = EmbeddedChain::open_verified_read_only(dir.path()).unwrap();
    assert_eq!(reader.head().number, start + 1);
}

#[test]
fn deployment_block_holds_the_three_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path()).unwrap();
    let log = std::fs::read(dir.path().join(BLOCK_LOG)).unwrap();
    let spans = record_spans(&log);
    let block1 = StoredBlock::decode(payload(&log, spans[1])).unwrap();
    assert_eq!(block1.transactions.len(), 3);
    assert_eq!(chain.record_log_address(), chain.sealer_address().create(0));
    assert_eq!(chain.roles_address(), chain.sealer_address().create(1));
    assert_eq!(
        chain.consent_registry_address(),
        Some(chain.sealer_address().create(2))
    );
    let event = medledger_chain::abi::RecordLog::CommitterTransferred::SIGNATURE_HASH;
    assert!(
        block1
            .header
            .logs_bloom
            .contains_raw_log(chain.record_log_address(), &[event])
    );
}
