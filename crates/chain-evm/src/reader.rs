//! Read-only access for verifiers, safe while a writer in another process keeps appending.

use crate::chain::{self, ChainState};
use crate::{BlockSummary, ChainProfile};
use alloy::primitives::{Address, B256, Bytes};
use medledger_chain::{ChainCommit, ChainError, OnChainCheckpoint, OnChainTreeHead};
use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A fully verified, read-only view of an embedded chain.
///
/// Takes no lock on the directory: a writer may append meanwhile. The reader sees the chain as
/// of [`ChainReader::open`] or the last [`ChainReader::refresh`]; an append in progress (an
/// incomplete last record) is left for the next refresh.
#[derive(Debug)]
pub struct ChainReader {
    inner: Mutex<ReaderState>,
}

#[derive(Debug)]
struct ReaderState {
    state: ChainState,
    file: File,
    /// Set when a refresh found a block that does not verify; the state may hold part of it.
    broken: Option<String>,
}

impl ChainReader {
    /// Verifies the whole chain in `dir` (hash links, sealer signatures, re-execution of every
    /// transaction from genesis, and every header's roots) and keeps the resulting state.
    pub fn open(dir: &Path) -> Result<Self, ChainError> {
        let (loaded, file) = chain::load(dir, None)?;
        Ok(Self {
            inner: Mutex::new(ReaderState {
                state: loaded.state,
                file,
                broken: None,
            }),
        })
    }

    /// Verifies and applies blocks appended since the last look; returns how many.
    pub fn refresh(&self) -> Result<u64, ChainError> {
        let mut guard = self.lock();
        if let Some(reason) = &guard.broken {
            return Err(ChainError::Tampered(reason.clone()));
        }
        let ReaderState {
            state,
            file,
            broken,
        } = &mut *guard;
        match state.follow(file) {
            Ok((applied, _)) => Ok(applied),
            Err(e) => {
                if let ChainError::Tampered(reason) = &e {
                    *broken = Some(reason.clone());
                }
                Err(e)
            }
        }
    }

    /// RecordLog's tree head `index`.
    pub fn tree_head(&self, index: u64) -> Result<OnChainTreeHead, ChainError> {
        self.with_state(|state| state.tree_head(index))
    }

    /// Number of tree heads in RecordLog.
    pub fn tree_head_count(&self) -> Result<u64, ChainError> {
        self.with_state(ChainState::tree_head_count)
    }

    /// Anchor's checkpoint `index` (a public-profile chain).
    pub fn checkpoint(&self, index: u64) -> Result<OnChainCheckpoint, ChainError> {
        self.with_state(|state| state.checkpoint(index))
    }

    /// The private chain id and RecordLog whose checkpoints this (public) chain's Anchor keeps.
    pub fn anchor_source(&self) -> Result<(u64, Address), ChainError> {
        self.with_state(ChainState::anchor_source)
    }

    /// Which kind of chain this is.
    pub fn profile(&self) -> ChainProfile {
        self.lock().state.profile
    }

    /// Anchor's address (EIP-55 checksummed `0x…`; zero on a private chain).
    pub fn anchor_address(&self) -> String {
        self.lock().state.anchor.to_string()
    }

    /// Runs a read-only call against the verified state.
    pub fn call(&self, to: Address, input: Bytes) -> Result<Bytes, ChainError> {
        self.with_state(|state| state.view(to, input))
    }

    /// The latest verified block.
    pub fn head(&self) -> BlockSummary {
        self.lock().state.summary()
    }

    /// Hash of verified block `number`, if the reader has seen it.
    pub fn block_hash(&self, number: u64) -> Option<B256> {
        let guard = self.lock();
        usize::try_from(number)
            .ok()
            .and_then(|n| guard.state.hashes.get(n).copied())
    }

    /// RecordLog's address (EIP-55 checksummed `0x…`).
    pub fn record_log_address(&self) -> String {
        self.lock().state.record_log.to_string()
    }

    /// Roles' address (EIP-55 checksummed `0x…`).
    pub fn roles_address(&self) -> String {
        self.lock().state.roles.to_string()
    }

    /// The sealer named by the genesis block; compare it with an address known from elsewhere
    /// to trust the chain, since whoever holds the sealer key can write a valid chain.
    pub fn sealer_address(&self) -> Address {
        self.lock().state.sealer
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.profile().chain_id()
    }

    /// Checks that `commit` names this chain, `contract` and a block that exists with that hash.
    fn check_block(&self, commit: &ChainCommit, contract: &str) -> Result<(), ChainError> {
        if commit.chain_id != self.chain_id() {
            return Err(ChainError::Tampered(format!(
                "commit is for chain {}",
                commit.chain_id
            )));
        }
        if !commit.contract.eq_ignore_ascii_case(contract) {
            return Err(ChainError::Tampered(format!(
                "commit names contract {}",
                commit.contract
            )));
        }
        let known = self.block_hash(commit.block_number).map(|h| h.to_string());
        if known.as_deref() != Some(commit.block_hash.to_ascii_lowercase().as_str()) {
            return Err(ChainError::Tampered(format!(
                "block #{} on this chain is not {}",
                commit.block_number, commit.block_hash
            )));
        }
        Ok(())
    }

    /// Checks an anchor receipt against this (public) chain: same chain and Anchor, the block
    /// exists with that hash, and the checkpoint at `commit.index` was anchored in that block.
    pub fn check_anchor(&self, commit: &ChainCommit) -> Result<OnChainCheckpoint, ChainError> {
        self.check_block(commit, &self.anchor_address())?;
        let checkpoint = self.checkpoint(commit.index)?;
        if checkpoint.block_number != commit.block_number {
            return Err(ChainError::Tampered(format!(
                "checkpoint {} was anchored in block #{}, not #{}",
                commit.index, checkpoint.block_number, commit.block_number
            )));
        }
        Ok(checkpoint)
    }

    /// Checks a commit receipt against the verified chain: same chain and contract, the block
    /// exists with that hash, and the tree head at `commit.index` was committed in that block.
    pub fn check_commit(&self, commit: &ChainCommit) -> Result<OnChainTreeHead, ChainError> {
        self.check_block(commit, &self.record_log_address())?;
        let head = self.tree_head(commit.index)?;
        if head.block_number != commit.block_number {
            return Err(ChainError::Tampered(format!(
                "tree head {} was committed in block #{}, not #{}",
                commit.index, head.block_number, commit.block_number
            )));
        }
        Ok(head)
    }

    /// The consent change transaction `tx_hash` recorded in ConsentRegistry, from its event;
    /// `None` when the verified chain has no such change.
    pub fn consent_change(
        &self,
        tx_hash: B256,
    ) -> Result<Option<medledger_chain::RecordedChange>, ChainError> {
        self.with_state(|state| {
            let Some(registry) = state.consent_registry else {
                return Ok(None);
            };
            let Some((block_number, logs)) = state.registry_logs(&tx_hash) else {
                return Ok(None);
            };
            let block_hash = usize::try_from(block_number)
                .ok()
                .and_then(|n| state.hashes.get(n).copied())
                .unwrap_or_default();
            let at = medledger_chain::registry::Landed {
                chain_id: state.profile.chain_id(),
                block_number,
                block_hash,
                tx_hash,
            };
            medledger_chain::registry::change_of(&logs, registry, &at)
        })
    }

    /// ConsentRegistry's latest state of consent `consent_id`.
    pub fn consent_state(
        &self,
        consent_id: [u8; 32],
    ) -> Result<medledger_chain::OnChainConsent, ChainError> {
        self.with_state(|state| {
            let registry = state.consent_registry.ok_or_else(|| {
                ChainError::WrongChain("this chain has no ConsentRegistry".to_owned())
            })?;
            let call = medledger_chain::abi::ConsentRegistry::consentStateCall {
                consentId: consent_id.into(),
            };
            let out = state.view(
                registry,
                alloy::sol_types::SolCall::abi_encode(&call).into(),
            )?;
            medledger_chain::registry::consent_state_of(&out)
        })
    }

    /// Roles' view of `account`: roles held and verification.
    pub fn role_state(&self, account: [u8; 32]) -> Result<medledger_chain::RoleState, ChainError> {
        use alloy::sol_types::SolCall;
        use medledger_chain::abi::Roles;
        self.with_state(|state| {
            let roles = state.roles;
            let mut out = medledger_chain::RoleState::default();
            for role in 1..=6u8 {
                let call = Roles::hasRoleCall {
                    account: account.into(),
                    role,
                };
                let data = state.view(roles, call.abi_encode().into())?;
                if Roles::hasRoleCall::abi_decode_returns(&data)
                    .map_err(|e| ChainError::Decode(e.to_string()))?
                {
                    out.roles |= 1 << role;
                }
            }
            let call = Roles::isVerifiedCall {
                account: account.into(),
            };
            let data = state.view(roles, call.abi_encode().into())?;
            out.verified = Roles::isVerifiedCall::abi_decode_returns(&data)
                .map_err(|e| ChainError::Decode(e.to_string()))?;
            Ok(out)
        })
    }

    fn lock(&self) -> MutexGuard<'_, ReaderState> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic may have stopped a refresh halfway through a block: stop serving.
                let mut guard = poisoned.into_inner();
                guard
                    .broken
                    .get_or_insert_with(|| "an earlier read panicked".to_owned());
                self.inner.clear_poison();
                guard
            }
        }
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut ChainState) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        let mut guard = self.lock();
        if let Some(reason) = &guard.broken {
            return Err(ChainError::Tampered(reason.clone()));
        }
        f(&mut guard.state)
    }
}
