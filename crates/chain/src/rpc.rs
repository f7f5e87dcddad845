//! The Ledger port over Ethereum JSON-RPC (alloy): anvil in development and CI, Hyperledger Besu
//! or any EVM node in production. The same RecordLog bytecode as the embedded chain.
//!
//! Every call has a timeout; a transaction returns once its receipt is in, and a reverted call is
//! decoded into [`ChainError::Revert`] with the contract error's name, as the embedded chain does.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;

use crate::abi::{self, RecordLog};
use crate::{ChainCommit, ChainError, Ledger, OnChainTreeHead};

/// How long one RPC call (or waiting for one receipt) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// RecordLog on a JSON-RPC chain, committing with one signing key.
#[derive(Clone)]
pub struct RpcLedger {
    provider: DynProvider,
    record_log: Address,
    chain_id: u64,
    committer: Address,
}

impl std::fmt::Debug for RpcLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcLedger")
            .field("record_log", &self.record_log)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

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

/// Sends a transaction and waits for its receipt, within the call timeout.
async fn send_and_wait(
    provider: &DynProvider,
    tx: TransactionRequest,
    what: &str,
) -> Result<alloy::rpc::types::TransactionReceipt, ChainError> {
    timed(what, async {
        provider
            .send_transaction(tx)
            .await
            .map_err(rpc_error)?
            .get_receipt()
            .await
            .map_err(unavailable)
    })
    .await
}

/// A revert reason from an RPC error, decoded like the embedded chain's.
fn rpc_error(e: alloy::transports::TransportError) -> ChainError {
    match e.as_error_resp().and_then(|r| r.as_revert_data()) {
        Some(data) => ChainError::Revert(abi::decode_revert(&data)),
        None => unavailable(e),
    }
}

impl RpcLedger {
    fn provider(url: &str, key: PrivateKeySigner) -> Result<DynProvider, ChainError> {
        let url = url
            .parse()
            .map_err(|e| ChainError::Unavailable(format!("bad RPC URL: {e}")))?;
        Ok(ProviderBuilder::new()
            .wallet(EthereumWallet::from(key))
            .connect_http(url)
            .erased())
    }

    /// Connects to a RecordLog already deployed at `record_log`, committing as `key`.
    pub async fn connect(
        url: &str,
        key: PrivateKeySigner,
        record_log: Address,
    ) -> Result<Self, ChainError> {
        let committer = key.address();
        let provider = Self::provider(url, key)?;
        let chain_id = timed("eth_chainId", async {
            provider.get_chain_id().await.map_err(rpc_error)
        })
        .await?;
        let code = timed("eth_getCode", async {
            provider.get_code_at(record_log).await.map_err(rpc_error)
        })
        .await?;
        if code.is_empty() {
            return Err(ChainError::Unavailable(format!(
                "no contract at {record_log}"
            )));
        }
        Ok(Self {
            provider,
            record_log,
            chain_id,
            committer,
        })
    }

    /// Connects to RecordLog at `record_log` for reading only (verification): it holds a
    /// throwaway key, which RecordLog would refuse as a committer.
    pub async fn connect_read_only(url: &str, record_log: Address) -> Result<Self, ChainError> {
        Self::connect(url, PrivateKeySigner::random(), record_log).await
    }

    /// The hash (0x-hex) of block `number` as the node reports it.
    pub async fn block_hash(&self, number: u64) -> Result<String, ChainError> {
        let block = timed("eth_getBlockByNumber", async {
            self.provider
                .get_block_by_number(number.into())
                .await
                .map_err(rpc_error)
        })
        .await?
        .ok_or_else(|| ChainError::Unavailable(format!("the node has no block {number}")))?;
        Ok(block.header.hash.to_string())
    }

    /// Deploys RecordLog with `key`'s address as committer and connects to it.
    pub async fn deploy(url: &str, key: PrivateKeySigner) -> Result<Self, ChainError> {
        let committer = key.address();
        let provider = Self::provider(url, key)?;
        let code = abi::creation_code(abi::RECORD_LOG_ARTIFACT, committer)?;
        let tx = TransactionRequest::default().with_deploy_code(code);
        let receipt = send_and_wait(&provider, tx, "RecordLog deployment").await?;
        let record_log = receipt
            .contract_address
            .filter(|_| receipt.status())
            .ok_or_else(|| ChainError::Unavailable("RecordLog deployment failed".into()))?;
        let chain_id = timed("eth_chainId", async {
            provider.get_chain_id().await.map_err(rpc_error)
        })
        .await?;
        Ok(Self {
            provider,
            record_log,
            chain_id,
            committer,
        })
    }

    /// RecordLog's address.
    pub fn record_log_address(&self) -> Address {
        self.record_log
    }

    async fn view(&self, input: Vec<u8>) -> Result<Bytes, ChainError> {
        let tx = TransactionRequest::default()
            .with_to(self.record_log)
            .with_input(input);
        timed("eth_call", async {
            self.provider.call(tx).await.map_err(rpc_error)
        })
        .await
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
        // Ask the node first: a call that would revert is reported with its reason and costs no gas.
        let output = self.view_as_sender(call.abi_encode()).await?;
        let index = abi::commit_index(&output)?;
        let tx = TransactionRequest::default()
            .with_to(self.record_log)
            .with_input(call.abi_encode());
        let receipt = send_and_wait(&self.provider, tx, "commitTreeHead").await?;
        if !receipt.status() {
            return Err(ChainError::Revert(
                "commitTreeHead reverted on chain".into(),
            ));
        }
        Ok(ChainCommit {
            chain_id: self.chain_id,
            contract: self.record_log.to_string(),
            block_number: receipt.block_number.unwrap_or_default(),
            block_hash: receipt
                .block_hash
                .map(|h| h.to_string())
                .unwrap_or_default(),
            tx_hash: receipt.transaction_hash.to_string(),
            index,
        })
    }

    async fn tree_head(&self, index: u64) -> Result<OnChainTreeHead, ChainError> {
        let out = self
            .view(
                RecordLog::treeHeadAtCall {
                    index: U256::from(index),
                }
                .abi_encode(),
            )
            .await?;
        let h = RecordLog::treeHeadAtCall::abi_decode_returns(&out)
            .map_err(|e| ChainError::Decode(e.to_string()))?;
        Ok(OnChainTreeHead {
            tree_size: h.treeSize,
            root: h.rootHash.0,
            block_number: h.blockNumber,
            timestamp: h.timestamp,
        })
    }

    async fn tree_head_count(&self) -> Result<u64, ChainError> {
        let out = self
            .view(RecordLog::treeHeadCountCall {}.abi_encode())
            .await?;
        let n = RecordLog::treeHeadCountCall::abi_decode_returns(&out)
            .map_err(|e| ChainError::Decode(e.to_string()))?;
        u64::try_from(n).map_err(|_| ChainError::Decode("tree head count overflows u64".into()))
    }

    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn record_log(&self) -> String {
        self.record_log.to_string()
    }
}

impl RpcLedger {
    /// `eth_call` from the committing account, so access checks apply as for the real send.
    async fn view_as_sender(&self, input: Vec<u8>) -> Result<Bytes, ChainError> {
        let tx = TransactionRequest::default()
            .with_from(self.committer)
            .with_to(self.record_log)
            .with_input(input);
        timed("eth_call", async {
            self.provider.call(tx).await.map_err(rpc_error)
        })
        .await
    }
}
