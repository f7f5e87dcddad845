//! The Ledger and AnchorChain ports over Ethereum JSON-RPC (alloy): anvil in development and CI,
//! Hyperledger Besu or any EVM node in production. The same contract bytecode as the embedded
//! chains.
//!
//! Every call has a timeout; a transaction returns once its receipt is in, and a reverted call is
//! decoded into [`ChainError::Revert`] with the contract error's name, as the embedded chain does.
//!
//! Nonces: each transaction takes the account's *pending* transaction count from the node
//! (alloy's `SimpleNonceManager`) instead of counting locally. One writer sends one transaction
//! at a time per key, so this costs one extra request and never drifts: after a failed send, a
//! node restart or a transaction lost with a node's mempool, the next transaction uses the
//! nonce the node expects. A transaction that was sent but whose receipt never came is not
//! resent; the caller's retry asks the contract first (`eth_call`), which reports
//! `TreeSizeNotIncreasing` if the earlier one did land. Where a head or checkpoint landed is read
//! from the event its own receipt carries, never from the preliminary `eth_call`: with an earlier
//! transaction still pending, the call runs against a state that does not have it yet.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};

use medledger_chain::abi::{self, Anchor, ConsentRegistry, RecordLog, Roles};
use medledger_chain::{
    AnchorChain, ChainCommit, ChainError, Checkpoint, Ledger, OnChainCheckpoint, OnChainTreeHead,
};

/// How long one RPC call (or waiting for one receipt) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn unavailable(e: impl std::fmt::Display) -> ChainError {
    ChainError::Unavailable(e.to_string())
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, ChainError>>,
) -> Result<T, ChainError> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .map_err(|_| ChainError::Unavailable(format!("{what} timed out")))?
}

/// A revert reason from an RPC error, decoded like the embedded chain's.
fn rpc_error(e: alloy::transports::TransportError) -> ChainError {
    match e.as_error_resp().and_then(|r| r.as_revert_data()) {
        Some(data) => ChainError::Revert(abi::decode_revert(&data)),
        None => unavailable(e),
    }
}

fn decode<C: SolCall>(output: &[u8]) -> Result<C::Return, ChainError> {
    C::abi_decode_returns(output).map_err(|e| ChainError::Decode(e.to_string()))
}

/// One node, one signing key.
#[derive(Clone)]
struct Client {
    provider: DynProvider,
    chain_id: u64,
    sender: Address,
    /// Held from nonce to receipt: clones of one client (the ledger and the registry share the
    /// private chain's key) send one transaction at a time, so two never take the same nonce.
    sending: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Client {
    async fn connect(url: &str, key: PrivateKeySigner) -> Result<Self, ChainError> {
        let sender = key.address();
        let url = url
            .parse()
            .map_err(|e| ChainError::Unavailable(format!("bad RPC URL: {e}")))?;
        let provider = ProviderBuilder::default()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(key))
            .connect_http(url)
            .erased();
        let chain_id = timed("eth_chainId", async {
            provider.get_chain_id().await.map_err(rpc_error)
        })
        .await?;
        Ok(Self {
            provider,
            chain_id,
            sender,
            sending: std::sync::Arc::default(),
        })
    }

    async fn require_code(&self, address: Address, what: &str) -> Result<(), ChainError> {
        let code = timed("eth_getCode", async {
            self.provider.get_code_at(address).await.map_err(rpc_error)
        })
        .await?;
        if code.is_empty() {
            return Err(ChainError::WrongChain(format!(
                "no {what} contract at {address} on chain {}",
                self.chain_id
            )));
        }
        Ok(())
    }

    /// `eth_call` from the signing account, so access checks apply as for a real send.
    async fn call(&self, to: Address, input: Vec<u8>) -> Result<Bytes, ChainError> {
        let tx = TransactionRequest::default()
            .with_from(self.sender)
            .with_to(to)
            .with_input(input);
        timed("eth_call", async {
            self.provider.call(tx).await.map_err(rpc_error)
        })
        .await
    }

    /// Sends a transaction and waits for its receipt, within the call timeout.
    async fn send_and_wait(
        &self,
        tx: TransactionRequest,
        what: &str,
    ) -> Result<TransactionReceipt, ChainError> {
        let _turn = self.sending.lock().await;
        let receipt = timed(what, async {
            self.provider
                .send_transaction(tx)
                .await
                .map_err(rpc_error)?
                .get_receipt()
                .await
                .map_err(unavailable)
        })
        .await?;
        if !receipt.status() {
            return Err(ChainError::Revert(format!("{what} reverted on chain")));
        }
        Ok(receipt)
    }

    /// Calls `to` first (a call that would revert is reported with its reason and costs no
    /// gas), then sends the same call and returns the receipt.
    async fn transact(
        &self,
        to: Address,
        input: Vec<u8>,
        what: &str,
    ) -> Result<TransactionReceipt, ChainError> {
        self.call(to, input.clone()).await?;
        let tx = TransactionRequest::default().with_to(to).with_input(input);
        self.send_and_wait(tx, what).await
    }

    async fn deploy(&self, code: Bytes, what: &str) -> Result<Address, ChainError> {
        let tx = TransactionRequest::default().with_deploy_code(code);
        let receipt = self.send_and_wait(tx, what).await?;
        receipt
            .contract_address
            .ok_or_else(|| ChainError::Unavailable(format!("{what} created no contract")))
    }

    fn commit(&self, contract: Address, receipt: &TransactionReceipt, index: u64) -> ChainCommit {
        ChainCommit {
            chain_id: self.chain_id,
            contract: contract.to_string(),
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt
                .block_hash
                .map(|h| h.to_string())
                .unwrap_or_default(),
            tx_hash: receipt.transaction_hash.to_string(),
            index,
        }
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        let block = timed("eth_getBlockByNumber", async {
            self.provider
                .get_block_by_number(number.into())
                .await
                .map_err(rpc_error)
        })
        .await?
        .ok_or_else(|| ChainError::Unavailable(format!("the node has no block {number}")))?;
        Ok(block.header.hash)
    }
}

/// The private chain's contracts as `medledger chain deploy` created them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateDeployment {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// RecordLog (committer: the deployer).
    pub record_log: Address,
    /// Roles (first admin operator: the deployer).
    pub roles: Address,
    /// ConsentRegistry (registrar: the deployer).
    pub consent_registry: Address,
}

/// Deploys RecordLog, Roles and ConsentRegistry with `key`'s address as committer, first admin
/// and registrar.
pub async fn deploy_private(
    url: &str,
    key: PrivateKeySigner,
) -> Result<PrivateDeployment, ChainError> {
    let client = Client::connect(url, key).await?;
    let owner = client.sender;
    let record_log = client
        .deploy(
            abi::creation_code(&RecordLog::BYTECODE, &(owner,).abi_encode_params()),
            "RecordLog deployment",
        )
        .await?;
    let roles = client
        .deploy(
            abi::creation_code(&Roles::BYTECODE, &(owner,).abi_encode_params()),
            "Roles deployment",
        )
        .await?;
    let consent_registry = client
        .deploy(
            abi::creation_code(&ConsentRegistry::BYTECODE, &(owner,).abi_encode_params()),
            "ConsentRegistry deployment",
        )
        .await?;
    Ok(PrivateDeployment {
        chain_id: client.chain_id,
        record_log,
        roles,
        consent_registry,
    })
}

/// RecordLog on a JSON-RPC chain, committing with one signing key.
#[derive(Clone)]
pub struct RpcLedger {
    client: Client,
    record_log: Address,
}

impl std::fmt::Debug for RpcLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcLedger")
            .field("record_log", &self.record_log)
            .field("chain_id", &self.client.chain_id)
            .finish_non_exhaustive()
    }
}

impl RpcLedger {
    /// Connects to a RecordLog already deployed at `record_log`, committing as `key`.
    pub async fn connect(
        url: &str,
        key: PrivateKeySigner,
        record_log: Address,
    ) -> Result<Self, ChainError> {
        let client = Client::connect(url, key).await?;
        client.require_code(record_log, "RecordLog").await?;
        Ok(Self { client, record_log })
    }

    /// Connects to RecordLog at `record_log` for reading only (verification): it holds a
    /// throwaway key, which RecordLog would refuse as a committer.
    pub async fn connect_read_only(url: &str, record_log: Address) -> Result<Self, ChainError> {
        Self::connect(url, PrivateKeySigner::random(), record_log).await
    }

    /// Deploys RecordLog alone with `key`'s address as committer and connects to it.
    pub async fn deploy(url: &str, key: PrivateKeySigner) -> Result<Self, ChainError> {
        let client = Client::connect(url, key).await?;
        let code = abi::creation_code(&RecordLog::BYTECODE, &(client.sender,).abi_encode_params());
        let record_log = client.deploy(code, "RecordLog deployment").await?;
        Ok(Self { client, record_log })
    }

    /// RecordLog's address.
    pub fn record_log_address(&self) -> Address {
        self.record_log
    }

    /// The hash (0x-hex) of block `number` as the node reports it.
    pub async fn block_hash_hex(&self, number: u64) -> Result<String, ChainError> {
        Ok(self.client.block_hash(number).await?.to_string())
    }

    /// Whether the code at the address is RecordLog's runtime bytecode from the committed
    /// artifact (RecordLog has no immutables, so every deployment's code is the same).
    pub async fn runs_record_log_code(&self) -> Result<bool, ChainError> {
        let code = timed("eth_getCode", async {
            self.client
                .provider
                .get_code_at(self.record_log)
                .await
                .map_err(rpc_error)
        })
        .await?;
        Ok(code == RecordLog::DEPLOYED_BYTECODE)
    }
}

#[async_trait::async_trait]
impl Ledger for RpcLedger {
    async fn commit_tree_head(
        &self,
        tree_size: u64,
        root: [u8; 32],
    ) -> Result<ChainCommit, ChainError> {
        let call = RecordLog::commitTreeHeadCall {
            treeSize: tree_size,
            rootHash: root.into(),
        };
        let receipt = self
            .client
            .transact(self.record_log, call.abi_encode(), "commitTreeHead")
            .await?;
        let index = committed_index(receipt.logs(), self.record_log, tree_size)?;
        Ok(self.client.commit(self.record_log, &receipt, index))
    }

    async fn tree_head(&self, index: u64) -> Result<OnChainTreeHead, ChainError> {
        let call = RecordLog::treeHeadAtCall {
            index: U256::from(index),
        };
        let out = self.client.call(self.record_log, call.abi_encode()).await?;
        abi::tree_head_of(&out)
    }

    async fn tree_head_count(&self) -> Result<u64, ChainError> {
        let out = self
            .client
            .call(
                self.record_log,
                RecordLog::treeHeadCountCall {}.abi_encode(),
            )
            .await?;
        let n = decode::<RecordLog::treeHeadCountCall>(&out)?;
        u64::try_from(n).map_err(|_| ChainError::Decode("tree head count overflows u64".into()))
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        self.client.block_hash(number).await
    }

    fn chain_id(&self) -> u64 {
        self.client.chain_id
    }

    fn record_log(&self) -> String {
        self.record_log.to_string()
    }
}

/// Anchor on a JSON-RPC (public) chain, anchoring with one signing key.
#[derive(Clone)]
pub struct RpcAnchor {
    client: Client,
    anchor: Address,
}

impl std::fmt::Debug for RpcAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcAnchor")
            .field("anchor", &self.anchor)
            .field("chain_id", &self.client.chain_id)
            .finish_non_exhaustive()
    }
}

impl RpcAnchor {
    /// Deploys `Anchor(key, source_chain_id, source_log)` and connects to it.
    pub async fn deploy(
        url: &str,
        key: PrivateKeySigner,
        source_chain_id: u64,
        source_log: Address,
    ) -> Result<Self, ChainError> {
        let client = Client::connect(url, key).await?;
        let code = abi::creation_code(
            &Anchor::BYTECODE,
            &(client.sender, source_chain_id, source_log).abi_encode_params(),
        );
        let anchor = client.deploy(code, "Anchor deployment").await?;
        Ok(Self { client, anchor })
    }

    /// Connects to the Anchor at `anchor`, anchoring as `key`. It must hold checkpoints of
    /// `source_log` on chain `source_chain_id` ([`ChainError::WrongChain`] otherwise), so a
    /// writer never anchors one deployment's heads into another's contract.
    pub async fn connect(
        url: &str,
        key: PrivateKeySigner,
        anchor: Address,
        source_chain_id: u64,
        source_log: Address,
    ) -> Result<Self, ChainError> {
        let client = Client::connect(url, key).await?;
        client.require_code(anchor, "Anchor").await?;
        let this = Self { client, anchor };
        let (id, log) = this.source().await?;
        if (id, log) != (source_chain_id, source_log) {
            return Err(ChainError::WrongChain(format!(
                "Anchor {anchor} holds checkpoints of {log} on chain {id}, not of {source_log} on chain {source_chain_id}"
            )));
        }
        Ok(this)
    }

    /// Connects for reading only (verification).
    pub async fn connect_read_only(url: &str, anchor: Address) -> Result<Self, ChainError> {
        let client = Client::connect(url, PrivateKeySigner::random()).await?;
        client.require_code(anchor, "Anchor").await?;
        Ok(Self { client, anchor })
    }

    /// The private chain id and RecordLog this Anchor keeps checkpoints of.
    pub async fn source(&self) -> Result<(u64, Address), ChainError> {
        let id = self
            .client
            .call(self.anchor, Anchor::sourceChainIdCall {}.abi_encode())
            .await?;
        let log = self
            .client
            .call(self.anchor, Anchor::sourceLogCall {}.abi_encode())
            .await?;
        Ok((
            decode::<Anchor::sourceChainIdCall>(&id)?,
            decode::<Anchor::sourceLogCall>(&log)?,
        ))
    }

    /// Anchor's address.
    pub fn anchor_address(&self) -> Address {
        self.anchor
    }

    /// The hash of public block `number` as the node reports it.
    pub async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        self.client.block_hash(number).await
    }
}

#[async_trait::async_trait]
impl AnchorChain for RpcAnchor {
    async fn anchor_checkpoint(&self, c: &Checkpoint) -> Result<ChainCommit, ChainError> {
        let call = Anchor::anchorCheckpointCall {
            treeSize: c.tree_size,
            rootHash: c.root.into(),
            sourceBlockNumber: c.source_block_number,
            sourceBlockHash: c.source_block_hash.into(),
        };
        let receipt = self
            .client
            .transact(self.anchor, call.abi_encode(), "anchorCheckpoint")
            .await?;
        let index = anchored_index(receipt.logs(), self.anchor, c.tree_size)?;
        Ok(self.client.commit(self.anchor, &receipt, index))
    }

    async fn checkpoint(&self, index: u64) -> Result<OnChainCheckpoint, ChainError> {
        let call = Anchor::checkpointAtCall {
            index: U256::from(index),
        };
        let out = self.client.call(self.anchor, call.abi_encode()).await?;
        abi::checkpoint_of(&out)
    }

    async fn checkpoint_count(&self) -> Result<u64, ChainError> {
        let out = self
            .client
            .call(self.anchor, Anchor::checkpointCountCall {}.abi_encode())
            .await?;
        let n = decode::<Anchor::checkpointCountCall>(&out)?;
        u64::try_from(n).map_err(|_| ChainError::Decode("checkpoint count overflows u64".into()))
    }

    fn chain_id(&self) -> u64 {
        self.client.chain_id
    }

    fn anchor(&self) -> String {
        self.anchor.to_string()
    }
}

/// Roles and ConsentRegistry on a JSON-RPC chain, sending with the ledger's key (one
/// transaction at a time with it, see [`RpcLedger::registry`]).
#[derive(Clone)]
pub struct RpcRegistry {
    client: Client,
    roles: Address,
    consent_registry: Address,
    /// Blocks asked for per `eth_getLogs` (nodes limit the range one call may cover).
    log_range: u64,
}

/// Default block range of one `eth_getLogs` call: within common node limits (Besu, geth and
/// hosted providers accept at least this many blocks per call).
const LOG_RANGE: u64 = 10_000;

impl std::fmt::Debug for RpcRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcRegistry")
            .field("roles", &self.roles)
            .field("consent_registry", &self.consent_registry)
            .finish_non_exhaustive()
    }
}

impl RpcLedger {
    /// Roles and ConsentRegistry of the same deployment, sent with this ledger's key and
    /// serialised with its transactions (they share the nonce sequence).
    pub async fn registry(
        &self,
        roles: Address,
        consent_registry: Address,
    ) -> Result<RpcRegistry, ChainError> {
        self.client.require_code(roles, "Roles").await?;
        self.client
            .require_code(consent_registry, "ConsentRegistry")
            .await?;
        Ok(RpcRegistry {
            client: self.client.clone(),
            roles,
            consent_registry,
            log_range: LOG_RANGE,
        })
    }
}

impl RpcRegistry {
    /// Connects for reading only (verification), with a throwaway key.
    pub async fn connect_read_only(
        url: &str,
        roles: Address,
        consent_registry: Address,
    ) -> Result<Self, ChainError> {
        let client = Client::connect(url, PrivateKeySigner::random()).await?;
        client
            .require_code(consent_registry, "ConsentRegistry")
            .await?;
        Ok(Self {
            client,
            roles,
            consent_registry,
            log_range: LOG_RANGE,
        })
    }

    /// The same registry, asking `eth_getLogs` for at most `blocks` blocks per call.
    pub fn with_log_range(mut self, blocks: u64) -> Self {
        self.log_range = blocks.max(1);
        self
    }

    async fn view_bool<C: SolCall<Return = bool>>(
        &self,
        to: Address,
        call: C,
    ) -> Result<bool, ChainError> {
        let out = self.client.call(to, call.abi_encode()).await?;
        decode::<C>(&out)
    }

    fn change(
        &self,
        receipt: &TransactionReceipt,
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let logs: Vec<alloy::primitives::Log> =
            receipt.logs().iter().map(|l| l.inner.clone()).collect();
        let at = medledger_chain::registry::Landed {
            chain_id: self.client.chain_id,
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt.block_hash.unwrap_or_default(),
            tx_hash: receipt.transaction_hash,
        };
        medledger_chain::registry::require_change(&logs, self.consent_registry, &at)
    }
}

#[async_trait::async_trait]
impl medledger_chain::Registry for RpcRegistry {
    async fn ensure_authority(&self) -> Result<(), ChainError> {
        let call = Roles::setAuthorityCall {
            operator: self.client.sender,
            enabled: true,
        };
        self.client
            .transact(self.roles, call.abi_encode(), "setAuthority")
            .await?;
        Ok(())
    }

    async fn role_state(
        &self,
        account: [u8; 32],
    ) -> Result<medledger_chain::RoleState, ChainError> {
        let mut state = medledger_chain::RoleState::default();
        for role in 1..=6u8 {
            let call = Roles::hasRoleCall {
                account: account.into(),
                role,
            };
            if self.view_bool(self.roles, call).await? {
                state.roles |= 1 << role;
            }
        }
        let call = Roles::isVerifiedCall {
            account: account.into(),
        };
        state.verified = self.view_bool(self.roles, call).await?;
        Ok(state)
    }

    async fn set_role(&self, account: [u8; 32], role: u8, held: bool) -> Result<B256, ChainError> {
        let input = if held {
            Roles::grantRoleCall {
                account: account.into(),
                role,
            }
            .abi_encode()
        } else {
            Roles::revokeRoleCall {
                account: account.into(),
                role,
            }
            .abi_encode()
        };
        let receipt = self
            .client
            .transact(self.roles, input, "role change")
            .await?;
        Ok(receipt.transaction_hash)
    }

    async fn set_verified(&self, account: [u8; 32], verified: bool) -> Result<B256, ChainError> {
        let call = Roles::setPractitionerVerifiedCall {
            account: account.into(),
            verified,
        };
        let receipt = self
            .client
            .transact(self.roles, call.abi_encode(), "setPractitionerVerified")
            .await?;
        Ok(receipt.transaction_hash)
    }

    async fn record_grant(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        commitment: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let call =
            medledger_chain::registry::grant_call(consent_id, patient, commitment, authorization);
        let receipt = self
            .client
            .transact(self.consent_registry, call, "recordGrant")
            .await?;
        self.change(&receipt)
    }

    async fn record_revocation(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<medledger_chain::RecordedChange, ChainError> {
        let call = medledger_chain::registry::revocation_call(consent_id, patient, authorization);
        let receipt = self
            .client
            .transact(self.consent_registry, call, "recordRevocation")
            .await?;
        self.change(&receipt)
    }

    async fn consent_state(
        &self,
        consent_id: [u8; 32],
    ) -> Result<medledger_chain::OnChainConsent, ChainError> {
        let call = medledger_chain::registry::consent_state_call(consent_id);
        let out = self.client.call(self.consent_registry, call).await?;
        medledger_chain::registry::consent_state_of(&out)
    }

    async fn consent_change(
        &self,
        tx_hash: B256,
    ) -> Result<Option<medledger_chain::RecordedChange>, ChainError> {
        let receipt = timed("eth_getTransactionReceipt", async {
            self.client
                .provider
                .get_transaction_receipt(tx_hash)
                .await
                .map_err(rpc_error)
        })
        .await?;
        let Some(receipt) = receipt else {
            return Ok(None);
        };
        if !receipt.status() {
            return Ok(None);
        }
        let logs: Vec<alloy::primitives::Log> =
            receipt.logs().iter().map(|l| l.inner.clone()).collect();
        let at = medledger_chain::registry::Landed {
            chain_id: self.client.chain_id,
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt.block_hash.unwrap_or_default(),
            tx_hash,
        };
        medledger_chain::registry::change_of(&logs, self.consent_registry, &at)
    }

    async fn consent_history(
        &self,
        consent_id: [u8; 32],
    ) -> Result<Vec<medledger_chain::RecordedChange>, ChainError> {
        // `consentId` is the first indexed topic of both change events. Asked in windows of
        // `log_range` blocks from genesis, since nodes limit one call's range (this runs only
        // to recover after a crash, so the number of calls matters little).
        let latest = timed("eth_blockNumber", async {
            self.client
                .provider
                .get_block_number()
                .await
                .map_err(rpc_error)
        })
        .await?;
        let mut logs = Vec::new();
        let mut from = 0u64;
        while from <= latest {
            let to = from.saturating_add(self.log_range - 1).min(latest);
            let filter = alloy::rpc::types::Filter::new()
                .address(self.consent_registry)
                .topic1(B256::from(consent_id))
                .from_block(from)
                .to_block(to);
            logs.extend(
                timed("eth_getLogs", async {
                    self.client
                        .provider
                        .get_logs(&filter)
                        .await
                        .map_err(rpc_error)
                })
                .await?,
            );
            from = to + 1;
        }
        let mut out = Vec::new();
        for log in logs {
            let at = medledger_chain::registry::Landed {
                chain_id: self.client.chain_id,
                block_number: log.block_number.unwrap_or_default(),
                block_hash: log.block_hash.unwrap_or_default(),
                tx_hash: log.transaction_hash.unwrap_or_default(),
            };
            if let Some(change) =
                medledger_chain::registry::change_of(&[log.inner], self.consent_registry, &at)?
            {
                out.push(change);
            }
        }
        out.sort_by_key(|c| c.chain_version);
        Ok(out)
    }
}

/// The RecordLog index of the head of `tree_size` that a receipt's `TreeHeadCommitted` event,
/// emitted by `record_log`, reports.
fn committed_index(
    logs: &[alloy::rpc::types::Log],
    record_log: alloy::primitives::Address,
    tree_size: u64,
) -> Result<u64, ChainError> {
    use alloy::sol_types::SolEvent;
    logs.iter()
        .filter(|l| l.address() == record_log)
        .find_map(|l| RecordLog::TreeHeadCommitted::decode_log(&l.inner).ok())
        .filter(|e| e.treeSize == tree_size)
        .ok_or_else(|| ChainError::Decode("the receipt holds no TreeHeadCommitted event".into()))
        .and_then(|e| {
            u64::try_from(e.index)
                .map_err(|_| ChainError::Decode("tree head index overflows u64".into()))
        })
}

/// The Anchor index of the checkpoint of `tree_size` that a receipt's `CheckpointAnchored`
/// event, emitted by `anchor`, reports.
fn anchored_index(
    logs: &[alloy::rpc::types::Log],
    anchor: alloy::primitives::Address,
    tree_size: u64,
) -> Result<u64, ChainError> {
    use alloy::sol_types::SolEvent;
    logs.iter()
        .filter(|l| l.address() == anchor)
        .find_map(|l| Anchor::CheckpointAnchored::decode_log(&l.inner).ok())
        .filter(|e| e.treeSize == tree_size)
        .ok_or_else(|| ChainError::Decode("the receipt holds no CheckpointAnchored event".into()))
        .and_then(|e| {
            u64::try_from(e.index)
                .map_err(|_| ChainError::Decode("checkpoint index overflows u64".into()))
        })
}
