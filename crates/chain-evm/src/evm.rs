//! The execution layer: revm over an in-memory database, plus the Merkle-Patricia state
//! commitment that is kept in step with it.

use crate::mpt::Trie;
use alloy::consensus::TrieAccount;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use medledger_chain::ChainError;
use revm::context::result::{ExecutionResult, ResultAndState};
use revm::context::{BlockEnv, TxEnv};
use revm::database::{AccountState, InMemoryDB};
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder};
use std::collections::{HashMap, HashSet};

/// The hardfork the chain executes. Pinned (not revm's moving default) so that a chain written
/// today replays identically after a revm upgrade; it matches the contracts' `evm_version`.
pub(crate) const SPEC: SpecId = SpecId::CANCUN;

/// Gas limit of every transaction. Gas is free on this chain (base fee and gas price are zero),
/// so the limit only bounds runaway execution; it covers deploying either contract.
pub(crate) const TX_GAS_LIMIT: u64 = 10_000_000;

/// Block gas limit: large enough for the biggest batch the miner builds.
pub(crate) const BLOCK_GAS_LIMIT: u64 = 1_000_000_000;

/// Caller of view calls: an address that never sends transactions, so its nonce is always 0.
const VIEW_CALLER: Address = Address::ZERO;

/// How many recent block hashes `BLOCKHASH` can see, as on Ethereum.
const BLOCK_HASH_WINDOW: u64 = 256;

/// revm's EVM is not `Send` (its interpreter keeps raw pointers), so it cannot live in the
/// chain's shared state; one is built per transaction over a borrow of the database instead,
/// which costs a few allocations.
type Evm<'a> = MainnetEvm<MainnetContext<&'a mut InMemoryDB>>;

/// What one transaction did, as far as the block cares.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Executed and committed to the state.
    Success {
        gas_used: u64,
        output: Bytes,
        logs: Vec<alloy::primitives::Log>,
    },
    /// Reverted or halted; nothing was committed.
    Failed { reason: String },
}

/// Accounts (and their storage slots) changed by a block, merged over its transactions.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    accounts: HashMap<Address, TouchedAccount>,
}

#[derive(Debug, Default)]
struct TouchedAccount {
    /// The account was created or self-destructed: its storage restarts from empty.
    storage_reset: bool,
    slots: HashSet<U256>,
}

/// revm plus the state tries.
pub(crate) struct Machine {
    db: InMemoryDB,
    block: BlockEnv,
    chain_id: u64,
    accounts: Trie,
    storage: HashMap<Address, Trie>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// An empty state for chain `chain_id`.
    pub(crate) fn new(chain_id: u64) -> Self {
        Self {
            db: InMemoryDB::default(),
            block: BlockEnv::default(),
            chain_id,
            accounts: Trie::default(),
            storage: HashMap::new(),
        }
    }

    fn evm(&mut self) -> Evm<'_> {
        let chain_id = self.chain_id;
        MainnetContext::new(&mut self.db, SPEC)
            .with_block(self.block.clone())
            .modify_cfg_chained(|cfg| cfg.chain_id = chain_id)
            .build_mainnet()
    }

    /// Sets the environment of the block that following transactions execute in.
    pub(crate) fn set_block(&mut self, number: u64, timestamp: u64, beneficiary: Address) {
        self.block = BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            beneficiary,
            gas_limit: BLOCK_GAS_LIMIT,
            basefee: 0,
            difficulty: U256::ZERO,
            prevrandao: Some(B256::ZERO),
            ..BlockEnv::default()
        };
    }

    /// Makes `hash` visible to `BLOCKHASH` and forgets hashes that fell out of its window.
    pub(crate) fn record_block_hash(&mut self, number: u64, hash: B256) {
        let hashes = &mut self.db.cache.block_hashes;
        hashes.insert(U256::from(number), hash);
        if let Some(old) = number.checked_sub(BLOCK_HASH_WINDOW) {
            hashes.remove(&U256::from(old));
        }
    }

    /// The current nonce of `address`.
    pub(crate) fn nonce(&self, address: Address) -> u64 {
        self.db
            .cache
            .accounts
            .get(&address)
            .map_or(0, |account| account.info.nonce)
    }

    /// Whether `address` holds code.
    pub(crate) fn has_code(&self, address: Address) -> bool {
        self.db
            .cache
            .accounts
            .get(&address)
            .is_some_and(|account| !account.info.is_empty_code_hash())
    }

    /// Executes a signed transaction's content from `sender` in the current block and, if it
    /// succeeds, commits its changes and records what it touched.
    pub(crate) fn apply(
        &mut self,
        sender: Address,
        tx: &alloy::consensus::TxEip1559,
        touched: &mut Touched,
    ) -> Result<Outcome, ChainError> {
        let env = TxEnv::builder()
            .tx_type(Some(2))
            .caller(sender)
            .gas_limit(tx.gas_limit)
            .max_fee_per_gas(tx.max_fee_per_gas)
            .gas_priority_fee(Some(tx.max_priority_fee_per_gas))
            .kind(tx.to)
            .value(tx.value)
            .data(tx.input.clone())
            .nonce(tx.nonce)
            .chain_id(Some(tx.chain_id))
            .build()
            .map_err(|e| ChainError::Evm(format!("transaction environment: {e:?}")))?;
        let mut evm = self.evm();
        let ResultAndState { result, state } = evm
            .transact(env)
            .map_err(|e| ChainError::Evm(e.to_string()))?;
        match result {
            ExecutionResult::Success {
                gas, logs, output, ..
            } => {
                touched.record(&state);
                evm.commit(state);
                Ok(Outcome::Success {
                    gas_used: gas.tx_gas_used(),
                    output: output.into_data(),
                    logs,
                })
            }
            ExecutionResult::Revert { output, .. } => Ok(Outcome::Failed {
                reason: medledger_chain::abi::decode_revert(&output),
            }),
            ExecutionResult::Halt { reason, .. } => Ok(Outcome::Failed {
                reason: format!("halted: {reason:?}"),
            }),
        }
    }

    /// Runs a read-only call against the current state; nothing is committed.
    pub(crate) fn view(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let chain_id = self.chain_id;
        let env = TxEnv::builder()
            .caller(VIEW_CALLER)
            .gas_limit(TX_GAS_LIMIT)
            .gas_price(0)
            .kind(TxKind::Call(to))
            .data(data)
            .nonce(self.nonce(VIEW_CALLER))
            .chain_id(Some(chain_id))
            .build()
            .map_err(|e| ChainError::Evm(format!("call environment: {e:?}")))?;
        // `transact` finalizes the journal and hands the changes back; dropping them keeps the
        // call read-only.
        let ResultAndState { result, .. } = self
            .evm()
            .transact(env)
            .map_err(|e| ChainError::Evm(e.to_string()))?;
        match result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Revert(
                medledger_chain::abi::decode_revert(&output),
            )),
            ExecutionResult::Halt { reason, .. } => {
                Err(ChainError::Evm(format!("view call halted: {reason:?}")))
            }
        }
    }

    /// Folds a block's changes into the tries and returns the new state root.
    pub(crate) fn update_state_root(&mut self, touched: Touched) -> B256 {
        let cache = &self.db.cache;
        for (address, change) in touched.accounts {
            let key = keccak256(address);
            let account = cache.accounts.get(&address).filter(|account| {
                // EIP-161: empty accounts are not part of the state.
                !matches!(account.account_state, AccountState::NotExisting)
                    && !account.info.is_empty()
            });
            let Some(account) = account else {
                self.accounts.remove(key);
                self.storage.remove(&address);
                continue;
            };
            let trie = self.storage.entry(address).or_default();
            if change.storage_reset {
                *trie = Trie::default();
                for (slot, value) in &account.storage {
                    if !value.is_zero() {
                        trie.insert(keccak256(B256::from(*slot)), alloy::rlp::encode(value));
                    }
                }
            } else {
                for slot in change.slots {
                    let slot_key = keccak256(B256::from(slot));
                    match account.storage.get(&slot) {
                        Some(value) if !value.is_zero() => {
                            trie.insert(slot_key, alloy::rlp::encode(value));
                        }
                        _ => {
                            trie.remove(slot_key);
                        }
                    }
                }
            }
            let leaf = TrieAccount {
                nonce: account.info.nonce,
                balance: account.info.balance,
                storage_root: trie.root(),
                code_hash: account.info.code_hash,
            };
            self.accounts.insert(key, alloy::rlp::encode(leaf));
        }
        self.accounts.root()
    }

    /// The state root computed from scratch with `alloy-trie`, to check the incremental one.
    #[cfg(test)]
    pub(crate) fn full_state_root(&self) -> B256 {
        let cache = &self.db.cache;
        let accounts = cache.accounts.iter().filter_map(|(address, account)| {
            if matches!(account.account_state, AccountState::NotExisting) || account.info.is_empty()
            {
                return None;
            }
            let storage_root = alloy_trie::root::storage_root_unhashed(
                account
                    .storage
                    .iter()
                    .filter(|(_, v)| !v.is_zero())
                    .map(|(k, v)| (B256::from(*k), *v)),
            );
            Some((
                *address,
                TrieAccount {
                    nonce: account.info.nonce,
                    balance: account.info.balance,
                    storage_root,
                    code_hash: account.info.code_hash,
                },
            ))
        });
        alloy_trie::root::state_root_unhashed(accounts)
    }
}

impl Touched {
    fn record(&mut self, state: &EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            let entry = self.accounts.entry(*address).or_default();
            if account.is_created() || account.is_selfdestructed() {
                entry.storage_reset = true;
            }
            entry
                .slots
                .extend(account.changed_storage_slots().map(|(slot, _)| *slot));
        }
    }
}
