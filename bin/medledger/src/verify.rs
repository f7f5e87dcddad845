//! `medledger verify`: checks a proof bundle against the chain, either the embedded chain in a
//! data dir (offline, re-executing every block) or a node of the private chain over JSON-RPC.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use medledger_chain::{Address, EmbeddedChain, Ledger, OnChainTreeHead, RpcLedger};
use medledger_ledger::ProofBundle;

/// Arguments of `medledger verify`.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Proof bundle (output of `$verify`).
    #[arg(long)]
    proof: PathBuf,
    /// Data directory whose embedded chain to check against.
    #[arg(
        long,
        env = "MEDLEDGER_DATA_DIR",
        required_unless_present = "rpc",
        conflicts_with = "rpc"
    )]
    data_dir: Option<PathBuf>,
    /// JSON-RPC URL of a node of the private chain to check against (distributed mode).
    #[arg(long)]
    rpc: Option<String>,
    /// The resource as read (vread of that version); checked against the commitment.
    #[arg(long)]
    resource: Option<PathBuf>,
}

fn fail(step: &str, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("verification FAILED at {step}: {why}");
    ExitCode::FAILURE
}

pub(crate) fn run(args: VerifyArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.proof) {
        Ok(t) => t,
        Err(e) => return fail("reading the proof", e),
    };
    let bundle: ProofBundle = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => return fail("parsing the proof", e),
    };
    let subject = format!("{}/_history/{}", bundle.leaf.subject(), bundle.leaf.version);
    if let Err(e) = bundle.verify_inclusion() {
        return fail("leaf and inclusion proof", e);
    }
    println!(
        "ok   leaf {} of {subject} is included in the tree of size {}",
        bundle.leaf_index, bundle.tree_head.tree_size
    );
    let checked = match (&args.data_dir, &args.rpc) {
        (Some(dir), _) => check_embedded(&bundle, dir),
        (None, Some(url)) => check_rpc(&bundle, url),
        (None, None) => Err(fail("arguments", "give --data-dir or --rpc")),
    };
    let on_chain = match checked {
        Ok(h) => h,
        Err(code) => return code,
    };
    if let Err(e) = bundle.check_chain_head(on_chain.tree_size, &on_chain.root) {
        return fail("tree head on chain", e);
    }
    println!(
        "ok   RecordLog[{}] on chain holds tree size {} root {} (block {})",
        bundle.chain.record_log_index,
        on_chain.tree_size,
        bundle.tree_head.root_hash,
        on_chain.block_number
    );
    if let Some(path) = args.resource {
        let value: serde_json::Value = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return fail("reading the resource", e),
        };
        if let Err(e) = bundle.verify_resource(&medledger_fhir::canonical_json(&value)) {
            return fail("resource commitment", e);
        }
        println!("ok   the resource matches the committed HMAC");
    }
    println!("VERIFIED {subject}");
    ExitCode::SUCCESS
}

fn same_contract_and_chain(
    bundle: &ProofBundle,
    record_log: &str,
    chain_id: u64,
) -> Result<(), ExitCode> {
    if !record_log.eq_ignore_ascii_case(&bundle.chain.record_log) {
        return Err(fail(
            "chain",
            format!(
                "the proof names RecordLog {} but this chain's is {record_log}",
                bundle.chain.record_log
            ),
        ));
    }
    if bundle.chain.chain_id != chain_id {
        return Err(fail(
            "chain",
            format!(
                "the proof is for chain {} but this chain is {chain_id}",
                bundle.chain.chain_id
            ),
        ));
    }
    Ok(())
}

/// Re-executes the data dir's chain, then reads the head the proof names from it.
fn check_embedded(bundle: &ProofBundle, dir: &Path) -> Result<OnChainTreeHead, ExitCode> {
    let chain = EmbeddedChain::open_verified_read_only(&dir.join("chain"))
        .map_err(|e| fail("chain integrity", e))?;
    println!(
        "ok   chain re-executed and verified up to block {}",
        chain.head().number
    );
    same_contract_and_chain(bundle, &chain.record_log_address(), chain.chain_id())?;
    if !bundle.chain.block_hash.is_empty() {
        let commit = medledger_chain::ChainCommit {
            chain_id: bundle.chain.chain_id,
            contract: bundle.chain.record_log.clone(),
            block_number: bundle.chain.block_number,
            block_hash: bundle.chain.block_hash.clone(),
            tx_hash: bundle.chain.transaction_hash.clone(),
            index: bundle.chain.record_log_index,
        };
        chain
            .check_commit(&commit)
            .map_err(|e| fail("commit block", e))?;
    }
    chain
        .tree_head(bundle.chain.record_log_index)
        .map_err(|e| fail("RecordLog.treeHeadAt view call", e))
}

/// Asks a node of the private chain: chain id, the commit block's hash, and RecordLog's head.
fn check_rpc(bundle: &ProofBundle, url: &str) -> Result<OnChainTreeHead, ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("runtime", e))?;
    rt.block_on(async {
        let address = Address::from_str(&bundle.chain.record_log)
            .map_err(|e| fail("the proof's RecordLog address", e))?;
        let ledger = RpcLedger::connect_read_only(url, address)
            .await
            .map_err(|e| fail("connecting to the chain", e))?;
        same_contract_and_chain(bundle, &ledger.record_log(), ledger.chain_id())?;
        println!(
            "ok   {url} is chain {} with RecordLog deployed",
            ledger.chain_id()
        );
        if !bundle.chain.block_hash.is_empty() {
            let hash = ledger
                .block_hash(bundle.chain.block_number)
                .await
                .map_err(|e| fail("commit block", e))?;
            if !hash.eq_ignore_ascii_case(&bundle.chain.block_hash) {
                return Err(fail(
                    "commit block",
                    format!(
                        "block {} is {hash} on this chain, not {}",
                        bundle.chain.block_number, bundle.chain.block_hash
                    ),
                ));
            }
        }
        let head = ledger
            .tree_head(bundle.chain.record_log_index)
            .await
            .map_err(|e| fail("RecordLog.treeHeadAt view call", e))?;
        if head.block_number != bundle.chain.block_number {
            return Err(fail(
                "commit block",
                format!(
                    "the head was committed in block {}, the proof says {}",
                    head.block_number, bundle.chain.block_number
                ),
            ));
        }
        Ok(head)
    })
}
