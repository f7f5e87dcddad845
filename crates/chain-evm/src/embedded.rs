//! The writer: owns the sealer key, mines blocks from submitted transactions and makes each one
//! durable before anyone is told about it.

use crate::block::{BlockExecution, StoredBlock, sign_transaction};
use crate::blocklog::{MAGIC, encode_record};
use crate::chain::{self, BLOCK_LOG, ChainProfile, ChainState};
use crate::{BlockSummary, ChainReceipt};
use alloy::primitives::{Address, B256, Bytes, TxKind};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use medledger_chain::abi::{self, Anchor, ConsentRegistry, RecordLog, Roles};
use medledger_chain::registry;
use medledger_chain::{
    AnchorChain, ChainCommit, ChainError, Checkpoint, Ledger, OnChainCheckpoint, OnChainTreeHead,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// File holding the sealer's secp256k1 key (hex), readable by the owner only.
pub(crate) const KEY_FILE: &str = "sealer.key";
/// Lock file that keeps a second writer process off the same chain.
const LOCK_FILE: &str = "writer.lock";
/// How long `open` waits for a busy writer lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Most transactions packed into one block; more waiting callers get the next block.
const MAX_BLOCK_TXS: usize = 512;

/// A transaction waiting for a block.
struct Pending {
    to: TxKind,
    input: Bytes,
    reply: oneshot::Sender<Result<ChainReceipt, ChainError>>,
}

/// The open block log and the state after its last block.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) state: ChainState,
    file: File,
}

impl Writer {
    /// Replays the log (dropping an interrupted append) and opens it for appending.
    pub(crate) fn open(dir: &Path, sealer: Address) -> Result<Self, ChainError> {
        let (loaded, _) = chain::load(dir, Some(sealer))?;
        let path = dir.join(BLOCK_LOG);
        let file = OpenOptions::new().append(true).open(&path)?;
        if let Some(torn_at) = loaded.torn_at {
            // The interrupted append was never acknowledged; cutting it off keeps the next
            // record from following garbage.
            tracing::warn!(offset = torn_at, path = %path.display(), "dropping an interrupted block append");
            file.set_len(torn_at)?;
            file.sync_all()?;
        }
        Ok(Self {
            state: loaded.state,
            file,
        })
    }

    /// Executes `calls` into one block, seals it with `tx_signer`/`seal_signer` and appends it.
    /// Returns one result per call: a receipt, or why the call was left out. `Err` means the
    /// block could not be made durable and this writer must be dropped (its state is ahead of
    /// the file).
    pub(crate) fn mine(
        &mut self,
        tx_signer: &PrivateKeySigner,
        seal_signer: &PrivateKeySigner,
        calls: &[(TxKind, Bytes)],
    ) -> Result<Vec<Result<ChainReceipt, ChainError>>, ChainError> {
        let state = &mut self.state;
        let number = state.head.number + 1;
        let timestamp = now_secs().max(state.head.timestamp);
        let chain_id = state.profile.chain_id();
        let mut execution = BlockExecution::begin(
            &mut state.machine,
            state.profile.extra_data(),
            state.head_hash,
            number,
            timestamp,
            state.sealer,
        );
        let mut results = Vec::with_capacity(calls.len());
        for (to, input) in calls {
            let nonce = state.machine.nonce(tx_signer.address());
            let result =
                sign_transaction(tx_signer, chain_id, nonce, *to, input.clone()).and_then(|tx| {
                    let hash = *tx.tx_hash();
                    let applied = execution.apply(&mut state.machine, tx, tx_signer.address())?;
                    Ok((hash, applied))
                });
            results.push(match result {
                Ok((hash, Ok(applied))) => Ok((hash, applied)),
                Ok((_, Err(reason))) => Err(ChainError::Revert(reason)),
                Err(e) => Err(e),
            });
        }
        if execution.len() == 0 {
            // Nothing to record: every call failed without touching the state, so every result
            // is already an error.
            let vanished =
                || ChainError::Unavailable("transaction missing from its block".to_owned());
            return Ok(results
                .into_iter()
                .map(|r| r.and_then(|_| Err(vanished())))
                .collect());
        }
        let (header, transactions) = execution.finish(&mut state.machine);
        let block = StoredBlock::seal(header, transactions, seal_signer)?;
        let record = encode_record(&block.encode());
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: take the partial record off so the file ends at the last good block.
            let _ = self.file.set_len(self.state.valid_len);
            return Err(ChainError::Io(e));
        }
        let state = &mut self.state;
        state.valid_len += record.len() as u64;
        state.advance(&block);
        for (tx_hash, applied) in results.iter().flatten() {
            state.index_logs(number, *tx_hash, &applied.logs);
        }
        let block_hash = state.head_hash;
        Ok(results
            .into_iter()
            .map(|r| {
                r.map(|(tx_hash, applied)| ChainReceipt {
                    block_number: number,
                    block_hash,
                    tx_hash,
                    output: applied.output,
                    logs: applied.logs,
                })
            })
            .collect())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An embedded chain: an in-process EVM whose blocks live in a data directory. A
/// [`ChainProfile::Private`] chain runs RecordLog, Roles and ConsentRegistry (the [`Ledger`]
/// port); a [`ChainProfile::PublicSim`] chain runs one Anchor (the [`AnchorChain`] port).
///
/// Cheap to clone; clones share one writer. Transactions submitted while a block is being
/// written are batched into the next block.
#[derive(Clone)]
pub struct EmbeddedChain {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedChain")
            .field("dir", &self.inner.dir)
            .field("profile", &self.inner.profile)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    profile: ChainProfile,
    signer: PrivateKeySigner,
    record_log: Address,
    roles: Address,
    consent_registry: Option<Address>,
    anchor: Address,
    /// `None` after a failed append: the next use reloads the chain from disk.
    writer: Mutex<Option<Writer>>,
    pending: Mutex<Vec<Pending>>,
    /// Whether a blocking task is (or is about to be) mining; keeps it to one such task
    /// however many callers are waiting.
    miner_active: AtomicBool,
    head: Mutex<BlockSummary>,
    /// Held for the life of the chain; the OS releases the lock when it is closed.
    _lock: File,
}

impl EmbeddedChain {
    /// Opens or creates the private chain in `dir` (e.g. `DATA_DIR/chain`).
    ///
    /// A fresh chain gets a new sealer key (`sealer.key`, mode 0600), a genesis block and block 1
    /// deploying `RecordLog(sealer)`, `Roles(sealer)` and `ConsentRegistry(sealer)`, written
    /// atomically. An existing chain is replayed and verified from genesis; an interrupted final
    /// append is dropped, and anything else that does not check out fails with
    /// [`ChainError::Tampered`] naming the block. Only one process may have a chain open for
    /// writing ([`ChainError::Locked`] otherwise).
    ///
    /// This blocks (file I/O and the replay); from async code call it via `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Self, ChainError> {
        Self::open_profile(dir, ChainProfile::Private, None)
    }

    /// Opens or creates the simulated public chain in `dir` (e.g. `DATA_DIR/public-chain`),
    /// whose block 1 deploys `Anchor(sealer, source_chain_id, source_log)`. An existing one must
    /// anchor that same private log ([`ChainError::WrongChain`] otherwise).
    pub fn open_public(
        dir: &Path,
        source_chain_id: u64,
        source_log: Address,
    ) -> Result<Self, ChainError> {
        let chain = Self::open_profile(
            dir,
            ChainProfile::PublicSim,
            Some((source_chain_id, source_log)),
        )?;
        let anchored = chain.inner.with_state(ChainState::anchor_source)?;
        if anchored != (source_chain_id, source_log) {
            return Err(ChainError::WrongChain(format!(
                "{} anchors RecordLog {} of chain {}, not {source_log} of chain {source_chain_id}",
                dir.display(),
                anchored.1,
                anchored.0
            )));
        }
        Ok(chain)
    }

    fn open_profile(
        dir: &Path,
        profile: ChainProfile,
        anchor_source: Option<(u64, Address)>,
    ) -> Result<Self, ChainError> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let signer = load_or_create_key(dir)?;
        if !dir.join(BLOCK_LOG).exists() {
            create_chain(dir, &signer, profile, anchor_source)?;
        }
        let writer = Writer::open(dir, signer.address())?;
        if writer.state.profile != profile {
            return Err(ChainError::WrongChain(format!(
                "{} holds a {:?} chain, not a {profile:?} one",
                dir.display(),
                writer.state.profile
            )));
        }
        let inner = Inner {
            dir: dir.to_path_buf(),
            profile,
            record_log: writer.state.record_log,
            roles: writer.state.roles,
            consent_registry: writer.state.consent_registry,
            anchor: writer.state.anchor,
            head: Mutex::new(writer.state.summary()),
            writer: Mutex::new(Some(writer)),
            pending: Mutex::new(Vec::new()),
            miner_active: AtomicBool::new(false),
            signer,
            _lock: lock,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Opens for reading only, while another process may be appending (used by `medledger
    /// verify` while `medledger dev` runs): verifies the whole chain, then serves view calls.
    pub fn open_verified_read_only(dir: &Path) -> Result<crate::ChainReader, ChainError> {
        crate::ChainReader::open(dir)
    }

    /// Address of the RecordLog contract.
    pub fn record_log_address(&self) -> Address {
        self.inner.record_log
    }

    /// Address of the Roles contract.
    pub fn roles_address(&self) -> Address {
        self.inner.roles
    }

    /// Address of the ConsentRegistry contract; `None` on a chain created before it existed.
    pub fn consent_registry_address(&self) -> Option<Address> {
        self.inner.consent_registry
    }

    /// Address of the Anchor contract (public profile only; zero otherwise).
    pub fn anchor_address(&self) -> Address {
        self.inner.anchor
    }

    /// The chain's profile.
    pub fn profile(&self) -> ChainProfile {
        self.inner.profile
    }

    /// The chain id (EIP-155) of the chain.
    pub fn chain_id(&self) -> u64 {
        self.inner.profile.chain_id()
    }

    /// Address of the sealer, which signs every block and transaction and is RecordLog's
    /// committer and Roles' first admin operator.
    pub fn sealer_address(&self) -> Address {
        self.inner.signer.address()
    }

    /// The latest block.
    pub fn head(&self) -> BlockSummary {
        lock(&self.inner.head).clone()
    }

    /// Sends a sealer-signed transaction calling `to` with `input` and waits until the block
    /// holding it is durable. A reverting call is not included and fails with
    /// [`ChainError::Revert`].
    pub async fn send(&self, to: Address, input: Bytes) -> Result<ChainReceipt, ChainError> {
        let (reply, receipt) = oneshot::channel();
        lock(&self.inner.pending).push(Pending {
            to: TxKind::Call(to),
            input,
            reply,
        });
        if !self.inner.miner_active.swap(true, Ordering::AcqRel) {
            let inner = Arc::clone(&self.inner);
            tokio::task::spawn_blocking(move || inner.run_miner());
        }
        receipt.await.unwrap_or_else(|_| {
            // The reply was dropped unanswered: block production panicked.
            Err(ChainError::Unavailable(
                "block production failed".to_owned(),
            ))
        })
    }

    /// Runs a read-only call against the latest state.
    pub async fn call(&self, to: Address, input: Bytes) -> Result<Bytes, ChainError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_state(|state| state.view(to, input)))
            .await
            .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }

    /// Number of tree heads in RecordLog.
    pub async fn tree_head_count(&self) -> Result<u64, ChainError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_state(ChainState::tree_head_count))
            .await
            .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }

    /// Roles: grants `role` (1 patient … 6 admin) to the account commitment `account`.
    pub async fn grant_role(
        &self,
        account: [u8; 32],
        role: u8,
    ) -> Result<ChainReceipt, ChainError> {
        let call = Roles::grantRoleCall {
            account: account.into(),
            role,
        };
        self.send(self.inner.roles, call.abi_encode().into()).await
    }

    /// Roles: revokes `role` from `account`.
    pub async fn revoke_role(
        &self,
        account: [u8; 32],
        role: u8,
    ) -> Result<ChainReceipt, ChainError> {
        let call = Roles::revokeRoleCall {
            account: account.into(),
            role,
        };
        self.send(self.inner.roles, call.abi_encode().into()).await
    }

    /// Roles: whether `account` holds `role`.
    pub async fn has_role(&self, account: [u8; 32], role: u8) -> Result<bool, ChainError> {
        let call = Roles::hasRoleCall {
            account: account.into(),
            role,
        };
        let output = self
            .call(self.inner.roles, call.abi_encode().into())
            .await?;
        Roles::hasRoleCall::abi_decode_returns(&output)
            .map_err(|e| ChainError::Decode(e.to_string()))
    }

    /// Roles: enables or disables an admin operator.
    pub async fn set_admin(
        &self,
        operator: Address,
        enabled: bool,
    ) -> Result<ChainReceipt, ChainError> {
        let call = Roles::setAdminCall { operator, enabled };
        self.send(self.inner.roles, call.abi_encode().into()).await
    }

    /// Roles: enables or disables an authority operator (which may verify practitioners).
    pub async fn set_authority(
        &self,
        operator: Address,
        enabled: bool,
    ) -> Result<ChainReceipt, ChainError> {
        let call = Roles::setAuthorityCall { operator, enabled };
        self.send(self.inner.roles, call.abi_encode().into()).await
    }

    /// Roles: sets a practitioner's verification; the sealer must be an authority operator.
    pub async fn set_practitioner_verified(
        &self,
        account: [u8; 32],
        verified: bool,
    ) -> Result<ChainReceipt, ChainError> {
        let call = Roles::setPractitionerVerifiedCall {
            account: account.into(),
            verified,
        };
        self.send(self.inner.roles, call.abi_encode().into()).await
    }

    /// Roles: whether `account` is a verified practitioner.
    pub async fn is_verified(&self, account: [u8; 32]) -> Result<bool, ChainError> {
        let call = Roles::isVerifiedCall {
            account: account.into(),
        };
        let output = self
            .call(self.inner.roles, call.abi_encode().into())
            .await?;
        Roles::isVerifiedCall::abi_decode_returns(&output)
            .map_err(|e| ChainError::Decode(e.to_string()))
    }

    /// Runs `f` on the writer (tests use it to reach below the public API).
    #[cfg(test)]
    pub(crate) fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        let mut guard = self.inner.lock_writer();
        let writer = self.inner.ensure_writer(&mut guard)?;
        f(writer)
    }
}

/// ABI-encoded call data.
fn sol_input<C: SolCall>(call: &C) -> Bytes {
    call.abi_encode().into()
}

impl EmbeddedChain {
    fn require(&self, profile: ChainProfile, what: &str) -> Result<(), ChainError> {
        if self.inner.profile == profile {
            Ok(())
        } else {
            Err(ChainError::WrongChain(format!(
                "{what} needs a {profile:?} chain; {} holds a {:?} one",
                self.inner.dir.display(),
                self.inner.profile
            )))
        }
    }
}

impl EmbeddedChain {
    fn registry_address(&self) -> Result<Address, ChainError> {
        self.require(ChainProfile::Private, "ConsentRegistry")?;
        self.inner.consent_registry.ok_or_else(|| {
            ChainError::WrongChain(format!(
                "{} was created before ConsentRegistry existed",
                self.inner.dir.display()
            ))
        })
    }

    async fn consent_change_of(
        &self,
        receipt: ChainReceipt,
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let at = registry::Landed {
            chain_id: self.chain_id(),
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
            tx_hash: receipt.tx_hash,
        };
        registry::require_change(&receipt.logs, self.registry_address()?, &at)
    }
}

#[async_trait::async_trait]
impl medledger_chain::Registry for EmbeddedChain {
    async fn ensure_authority(&self) -> Result<(), ChainError> {
        self.require(ChainProfile::Private, "Roles")?;
        self.set_authority(self.sealer_address(), true).await?;
        Ok(())
    }

    async fn role_state(
        &self,
        account: [u8; 32],
    ) -> Result<medledger_chain::RoleState, ChainError> {
        self.require(ChainProfile::Private, "Roles")?;
        let mut state = medledger_chain::RoleState::default();
        for role in 1..=6u8 {
            if self.has_role(account, role).await? {
                state.roles |= 1 << role;
            }
        }
        state.verified = self.is_verified(account).await?;
        Ok(state)
    }

    async fn set_role(&self, account: [u8; 32], role: u8, held: bool) -> Result<B256, ChainError> {
        self.require(ChainProfile::Private, "Roles")?;
        let receipt = if held {
            self.grant_role(account, role).await?
        } else {
            self.revoke_role(account, role).await?
        };
        Ok(receipt.tx_hash)
    }

    async fn set_verified(&self, account: [u8; 32], verified: bool) -> Result<B256, ChainError> {
        self.require(ChainProfile::Private, "Roles")?;
        Ok(self
            .set_practitioner_verified(account, verified)
            .await?
            .tx_hash)
    }

    async fn record_grant(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        commitment: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let call = registry::grant_call(consent_id, patient, commitment, authorization);
        let receipt = self.send(self.registry_address()?, call.into()).await?;
        self.consent_change_of(receipt).await
    }

    async fn record_revocation(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let call = registry::revocation_call(consent_id, patient, authorization);
        let receipt = self.send(self.registry_address()?, call.into()).await?;
        self.consent_change_of(receipt).await
    }

    async fn consent_state(
        &self,
        consent_id: [u8; 32],
    ) -> Result<medledger_chain::OnChainConsent, ChainError> {
        let call = registry::consent_state_call(consent_id);
        let output = self.call(self.registry_address()?, call.into()).await?;
        registry::consent_state_of(&output)
    }

    async fn consent_change(
        &self,
        tx_hash: B256,
    ) -> Result<Option<medledger_chain::RecordedChange>, ChainError> {
        let registry = self.registry_address()?;
        let inner = Arc::clone(&self.inner);
        let found = tokio::task::spawn_blocking(move || {
            inner.with_state(|state| {
                Ok(state.registry_logs(&tx_hash).map(|(number, logs)| {
                    let hash = usize::try_from(number)
                        .ok()
                        .and_then(|n| state.hashes.get(n).copied())
                        .unwrap_or_default();
                    (number, hash, logs)
                }))
            })
        })
        .await
        .map_err(|e| ChainError::Unavailable(e.to_string()))??;
        let Some((block_number, block_hash, logs)) = found else {
            return Ok(None);
        };
        let at = registry::Landed {
            chain_id: self.chain_id(),
            block_number,
            block_hash,
            tx_hash,
        };
        registry::change_of(&logs, registry, &at)
    }

    async fn consent_history(
        &self,
        consent_id: [u8; 32],
    ) -> Result<Vec<medledger_chain::RecordedChange>, ChainError> {
        let registry = self.registry_address()?;
        let chain_id = self.chain_id();
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            inner.with_state(|state| {
                let wanted = hex::encode(consent_id);
                let mut out = Vec::new();
                for (tx_hash, (number, logs)) in &state.registry_logs {
                    let at = registry::Landed {
                        chain_id,
                        block_number: *number,
                        block_hash: usize::try_from(*number)
                            .ok()
                            .and_then(|n| state.hashes.get(n).copied())
                            .unwrap_or_default(),
                        tx_hash: *tx_hash,
                    };
                    if let Some(change) = registry::change_of(logs, registry, &at)?
                        && change.consent_id == wanted
                    {
                        out.push(change);
                    }
                }
                out.sort_by_key(|c| c.chain_version);
                Ok(out)
            })
        })
        .await
        .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }
}

#[async_trait::async_trait]
impl Ledger for EmbeddedChain {
    async fn commit_tree_head(
        &self,
        tree_size: u64,
        root: [u8; 32],
    ) -> Result<ChainCommit, ChainError> {
        self.require(ChainProfile::Private, "RecordLog")?;
        let call = RecordLog::commitTreeHeadCall {
            treeSize: tree_size,
            rootHash: root.into(),
        };
        let receipt = self
            .send(self.inner.record_log, call.abi_encode().into())
            .await?;
        let index = abi::commit_index(&receipt.output)?;
        Ok(ChainCommit {
            chain_id: self.chain_id(),
            contract: self.inner.record_log.to_string(),
            block_number: receipt.block_number,
            block_hash: receipt.block_hash.to_string(),
            tx_hash: receipt.tx_hash.to_string(),
            index,
        })
    }

    async fn tree_head_count(&self) -> Result<u64, ChainError> {
        self.require(ChainProfile::Private, "RecordLog")?;
        EmbeddedChain::tree_head_count(self).await
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        // The state lock is held while a block is mined and fsynced: wait for it off the
        // async threads, as every other call here does.
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            inner.with_state(|state| {
                usize::try_from(number)
                    .ok()
                    .and_then(|n| state.hashes.get(n).copied())
                    .ok_or_else(|| ChainError::Unavailable(format!("no block {number} yet")))
            })
        })
        .await
        .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }

    fn chain_id(&self) -> u64 {
        EmbeddedChain::chain_id(self)
    }

    fn record_log(&self) -> String {
        self.inner.record_log.to_string()
    }

    async fn tree_head(&self, index: u64) -> Result<OnChainTreeHead, ChainError> {
        self.require(ChainProfile::Private, "RecordLog")?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_state(|state| state.tree_head(index)))
            .await
            .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }
}

#[async_trait::async_trait]
impl AnchorChain for EmbeddedChain {
    async fn anchor_checkpoint(&self, c: &Checkpoint) -> Result<ChainCommit, ChainError> {
        self.require(ChainProfile::PublicSim, "Anchor")?;
        let call = Anchor::anchorCheckpointCall {
            treeSize: c.tree_size,
            rootHash: c.root.into(),
            sourceBlockNumber: c.source_block_number,
            sourceBlockHash: c.source_block_hash.into(),
        };
        let receipt = self.send(self.inner.anchor, sol_input(&call)).await?;
        Ok(ChainCommit {
            chain_id: self.chain_id(),
            contract: self.inner.anchor.to_string(),
            block_number: receipt.block_number,
            block_hash: receipt.block_hash.to_string(),
            tx_hash: receipt.tx_hash.to_string(),
            index: abi::anchor_index(&receipt.output)?,
        })
    }

    async fn checkpoint(&self, index: u64) -> Result<OnChainCheckpoint, ChainError> {
        self.require(ChainProfile::PublicSim, "Anchor")?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_state(|state| state.checkpoint(index)))
            .await
            .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }

    async fn checkpoint_count(&self) -> Result<u64, ChainError> {
        self.require(ChainProfile::PublicSim, "Anchor")?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_state(ChainState::checkpoint_count))
            .await
            .map_err(|e| ChainError::Unavailable(e.to_string()))?
    }

    fn chain_id(&self) -> u64 {
        EmbeddedChain::chain_id(self)
    }

    fn anchor(&self) -> String {
        self.inner.anchor.to_string()
    }
}

impl Inner {
    /// Locks the writer. A panic while it was held may have left it half-updated, so a poisoned
    /// lock is treated like a failed append: the chain is reloaded from disk.
    fn lock_writer(&self) -> MutexGuard<'_, Option<Writer>> {
        match self.writer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                *guard = None;
                self.writer.clear_poison();
                guard
            }
        }
    }

    fn ensure_writer<'a>(
        &self,
        guard: &'a mut Option<Writer>,
    ) -> Result<&'a mut Writer, ChainError> {
        if guard.is_none() {
            let writer = Writer::open(&self.dir, self.signer.address())?;
            *lock(&self.head) = writer.state.summary();
            *guard = Some(writer);
        }
        guard
            .as_mut()
            .ok_or_else(|| ChainError::Unavailable("writer missing".to_owned()))
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut ChainState) -> Result<T, ChainError>,
    ) -> Result<T, ChainError> {
        let mut guard = self.lock_writer();
        let writer = self.ensure_writer(&mut guard)?;
        f(&mut writer.state)
    }

    /// The mining task: mines until nothing is waiting, then stands down.
    fn run_miner(&self) {
        /// Clears the flag however the task ends, so a panic does not stop all future mining.
        struct Active<'a>(&'a AtomicBool);
        impl Drop for Active<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        loop {
            {
                let _active = Active(&self.miner_active);
                self.mine_pending();
            }
            // A caller that queued after the last drain but saw the flag still set did not
            // start a miner: pick its transaction up unless a new miner already has.
            if lock(&self.pending).is_empty() || self.miner_active.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Mines everything that is waiting, one block per `MAX_BLOCK_TXS` transactions: all
    /// callers that queued while the previous block was being written share the next one
    /// (group commit).
    fn mine_pending(&self) {
        let mut guard = self.lock_writer();
        loop {
            let batch: Vec<Pending> = {
                let mut pending = lock(&self.pending);
                let take = pending.len().min(MAX_BLOCK_TXS);
                pending.drain(..take).collect()
            };
            if batch.is_empty() {
                return;
            }
            let writer = match self.ensure_writer(&mut guard) {
                Ok(writer) => writer,
                Err(e) => {
                    for pending in batch {
                        let _ = pending.reply.send(Err(e.replicate()));
                    }
                    continue;
                }
            };
            let calls: Vec<(TxKind, Bytes)> =
                batch.iter().map(|p| (p.to, p.input.clone())).collect();
            match writer.mine(&self.signer, &self.signer, &calls) {
                Ok(results) => {
                    *lock(&self.head) = writer.state.summary();
                    for (pending, result) in batch.into_iter().zip(results) {
                        // A caller that stopped waiting does not need the answer.
                        let _ = pending.reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "block append failed; the chain will be reloaded from disk");
                    *guard = None;
                    for pending in batch {
                        let _ = pending.reply.send(Err(e.replicate()));
                    }
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // These mutexes guard plain data that is always left consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the writer lock of `dir`. A chain that was just dropped in this process may still be
/// finishing a block on a blocking thread (which keeps the lock until the block is durable), so
/// a busy lock is retried for a short while before giving up.
fn lock_dir(dir: &Path) -> Result<File, ChainError> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(ChainError::Locked(format!("{}: {e}", dir.display()))),
        }
    }
}

/// Loads the sealer key, or creates one (0600) if the directory has none yet.
fn load_or_create_key(dir: &Path) -> Result<PrivateKeySigner, ChainError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim().trim_start_matches("0x"))
                .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
            PrivateKeySigner::from_slice(&bytes)
                .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join(BLOCK_LOG).exists() {
                return Err(ChainError::Key(format!(
                    "{} is missing but the chain exists; without it no block can be sealed",
                    path.display()
                )));
            }
            let signer = PrivateKeySigner::random();
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            writeln!(file, "0x{}", hex::encode(signer.to_bytes()))?;
            file.sync_all()?;
            sync_dir(dir)?;
            Ok(signer)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes genesis and the deployment block to a temporary file and renames it into place, so a
/// crash leaves either no chain or a whole one.
fn create_chain(
    dir: &Path,
    signer: &PrivateKeySigner,
    profile: ChainProfile,
    anchor_source: Option<(u64, Address)>,
) -> Result<(), ChainError> {
    let sealer = signer.address();
    let chain_id = profile.chain_id();
    let genesis = {
        let mut machine = crate::evm::Machine::new(chain_id);
        let execution = BlockExecution::begin(
            &mut machine,
            profile.extra_data(),
            B256::ZERO,
            0,
            now_secs(),
            sealer,
        );
        let (header, _) = execution.finish(&mut machine);
        StoredBlock::seal(header, Vec::new(), signer)?
    };
    let mut state = ChainState::from_genesis(&genesis, sealer).map_err(ChainError::Tampered)?;
    let deployments = match (profile, anchor_source) {
        (ChainProfile::Private, _) => vec![
            abi::creation_code(&RecordLog::BYTECODE, &(sealer,).abi_encode_params()),
            abi::creation_code(&Roles::BYTECODE, &(sealer,).abi_encode_params()),
            abi::creation_code(&ConsentRegistry::BYTECODE, &(sealer,).abi_encode_params()),
        ],
        (ChainProfile::PublicSim, Some((source_chain_id, source_log))) => vec![abi::creation_code(
            &Anchor::BYTECODE,
            &(sealer, source_chain_id, source_log).abi_encode_params(),
        )],
        (ChainProfile::PublicSim, None) => {
            return Err(ChainError::WrongChain(
                "a public chain needs the private log it anchors".to_owned(),
            ));
        }
    };
    let mut execution = BlockExecution::begin(
        &mut state.machine,
        profile.extra_data(),
        state.head_hash,
        1,
        now_secs().max(genesis.header.timestamp),
        sealer,
    );
    for code in deployments {
        let nonce = state.machine.nonce(sealer);
        let tx = sign_transaction(signer, chain_id, nonce, TxKind::Create, code)?;
        if let Err(reason) = execution.apply(&mut state.machine, tx, sealer)? {
            return Err(ChainError::Artifact(format!(
                "contract deployment failed: {reason}"
            )));
        }
    }
    let (header, transactions) = execution.finish(&mut state.machine);
    let deployment = StoredBlock::seal(header, transactions, signer)?;

    let tmp = dir.join(format!("{BLOCK_LOG}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&encode_record(&genesis.encode()))?;
    file.write_all(&encode_record(&deployment.encode()))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(BLOCK_LOG))?;
    sync_dir(dir)?;
    tracing::info!(dir = %dir.display(), %sealer, ?profile, "created embedded chain");
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ChainError> {
    // Makes the new directory entry itself durable, not just the file's contents.
    File::open(dir)?.sync_all()?;
    Ok(())
}
