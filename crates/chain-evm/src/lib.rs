//! The embedded chain: a single-sealer EVM chain that runs in-process on revm, executing the
//! committed contracts' bytecode, and backs the [`Ledger`], [`AnchorChain`] and [`Registry`]
//! ports in `medledger dev` (one chain per [`ChainProfile`]).
//!
//! Its blocks are Ethereum-style (header hashed with `keccak(rlp(header))`, EIP-1559
//! transactions, receipts and state tries) and its transactions run the real compiled contract
//! bytecode in revm. Nothing is simulated: a tree head is readable only because a signed
//! transaction calling `RecordLog.commitTreeHead` executed in a block that is hash-linked,
//! sealed, fsynced and re-executed on every open.
//!
//! On disk (`<dir>/blocks.log`, `<dir>/sealer.key`) and the verification procedure are described
//! in this crate's `README.md`. In short: an append-only log of length-prefixed, checksummed
//! records, one block each; opening replays every block from genesis and checks the hash link,
//! the sealer's signature over the block hash, every transaction's signer, and that re-executing
//! the transactions reproduces the header's state, transactions and receipts roots. An
//! interrupted final append is dropped (it was never acknowledged); anything else that does not
//! check out is [`ChainError::Tampered`], naming the block.
//!
//! [`ChainReader`] opens the same directory read-only, verifying the whole chain, while a writer
//! in another process keeps appending.
//!
//! [`Ledger`]: medledger_chain::Ledger
//! [`AnchorChain`]: medledger_chain::AnchorChain
//! [`Registry`]: medledger_chain::Registry
//! [`ChainError::Tampered`]: medledger_chain::ChainError::Tampered

mod block;
mod blocklog;
mod chain;
mod embedded;
mod evm;
mod mpt;
mod reader;

use alloy::primitives::{B256, Bytes, Log};

pub use chain::ChainProfile;
pub use embedded::EmbeddedChain;
pub use reader::ChainReader;

/// A block, as shown to operators and verifiers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockSummary {
    /// Block number (genesis is 0).
    pub number: u64,
    /// Block hash, `0x…`.
    pub hash: String,
    /// Parent block hash, `0x…`.
    pub parent_hash: String,
    /// Timestamp (Unix seconds).
    pub timestamp: u64,
    /// State root after the block, `0x…`.
    pub state_root: String,
    /// Number of transactions in the block.
    pub transaction_count: usize,
}

/// The outcome of a transaction that made it into a durable block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReceipt {
    /// Number of the block holding the transaction.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Hash of the transaction.
    pub tx_hash: B256,
    /// Return data of the call.
    pub output: Bytes,
    /// Events the call emitted.
    pub logs: Vec<Log>,
}

#[cfg(test)]
mod tests;
