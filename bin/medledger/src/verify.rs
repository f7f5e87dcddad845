//! `medledger verify`: checks a proof bundle against the chains, either the embedded chains in a
//! data dir (offline, re-executing every block) or nodes of the private and public chains over
//! JSON-RPC.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use medledger_chain::{
    Address, AnchorChain, ChainCommit, Ledger, OnChainCheckpoint, OnChainTreeHead,
};
use medledger_chain_evm::{ChainReader, EmbeddedChain};
use medledger_chain_rpc::{RpcAnchor, RpcLedger};
use medledger_ledger::registry::{CONSENT_PROOF_FORMAT, ConsentProof, RecordedChange};
use medledger_ledger::{AnchorLocation, ProofBundle};

/// Arguments of `medledger verify`.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Proof bundle (output of `$verify`).
    #[arg(long)]
    proof: PathBuf,
    /// Data directory whose embedded chains (`chain/`, `public-chain/`) to check against.
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
    /// JSON-RPC URL of a node of the public chain, to check the bundle's anchor (distributed
    /// mode; with `--data-dir` the simulated public chain in the data dir is used).
    #[arg(long, conflicts_with = "data_dir")]
    public_rpc: Option<String>,
    /// The deployment's RecordLog address, as published for it (with `--rpc`): the bundle's own
    /// address proves nothing, since anyone can deploy a contract that answers anything.
    #[arg(long, conflicts_with = "data_dir")]
    record_log: Option<String>,
    /// The deployment's Anchor address on the public chain (with `--public-rpc`).
    #[arg(long, conflicts_with = "data_dir")]
    anchor: Option<String>,
    /// The deployment's ConsentRegistry address (a consent proof with `--rpc`).
    #[arg(long, conflicts_with = "data_dir")]
    consent_registry: Option<String>,
    /// `medledger chain deploy`'s output: supplies `--record-log` and `--anchor`.
    #[arg(long, conflicts_with = "data_dir")]
    deployment: Option<PathBuf>,
    /// Fail unless the bundle carries a public anchor and it checks out.
    #[arg(long)]
    require_anchor: bool,
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
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["format"].as_str().map(str::to_owned));
    if format.as_deref() == Some(CONSENT_PROOF_FORMAT) {
        return run_consent(&text, &args);
    }
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
    let expected = match Expected::from_args(&args).and_then(|e| {
        e.require_record_contracts(&args)?;
        Ok(e)
    }) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let checked = match (&args.data_dir, &args.rpc) {
        (Some(dir), _) => check_embedded(&bundle, dir),
        (None, Some(url)) => check_rpc(&bundle, url, &expected),
        (None, None) => Err(fail("arguments", "give --data-dir or --rpc")),
    };
    let (on_chain, source_block) = match checked {
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
    if let Err(code) = check_anchor(&bundle, &args, &expected, source_block.as_deref()) {
        return code;
    }
    if let Some(path) = &args.resource {
        let canonical = match read_canonical(path) {
            Ok(c) => c,
            Err(code) => return code,
        };
        if let Err(e) = bundle.verify_resource(&canonical) {
            return fail("resource commitment", e);
        }
        println!("ok   the resource matches the committed HMAC");
    }
    println!("VERIFIED {subject}");
    ExitCode::SUCCESS
}

fn read_canonical(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()))
        .map(|v| medledger_fhir::canonical_json(&v))
        .map_err(|e| fail("reading the resource", e))
}

/// A consent proof (`Consent/{id}/_history/{vid}/$verify`): the version's commitments follow from
/// the resource, and the chain's own ConsentRegistry recorded exactly that change.
fn run_consent(text: &str, args: &VerifyArgs) -> ExitCode {
    let proof: ConsentProof = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => return fail("parsing the consent proof", e),
    };
    let subject = format!("{}/_history/{}", proof.consent, proof.version);
    let Some(path) = &args.resource else {
        return fail(
            "arguments",
            "a consent proof needs --resource: the Consent version it is about (vread)",
        );
    };
    let canonical = match read_canonical(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = proof.verify_resource(&canonical) {
        return fail("consent commitments", e);
    }
    println!(
        "ok   the commitments follow from {subject}, its patient and its author {}",
        proof.authorization.actor
    );
    if proof.recorded.tx_hash.is_empty() {
        println!(
            "ok   {subject} ({}) was not in force and changed nothing on chain",
            proof.status
        );
        println!("VERIFIED {subject}");
        return ExitCode::SUCCESS;
    }
    let Ok(tx) = proof.recorded.tx_hash.parse() else {
        return fail("the consent proof", "txHash is not a transaction hash");
    };
    let found = match (&args.data_dir, &args.rpc) {
        (Some(dir), _) => ChainReader::open(&dir.join("chain"))
            .and_then(|reader| reader.consent_change(tx))
            .map_err(|e| fail("reading the embedded chain", e)),
        (None, Some(url)) => consent_change_rpc(url, args, tx),
        (None, None) => Err(fail("arguments", "give --data-dir or --rpc")),
    };
    let found = match found {
        Ok(Some(c)) => c,
        Ok(None) => {
            return fail(
                "consent change on chain",
                format!("ConsentRegistry recorded no change in transaction {tx}"),
            );
        }
        Err(code) => return code,
    };
    if let Err(e) = proof.check_on_chain(&found) {
        return fail("consent change on chain", e);
    }
    println!(
        "ok   ConsentRegistry recorded the {} as change {} of this consent (block {})",
        if found.granted { "grant" } else { "revocation" },
        found.chain_version,
        found.block_number
    );
    println!("VERIFIED {subject}");
    ExitCode::SUCCESS
}

fn consent_change_rpc(
    url: &str,
    args: &VerifyArgs,
    tx: medledger_chain::B256,
) -> Result<Option<RecordedChange>, ExitCode> {
    let Some(registry) = Expected::from_args(args)?.consent_registry else {
        return Err(fail(
            "arguments",
            "with --rpc give --consent-registry or --deployment: the deployment's published ConsentRegistry address",
        ));
    };
    let address = Address::from_str(registry.trim())
        .map_err(|e| fail("arguments", format!("--consent-registry: {e}")))?;
    runtime()?.block_on(async {
        let chain =
            medledger_chain_rpc::RpcRegistry::connect_read_only(url, Address::ZERO, address)
                .await
                .map_err(|e| fail("connecting to the private chain", e))?;
        medledger_chain::Registry::consent_change(&chain, tx)
            .await
            .map_err(|e| fail("reading the consent change", e))
    })
}

/// Contract addresses the verifier was told out of band (distributed mode).
struct Expected {
    record_log: Option<String>,
    anchor: Option<String>,
    consent_registry: Option<String>,
}

impl Expected {
    fn from_args(args: &VerifyArgs) -> Result<Self, ExitCode> {
        let mut e = Self {
            record_log: args.record_log.clone(),
            anchor: args.anchor.clone(),
            consent_registry: args.consent_registry.clone(),
        };
        if let Some(path) = &args.deployment {
            let d: serde_json::Value = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|why| fail("reading the deployment", why))?;
            let field = |k: &str| d[k].as_str().map(str::to_owned);
            e.record_log = e.record_log.or_else(|| field("record_log_address"));
            e.anchor = e.anchor.or_else(|| field("anchor_address"));
            e.consent_registry = e
                .consent_registry
                .or_else(|| field("consent_registry_address"));
        }
        Ok(e)
    }

    /// With `--rpc`, a record proof needs the published RecordLog (and Anchor with
    /// `--public-rpc`).
    fn require_record_contracts(&self, args: &VerifyArgs) -> Result<(), ExitCode> {
        let e = self;
        if args.rpc.is_some() && e.record_log.is_none() {
            return Err(fail(
                "arguments",
                "with --rpc give --record-log or --deployment: the deployment's published RecordLog address",
            ));
        }
        if args.public_rpc.is_some() && e.anchor.is_none() {
            return Err(fail(
                "arguments",
                "with --public-rpc give --anchor or --deployment: the deployment's published Anchor address",
            ));
        }
        Ok(())
    }
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

/// The tree head on chain, and the private chain's hash of the block the bundle's anchor names
/// as the checkpoint's source (when there is an anchor).
type PrivateCheck = (OnChainTreeHead, Option<String>);

/// The head must have been committed in the block the bundle names.
fn same_block(bundle: &ProofBundle, head: &OnChainTreeHead) -> Result<(), ExitCode> {
    if head.block_number == bundle.chain.block_number {
        Ok(())
    } else {
        Err(fail(
            "commit block",
            format!(
                "the head was committed in block {}, the proof says {}",
                head.block_number, bundle.chain.block_number
            ),
        ))
    }
}

/// Re-executes the data dir's chain, then reads the head the proof names from it.
fn check_embedded(bundle: &ProofBundle, dir: &Path) -> Result<PrivateCheck, ExitCode> {
    let chain = EmbeddedChain::open_verified_read_only(&dir.join("chain"))
        .map_err(|e| fail("chain integrity", e))?;
    println!(
        "ok   chain re-executed and verified up to block {}",
        chain.head().number
    );
    same_contract_and_chain(bundle, &chain.record_log_address(), chain.chain_id())?;
    if !bundle.chain.block_hash.is_empty() {
        let commit = ChainCommit {
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
    let head = chain
        .tree_head(bundle.chain.record_log_index)
        .map_err(|e| fail("RecordLog.treeHeadAt view call", e))?;
    same_block(bundle, &head)?;
    let source = bundle.anchor.as_ref().map(|a| {
        chain
            .block_hash(a.source_block_number)
            .map_or_else(String::new, |h| h.to_string())
    });
    Ok((head, source))
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("runtime", e))
}

/// Asks a node of the private chain: chain id, the published RecordLog running RecordLog's
/// code, the commit block's hash, and RecordLog's head.
fn check_rpc(
    bundle: &ProofBundle,
    url: &str,
    expected: &Expected,
) -> Result<PrivateCheck, ExitCode> {
    runtime()?.block_on(async {
        let published = expected.record_log.as_deref().unwrap_or_default();
        let address =
            Address::from_str(published).map_err(|e| fail("the --record-log address", e))?;
        let ledger = RpcLedger::connect_read_only(url, address)
            .await
            .map_err(|e| fail("connecting to the chain", e))?;
        same_contract_and_chain(bundle, &ledger.record_log(), ledger.chain_id())?;
        if !ledger
            .runs_record_log_code()
            .await
            .map_err(|e| fail("RecordLog code", e))?
        {
            return Err(fail(
                "RecordLog code",
                format!("the contract at {address} is not RecordLog's committed bytecode"),
            ));
        }
        println!(
            "ok   {url} is chain {} with RecordLog at the published address {address}",
            ledger.chain_id()
        );
        if !bundle.chain.block_hash.is_empty() {
            let hash = ledger
                .block_hash_hex(bundle.chain.block_number)
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
        same_block(bundle, &head)?;
        let source = match &bundle.anchor {
            Some(a) => Some(
                Ledger::block_hash(&ledger, a.source_block_number)
                    .await
                    .map_or_else(|_| String::new(), |h| h.to_string()),
            ),
            None => None,
        };
        Ok((head, source))
    })
}

/// The anchor section: its consistency proof offline, then the checkpoint on the public chain
/// (the data dir's simulated one, or `--public-rpc`). The Anchor must keep checkpoints of the
/// very RecordLog the bundle names, so an Anchor of another deployment proves nothing.
fn check_anchor(
    bundle: &ProofBundle,
    args: &VerifyArgs,
    expected: &Expected,
    private_source_block: Option<&str>,
) -> Result<(), ExitCode> {
    let Some(anchor) = &bundle.anchor else {
        if args.require_anchor {
            return Err(fail(
                "public anchor",
                "the proof carries no anchor (fetch it again once the head is anchored)",
            ));
        }
        println!("note no public anchor covers this tree head yet");
        return Ok(());
    };
    bundle
        .verify_anchor_consistency()
        .map_err(|e| fail("anchor consistency proof", e))?;
    println!(
        "ok   the anchored checkpoint of size {} extends the tree head (consistency proof)",
        anchor.checkpoint.tree_size
    );
    let source = (bundle.chain.chain_id, bundle.chain.record_log.as_str());
    let checked = if let Some(dir) = &args.data_dir {
        let dir = dir.join("public-chain");
        let reader = EmbeddedChain::open_verified_read_only(&dir)
            .map_err(|e| fail("public chain integrity", e))?;
        check_embedded_anchor(&reader, anchor, source)
    } else if let Some(url) = &args.public_rpc {
        check_rpc_anchor(
            url,
            anchor,
            source,
            expected.anchor.as_deref().unwrap_or_default(),
        )
    } else {
        if args.require_anchor {
            return Err(fail(
                "public anchor",
                "give --public-rpc to check the anchor on the public chain",
            ));
        }
        println!("note the anchor was not checked on the public chain (give --public-rpc)");
        return Ok(());
    };
    let on_chain = checked?;
    if on_chain.checkpoint.source_block_number != anchor.source_block_number {
        return Err(fail(
            "public anchor",
            format!(
                "the checkpoint names private block {}, the proof says {}",
                on_chain.checkpoint.source_block_number, anchor.source_block_number
            ),
        ));
    }
    bundle
        .check_anchored_checkpoint(on_chain.checkpoint.tree_size, &on_chain.checkpoint.root)
        .map_err(|e| fail("checkpoint on the public chain", e))?;
    // The checkpoint names the private block that committed its head; that block must be the
    // private chain's (a rewritten private chain would have another hash there).
    let anchored_source = format!("0x{}", hex::encode(on_chain.checkpoint.source_block_hash));
    if !anchored_source.eq_ignore_ascii_case(&anchor.source_block_hash) {
        return Err(fail(
            "public anchor",
            format!(
                "the checkpoint names private block hash {anchored_source}, the proof says {}",
                anchor.source_block_hash
            ),
        ));
    }
    if private_source_block.is_some_and(|h| !h.eq_ignore_ascii_case(&anchored_source)) {
        return Err(fail(
            "public anchor",
            format!(
                "private block {} is {} on the private chain, but the checkpoint names {anchored_source}",
                anchor.source_block_number,
                private_source_block.unwrap_or_default()
            ),
        ));
    }
    println!(
        "ok   Anchor[{}] on public chain {} holds tree size {} root {} (block {})",
        anchor.anchor_index,
        anchor.chain_id,
        on_chain.checkpoint.tree_size,
        anchor.checkpoint.root_hash,
        on_chain.block_number
    );
    Ok(())
}

fn anchor_commit(anchor: &AnchorLocation) -> ChainCommit {
    ChainCommit {
        chain_id: anchor.chain_id,
        contract: anchor.anchor.clone(),
        block_number: anchor.block_number,
        block_hash: anchor.block_hash.clone(),
        tx_hash: anchor.transaction_hash.clone(),
        index: anchor.anchor_index,
    }
}

fn same_source(
    anchored: (u64, Address),
    (chain_id, record_log): (u64, &str),
) -> Result<(), ExitCode> {
    let matches = anchored.0 == chain_id && anchored.1.to_string().eq_ignore_ascii_case(record_log);
    if matches {
        Ok(())
    } else {
        Err(fail(
            "public anchor",
            format!(
                "this Anchor keeps checkpoints of {} on chain {}, not of {record_log} on chain {chain_id}",
                anchored.1, anchored.0
            ),
        ))
    }
}

fn check_embedded_anchor(
    reader: &ChainReader,
    anchor: &AnchorLocation,
    source: (u64, &str),
) -> Result<OnChainCheckpoint, ExitCode> {
    println!(
        "ok   public chain re-executed and verified up to block {}",
        reader.head().number
    );
    if anchor.chain_id != reader.chain_id()
        || !anchor.anchor.eq_ignore_ascii_case(&reader.anchor_address())
    {
        return Err(fail(
            "public anchor",
            format!(
                "the proof names Anchor {} on chain {}, this public chain has {} on {}",
                anchor.anchor,
                anchor.chain_id,
                reader.anchor_address(),
                reader.chain_id()
            ),
        ));
    }
    same_source(
        reader
            .anchor_source()
            .map_err(|e| fail("Anchor source", e))?,
        source,
    )?;
    let checkpoint = if anchor.block_hash.is_empty() {
        reader.checkpoint(anchor.anchor_index)
    } else {
        reader.check_anchor(&anchor_commit(anchor))
    }
    .map_err(|e| fail("Anchor.checkpointAt", e))?;
    if checkpoint.block_number != anchor.block_number {
        return Err(fail(
            "public anchor",
            format!(
                "the checkpoint was anchored in block {}, the proof says {}",
                checkpoint.block_number, anchor.block_number
            ),
        ));
    }
    Ok(checkpoint)
}

fn check_rpc_anchor(
    url: &str,
    anchor: &AnchorLocation,
    source: (u64, &str),
    published: &str,
) -> Result<OnChainCheckpoint, ExitCode> {
    runtime()?.block_on(async {
        let address = Address::from_str(published).map_err(|e| fail("the --anchor address", e))?;
        if !anchor.anchor.eq_ignore_ascii_case(&address.to_string()) {
            return Err(fail(
                "public anchor",
                format!(
                    "the proof names Anchor {}, the deployment's is {address}",
                    anchor.anchor
                ),
            ));
        }
        let public = RpcAnchor::connect_read_only(url, address)
            .await
            .map_err(|e| fail("connecting to the public chain", e))?;
        if AnchorChain::chain_id(&public) != anchor.chain_id {
            return Err(fail(
                "public anchor",
                format!(
                    "the proof names public chain {}, {url} is chain {}",
                    anchor.chain_id,
                    AnchorChain::chain_id(&public)
                ),
            ));
        }
        same_source(
            public
                .source()
                .await
                .map_err(|e| fail("Anchor source", e))?,
            source,
        )?;
        let on_chain = public
            .checkpoint(anchor.anchor_index)
            .await
            .map_err(|e| fail("Anchor.checkpointAt", e))?;
        if on_chain.block_number != anchor.block_number {
            return Err(fail(
                "public anchor",
                format!(
                    "the checkpoint was anchored in block {}, the proof says {}",
                    on_chain.block_number, anchor.block_number
                ),
            ));
        }
        if !anchor.block_hash.is_empty() {
            let hash = public
                .block_hash(anchor.block_number)
                .await
                .map_err(|e| fail("anchor block", e))?;
            if !hash.to_string().eq_ignore_ascii_case(&anchor.block_hash) {
                return Err(fail(
                    "anchor block",
                    format!(
                        "public block {} is {hash}, not {}",
                        anchor.block_number, anchor.block_hash
                    ),
                ));
            }
        }
        Ok(on_chain)
    })
}
