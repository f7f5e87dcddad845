//! The verified chain state shared by the writer and the read-only verifier: replaying the block
//! log, checking every block, and the view calls served from the resulting state.

use crate::BlockSummary;
use crate::block::{BlockExecution, StoredBlock, header_difference};
use crate::blocklog::{MAGIC, Next, RecordReader};
use crate::evm::Machine;
use alloy::consensus::transaction::SignerRecoverable;
use alloy::consensus::{Header, Transaction, TxEnvelope};
use alloy::primitives::{Address, B256, Bytes, Log, TxKind, U256};
use alloy::sol_types::SolCall;
use medledger_chain::abi::{Anchor, RecordLog};
use medledger_chain::{ChainError, OnChainCheckpoint, OnChainTreeHead};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What an embedded chain is for. The profile is named in every block's `extra_data` (so a
/// chain file of the other kind, or a foreign one, is recognised) and fixes the chain id and the
/// contracts that block 1 deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainProfile {
    /// The private chain: RecordLog, Roles and ConsentRegistry. Chain id 1337, the usual
    /// private-network id.
    Private,
    /// A simulated public chain for `medledger dev`: one Anchor contract holding checkpoints of
    /// a private chain's RecordLog. Chain id 1338. In production the public chain is a real
    /// network reached over JSON-RPC.
    PublicSim,
}

impl ChainProfile {
    /// EIP-155 chain id.
    pub fn chain_id(self) -> u64 {
        match self {
            Self::Private => 1337,
            Self::PublicSim => 1338,
        }
    }

    pub(crate) fn extra_data(self) -> &'static [u8] {
        match self {
            Self::Private => b"medledger/embedded/1",
            Self::PublicSim => b"medledger/public-sim/1",
        }
    }

    fn from_extra_data(data: &[u8]) -> Option<Self> {
        [Self::Private, Self::PublicSim]
            .into_iter()
            .find(|p| p.extra_data() == data)
    }
}

/// Name of the block log inside the chain directory.
pub(crate) const BLOCK_LOG: &str = "blocks.log";

/// State after the last verified block.
#[derive(Debug)]
pub(crate) struct ChainState {
    pub(crate) profile: ChainProfile,
    pub(crate) machine: Machine,
    pub(crate) sealer: Address,
    pub(crate) head: Header,
    pub(crate) head_hash: B256,
    pub(crate) head_tx_count: usize,
    /// Hash of every block, by number.
    pub(crate) hashes: Vec<B256>,
    /// Contracts deployed by block 1 (zero until block 1 is applied, and zero where the profile
    /// has no such contract).
    pub(crate) record_log: Address,
    pub(crate) roles: Address,
    /// Chains created before ConsentRegistry existed have none.
    pub(crate) consent_registry: Option<Address>,
    pub(crate) anchor: Address,
    /// Length of the block log up to the end of the head block.
    pub(crate) valid_len: u64,
    /// Events ConsentRegistry emitted, by transaction hash, with the block number: the consent
    /// history is in events (the contract's state keeps only the latest change), and a verifier
    /// looks a change up by the transaction its proof names. Rebuilt on every replay.
    pub(crate) registry_logs: HashMap<B256, (u64, Vec<Log>)>,
}

/// A replayed chain and whether its log ended in an interrupted append.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) state: ChainState,
    /// Offset of the interrupted append that was ignored, if any.
    pub(crate) torn_at: Option<u64>,
}

impl ChainState {
    /// A state holding only the genesis block.
    pub(crate) fn from_genesis(genesis: &StoredBlock, sealer: Address) -> Result<Self, String> {
        let header = &genesis.header;
        if header.number != 0 || header.parent_hash != B256::ZERO {
            return Err("the first block is not a genesis block".to_owned());
        }
        if !genesis.transactions.is_empty() {
            return Err("the genesis block carries transactions".to_owned());
        }
        let profile = ChainProfile::from_extra_data(&header.extra_data).ok_or_else(|| {
            "the genesis block does not name a MedLedger chain profile".to_owned()
        })?;
        check_seal(genesis, sealer)?;
        let mut machine = Machine::new(profile.chain_id());
        let execution = BlockExecution::begin(
            &mut machine,
            profile.extra_data(),
            B256::ZERO,
            0,
            header.timestamp,
            sealer,
        );
        let (derived, _) = execution.finish(&mut machine);
        if derived != *header {
            return Err(header_difference(header, &derived));
        }
        let hash = genesis.hash();
        machine.record_block_hash(0, hash);
        Ok(Self {
            profile,
            machine,
            sealer,
            head: header.clone(),
            head_hash: hash,
            head_tx_count: 0,
            hashes: vec![hash],
            record_log: Address::ZERO,
            roles: Address::ZERO,
            consent_registry: None,
            anchor: Address::ZERO,
            valid_len: 0,
            registry_logs: HashMap::new(),
        })
    }

    /// Checks `block` against the head and re-executes it; on success it becomes the head.
    /// On failure the state is unusable (it may hold part of the block) and must be dropped.
    pub(crate) fn apply_block(&mut self, block: &StoredBlock) -> Result<(), String> {
        let header = &block.header;
        if header.number != self.head.number + 1 {
            return Err(format!(
                "expected block number {}, found {}",
                self.head.number + 1,
                header.number
            ));
        }
        if header.parent_hash != self.head_hash {
            return Err("parent hash does not link to the previous block".to_owned());
        }
        if header.timestamp < self.head.timestamp {
            return Err("timestamp goes backwards".to_owned());
        }
        check_seal(block, self.sealer)?;
        let mut execution = BlockExecution::begin(
            &mut self.machine,
            self.profile.extra_data(),
            self.head_hash,
            header.number,
            header.timestamp,
            self.sealer,
        );
        for (index, tx) in block.transactions.iter().enumerate() {
            let sender = tx
                .recover_signer()
                .map_err(|e| format!("transaction {index}: bad signature: {e}"))?;
            if sender != self.sealer {
                return Err(format!(
                    "transaction {index} is signed by {sender}, not by the sealer"
                ));
            }
            if tx.chain_id() != Some(self.profile.chain_id()) {
                return Err(format!("transaction {index} is for another chain"));
            }
            match execution
                .apply(&mut self.machine, tx.clone(), sender)
                .map_err(|e| e.to_string())?
            {
                Ok(applied) => self.index_logs(header.number, *tx.tx_hash(), &applied.logs),
                Err(reason) => {
                    return Err(format!(
                        "transaction {index} fails on re-execution: {reason}"
                    ));
                }
            }
        }
        let (derived, _) = execution.finish(&mut self.machine);
        if derived != *header {
            return Err(header_difference(header, &derived));
        }
        if header.number == 1 {
            self.adopt_deployments(&block.transactions)?;
        }
        self.advance(block);
        Ok(())
    }

    /// Keeps the ConsentRegistry events of one executed transaction.
    pub(crate) fn index_logs(&mut self, block_number: u64, tx_hash: B256, logs: &[Log]) {
        let Some(registry) = self.consent_registry else {
            return;
        };
        let kept: Vec<Log> = logs
            .iter()
            .filter(|l| l.address == registry)
            .cloned()
            .collect();
        if !kept.is_empty() {
            self.registry_logs.insert(tx_hash, (block_number, kept));
        }
    }

    /// The ConsentRegistry events of transaction `tx_hash` and its block number.
    pub(crate) fn registry_logs(&self, tx_hash: &B256) -> Option<(u64, Vec<Log>)> {
        self.registry_logs.get(tx_hash).cloned()
    }

    /// Makes `block` (already executed against the machine) the head.
    pub(crate) fn advance(&mut self, block: &StoredBlock) {
        let hash = block.hash();
        self.machine.record_block_hash(block.header.number, hash);
        self.head = block.header.clone();
        self.head_hash = hash;
        self.head_tx_count = block.transactions.len();
        self.hashes.push(hash);
    }

    /// Block 1 deploys the profile's contracts, in order; their addresses follow from the
    /// sealer's nonces. Private: RecordLog, Roles, then ConsentRegistry (absent on chains created
    /// before it existed). Public: Anchor.
    pub(crate) fn adopt_deployments(&mut self, transactions: &[TxEnvelope]) -> Result<(), String> {
        let expected = match self.profile {
            ChainProfile::Private => "RecordLog, Roles and ConsentRegistry",
            ChainProfile::PublicSim => "the Anchor",
        };
        let shape_ok = match self.profile {
            ChainProfile::Private => matches!(transactions.len(), 2 | 3),
            ChainProfile::PublicSim => transactions.len() == 1,
        };
        if !shape_ok || transactions.iter().any(|tx| tx.kind() != TxKind::Create) {
            return Err(format!(
                "block 1 must hold exactly the deployments of {expected}"
            ));
        }
        let mut addresses = Vec::with_capacity(transactions.len());
        for tx in transactions {
            let address = self.sealer.create(tx.nonce());
            if !self.machine.has_code(address) {
                return Err(format!("no contract code at {address} after block 1"));
            }
            addresses.push(address);
        }
        match self.profile {
            ChainProfile::Private => {
                self.record_log = addresses[0];
                self.roles = addresses[1];
                self.consent_registry = addresses.get(2).copied();
            }
            ChainProfile::PublicSim => self.anchor = addresses[0],
        }
        Ok(())
    }

    /// Runs a view call against the head state.
    pub(crate) fn view(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.machine
            .set_block(self.head.number, self.head.timestamp, self.sealer);
        self.machine.view(to, data)
    }

    /// RecordLog's tree head `index`.
    pub(crate) fn tree_head(&mut self, index: u64) -> Result<OnChainTreeHead, ChainError> {
        let call = RecordLog::treeHeadAtCall {
            index: U256::from(index),
        };
        let output = self.view(self.record_log, call.abi_encode().into())?;
        medledger_chain::abi::tree_head_of(&output)
    }

    /// Number of tree heads in RecordLog.
    pub(crate) fn tree_head_count(&mut self) -> Result<u64, ChainError> {
        let output = self.view(
            self.record_log,
            RecordLog::treeHeadCountCall {}.abi_encode().into(),
        )?;
        let count = RecordLog::treeHeadCountCall::abi_decode_returns(&output)
            .map_err(|e| ChainError::Decode(e.to_string()))?;
        u64::try_from(count)
            .map_err(|_| ChainError::Decode("tree head count overflows u64".to_owned()))
    }

    /// Anchor's checkpoint `index` (public profile).
    pub(crate) fn checkpoint(&mut self, index: u64) -> Result<OnChainCheckpoint, ChainError> {
        let call = Anchor::checkpointAtCall {
            index: U256::from(index),
        };
        let output = self.view(self.anchor, call.abi_encode().into())?;
        medledger_chain::abi::checkpoint_of(&output)
    }

    /// The private chain id and RecordLog whose checkpoints Anchor keeps (public profile).
    pub(crate) fn anchor_source(&mut self) -> Result<(u64, Address), ChainError> {
        let decode = |e: alloy::sol_types::Error| ChainError::Decode(e.to_string());
        let id = self.view(
            self.anchor,
            Anchor::sourceChainIdCall {}.abi_encode().into(),
        )?;
        let log = self.view(self.anchor, Anchor::sourceLogCall {}.abi_encode().into())?;
        Ok((
            Anchor::sourceChainIdCall::abi_decode_returns(&id).map_err(decode)?,
            Anchor::sourceLogCall::abi_decode_returns(&log).map_err(decode)?,
        ))
    }

    /// Number of checkpoints in Anchor (public profile).
    pub(crate) fn checkpoint_count(&mut self) -> Result<u64, ChainError> {
        let output = self.view(
            self.anchor,
            Anchor::checkpointCountCall {}.abi_encode().into(),
        )?;
        let count = Anchor::checkpointCountCall::abi_decode_returns(&output)
            .map_err(|e| ChainError::Decode(e.to_string()))?;
        u64::try_from(count)
            .map_err(|_| ChainError::Decode("checkpoint count overflows u64".to_owned()))
    }

    /// The head block, for display and proofs.
    pub(crate) fn summary(&self) -> BlockSummary {
        BlockSummary {
            number: self.head.number,
            hash: self.head_hash.to_string(),
            parent_hash: self.head.parent_hash.to_string(),
            timestamp: self.head.timestamp,
            state_root: self.head.state_root.to_string(),
            transaction_count: self.head_tx_count,
        }
    }

    /// Reads and verifies the records after `valid_len`; stops at the end or an interrupted
    /// append. Returns the number of blocks applied and the offset of a torn tail.
    pub(crate) fn follow(&mut self, file: &mut File) -> Result<(u64, Option<u64>), ChainError> {
        file.seek(SeekFrom::Start(self.valid_len))?;
        let mut reader = RecordReader::new(BufReader::new(file), self.valid_len);
        let mut applied = 0;
        loop {
            let number = self.head.number + 1;
            match reader.next()? {
                Next::End => return Ok((applied, None)),
                Next::TornTail { start } => return Ok((applied, Some(start))),
                Next::Corrupt { start, reason } => {
                    return Err(tampered(number, start, &reason));
                }
                Next::Record {
                    payload,
                    start,
                    end,
                } => {
                    let block =
                        StoredBlock::decode(&payload).map_err(|e| tampered(number, start, &e))?;
                    self.apply_block(&block)
                        .map_err(|e| tampered(number, start, &e))?;
                    self.valid_len = end;
                    applied += 1;
                }
            }
        }
    }
}

/// Replays and verifies the whole block log at `dir/blocks.log`. `expected_sealer`, when given,
/// must be the sealer named by the genesis block.
pub(crate) fn load(
    dir: &Path,
    expected_sealer: Option<Address>,
) -> Result<(Loaded, File), ChainError> {
    let path = dir.join(BLOCK_LOG);
    let mut file = File::open(&path)?;
    let mut magic = [0u8; 8];
    let read = file.read_exact(&mut magic);
    if read.is_err() || magic != *MAGIC {
        return Err(ChainError::Tampered(format!(
            "{} is not a MedLedger block log",
            path.display()
        )));
    }
    let offset = MAGIC.len() as u64;
    let mut reader = RecordReader::new(BufReader::new(&mut file), offset);
    let genesis = match reader.next()? {
        Next::Record {
            payload,
            start,
            end,
        } => {
            let block = StoredBlock::decode(&payload).map_err(|e| tampered(0, start, &e))?;
            (block, start, end)
        }
        Next::Corrupt { start, reason } => return Err(tampered(0, start, &reason)),
        Next::End | Next::TornTail { .. } => {
            return Err(ChainError::Tampered(
                "block log holds no genesis block".to_owned(),
            ));
        }
    };
    let (genesis, start, end) = genesis;
    let sealer = genesis.header.beneficiary;
    if let Some(expected) = expected_sealer
        && expected != sealer
    {
        return Err(ChainError::Tampered(format!(
            "genesis names sealer {sealer}, but the sealer key in the data directory is {expected}"
        )));
    }
    let mut state =
        ChainState::from_genesis(&genesis, sealer).map_err(|e| tampered(0, start, &e))?;
    state.valid_len = end;
    let (_, torn_at) = state.follow(&mut file)?;
    if state.head.number == 0 {
        return Err(ChainError::Tampered(
            "block log ends before the deployment block #1".to_owned(),
        ));
    }
    Ok((Loaded { state, torn_at }, file))
}

fn check_seal(block: &StoredBlock, sealer: Address) -> Result<(), String> {
    if block.header.beneficiary != sealer {
        return Err(format!(
            "beneficiary {} is not the sealer",
            block.header.beneficiary
        ));
    }
    let signer = block.seal_signer()?;
    if signer != sealer {
        return Err(format!("sealed by {signer}, not by the sealer {sealer}"));
    }
    Ok(())
}

fn tampered(number: u64, offset: u64, reason: &str) -> ChainError {
    ChainError::Tampered(format!("block #{number} (log offset {offset}): {reason}"))
}
