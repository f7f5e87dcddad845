//! The chain ports: [`Ledger`] (Merkle tree heads on the private chain), [`AnchorChain`]
//! (checkpoints on the public chain) and [`Registry`] (roles and consents on the private chain),
//! their types and error, the committed contracts' bindings they share, and their conformance
//! suites (feature `test-utils`).
//!
//! The ledger writer and the verifier code against these traits. The backends are named by
//! what they run on: `medledger-chain-evm` is the in-process chain (revm executing the committed
//! bytecode in sealed, fsynced, hash-linked blocks) of `medledger dev`; `medledger-chain-rpc`
//! reaches any Ethereum JSON-RPC node (alloy). Both decode contract calls and events through
//! [`abi`] and [`registry`], so the two agree on what the contracts say.

pub mod abi;
#[cfg(any(test, feature = "test-utils"))]
pub mod conformance;
pub mod registry;

pub use alloy::primitives::{Address, B256, Bytes, Log};
pub use alloy::signers::local::PrivateKeySigner;
pub use registry::{OnChainConsent, RecordedChange, Registry, RoleState};

/// The ledger port: commits Merkle tree heads to a chain and reads them back.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Commits a Merkle tree head; returns once it is durable on the chain.
    async fn commit_tree_head(
        &self,
        tree_size: u64,
        root: [u8; 32],
    ) -> Result<ChainCommit, ChainError>;

    /// Reads tree head `index` back through a RecordLog view call.
    async fn tree_head(&self, index: u64) -> Result<OnChainTreeHead, ChainError>;

    /// Number of tree heads RecordLog holds (a view call).
    async fn tree_head_count(&self) -> Result<u64, ChainError>;

    /// Hash of block `number`, to name the block a head was committed in (e.g. after a crash
    /// lost the receipt).
    async fn block_hash(&self, number: u64) -> Result<B256, ChainError>;

    /// EIP-155 chain id.
    fn chain_id(&self) -> u64;

    /// RecordLog's address, `0x…`.
    fn record_log(&self) -> String;
}

/// The anchor port: keeps checkpoints of the private chain's tree heads on a public chain, so
/// an auditor needs nothing but a public-chain RPC to check that a tree head existed by then.
#[async_trait::async_trait]
pub trait AnchorChain: Send + Sync + 'static {
    /// Anchors a checkpoint; returns once it is in a block of the public chain.
    async fn anchor_checkpoint(&self, checkpoint: &Checkpoint) -> Result<ChainCommit, ChainError>;

    /// Reads checkpoint `index` back through an Anchor view call.
    async fn checkpoint(&self, index: u64) -> Result<OnChainCheckpoint, ChainError>;

    /// Number of checkpoints Anchor holds.
    async fn checkpoint_count(&self) -> Result<u64, ChainError>;

    /// EIP-155 chain id of the public chain.
    fn chain_id(&self) -> u64;

    /// Anchor's address, `0x…`.
    fn anchor(&self) -> String;
}

/// A private-chain tree head as anchored: the head and the private block that committed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// RFC 9162 root hash.
    pub root: [u8; 32],
    /// Private-chain block in which RecordLog received this head.
    pub source_block_number: u64,
    /// That block's hash.
    pub source_block_hash: [u8; 32],
}

/// A checkpoint as Anchor stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainCheckpoint {
    /// The anchored checkpoint.
    pub checkpoint: Checkpoint,
    /// Public-chain block in which it was anchored.
    pub block_number: u64,
    /// Timestamp (Unix seconds) of that block.
    pub timestamp: u64,
}

/// Where a tree head (or a checkpoint) was committed: enough to find and check the transaction
/// later.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainCommit {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// RecordLog's (or Anchor's) address, `0x…` (EIP-55 checksummed).
    pub contract: String,
    /// Number of the block holding the transaction.
    pub block_number: u64,
    /// Hash of that block, `0x…`.
    pub block_hash: String,
    /// Hash of the `commitTreeHead` transaction, `0x…`.
    pub tx_hash: String,
    /// Index of the tree head in RecordLog (of the checkpoint in Anchor).
    pub index: u64,
}

/// A tree head as RecordLog stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainTreeHead {
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// RFC 9162 root hash.
    pub root: [u8; 32],
    /// Block in which the head was committed.
    pub block_number: u64,
    /// Timestamp (Unix seconds) of that block.
    pub timestamp: u64,
}

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Stored chain data does not verify: edited, forged or damaged (not merely cut short).
    #[error("chain data failed verification: {0}")]
    Tampered(String),
    /// The contract reverted; the reason is the decoded custom error, e.g.
    /// `TreeSizeNotIncreasing(previous=7, proposed=5)`.
    #[error("transaction reverted: {0}")]
    Revert(String),
    /// Reading or writing the data directory failed.
    #[error("chain I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Another process has the chain open for writing.
    #[error("chain is already open for writing: {0}")]
    Locked(String),
    /// The sealer key file is missing or unreadable.
    #[error("sealer key: {0}")]
    Key(String),
    /// Signing a transaction or block failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The EVM rejected a transaction before executing it (a bug, not a revert).
    #[error("EVM error: {0}")]
    Evm(String),
    /// A contract artifact is malformed or its deployment failed.
    #[error("contract artifact: {0}")]
    Artifact(String),
    /// Contract return data did not decode.
    #[error("cannot decode contract output: {0}")]
    Decode(String),
    /// The chain could not serve the request (e.g. block production crashed).
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The chain is not the one asked for: another profile, another chain id, or an Anchor
    /// for another private log.
    #[error("wrong chain: {0}")]
    WrongChain(String),
}

impl ChainError {
    /// For `Revert`, the custom error's name (`TreeSizeNotIncreasing`, `NotAdmin`, …).
    pub fn revert_name(&self) -> Option<&str> {
        match self {
            Self::Revert(reason) => Some(reason.split('(').next().unwrap_or(reason)),
            _ => None,
        }
    }

    /// A copy for each caller waiting on one failed operation (`io::Error` is not `Clone`).
    pub fn replicate(&self) -> Self {
        match self {
            Self::Tampered(s) => Self::Tampered(s.clone()),
            Self::Revert(s) => Self::Revert(s.clone()),
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
            Self::Locked(s) => Self::Locked(s.clone()),
            Self::Key(s) => Self::Key(s.clone()),
            Self::Signing(s) => Self::Signing(s.clone()),
            Self::Evm(s) => Self::Evm(s.clone()),
            Self::Artifact(s) => Self::Artifact(s.clone()),
            Self::Decode(s) => Self::Decode(s.clone()),
            Self::Unavailable(s) => Self::Unavailable(s.clone()),
            Self::WrongChain(s) => Self::WrongChain(s.clone()),
        }
    }
}
