//! Content-addressed blob storage port and the local CIDv1 blockstore (IPFS-compatible raw
//! leaves and UnixFS chunking).
//!
//! Objects are addressed exactly as `ipfs add --cid-version=1 --raw-leaves` would address them,
//! so the embedded store and an IPFS node agree on every CID and a blob can move between them.

pub mod cid;
#[cfg(any(test, feature = "test-utils"))]
pub mod conformance;
pub mod local;
pub mod unixfs;

pub use cid::{Cid, CidError};
pub use local::LocalBlockstore;

use bytes::Bytes;

/// The IPFS node's RPC API (the `ipfs` section of a service's configuration in distributed
/// mode).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpfsConfig {
    /// RPC API base URL (Kubo's, or IPFS Cluster's proxy).
    pub api_url: String,
}

impl Default for IpfsConfig {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:5001".to_owned(),
        }
    }
}

/// Failures of a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No object with that CID is stored.
    #[error("object {0} not found")]
    NotFound(Cid),
    /// Stored bytes do not hash to the CID that names them.
    #[error("object {cid} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        cid: Cid,
        /// What did not match.
        reason: String,
    },
    /// The backend failed (disk, network).
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

impl medledger_error::Categorized for BlobError {
    fn category(&self) -> medledger_error::Category {
        use medledger_error::Category;
        match self {
            // A blob the index refers to must be there and intact: anything else is evidence
            // of loss or tampering, not a transient fault.
            Self::NotFound(_) | Self::Corrupt { .. } => Category::Integrity,
            Self::Unavailable(_) => Category::UNAVAILABLE,
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            Self::Unavailable(_) => "the blob store is unavailable".to_owned(),
            other => format!("integrity check failed: {other}"),
        }
    }
}

/// A store of immutable objects named by the CID of their content.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `data` durably and returns its CID. Storing the same bytes twice is harmless.
    async fn put(&self, data: Bytes) -> Result<Cid, BlobError>;

    /// Fetches an object, checking every block against its CID.
    async fn get(&self, cid: &Cid) -> Result<Bytes, BlobError>;

    /// Removes an object no index refers to (garbage from a failed write). Missing is not an error.
    async fn remove(&self, cid: &Cid) -> Result<(), BlobError>;
}
