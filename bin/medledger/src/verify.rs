//! `medledger verify`: checks a proof bundle against the chain in a data dir, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use medledger_chain::EmbeddedChain;
use medledger_ledger::ProofBundle;

/// Arguments of `medledger verify`.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Proof bundle (output of `$verify`).
    #[arg(long)]
    proof: PathBuf,
    /// Data directory whose chain to check against.
    #[arg(long, env = "MEDLEDGER_DATA_DIR")]
    data_dir: PathBuf,
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
    let chain = match EmbeddedChain::open_verified_read_only(&args.data_dir.join("chain")) {
        Ok(c) => c,
        Err(e) => return fail("chain integrity", e),
    };
    let head = chain.head();
    println!(
        "ok   chain re-executed and verified up to block {}",
        head.number
    );
    if !chain
        .record_log_address()
        .eq_ignore_ascii_case(&bundle.chain.record_log)
    {
        return fail(
            "chain",
            format!(
                "the proof names RecordLog {} but this chain's is {}",
                bundle.chain.record_log,
                chain.record_log_address()
            ),
        );
    }
    if bundle.chain.chain_id != chain.chain_id() {
        return fail(
            "chain",
            format!(
                "the proof is for chain {} but this chain is {}",
                bundle.chain.chain_id,
                chain.chain_id()
            ),
        );
    }
    if !bundle.chain.block_hash.is_empty() {
        let commit = medledger_chain::ChainCommit {
            chain_id: bundle.chain.chain_id,
            contract: bundle.chain.record_log.clone(),
            block_number: bundle.chain.block_number,
            block_hash: bundle.chain.block_hash.clone(),
            tx_hash: bundle.chain.transaction_hash.clone(),
            index: bundle.chain.record_log_index,
        };
        if let Err(e) = chain.check_commit(&commit) {
            return fail("commit block", e);
        }
    }
    let on_chain = match chain.tree_head(bundle.chain.record_log_index) {
        Ok(h) => h,
        Err(e) => return fail("RecordLog.treeHeadAt view call", e),
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
