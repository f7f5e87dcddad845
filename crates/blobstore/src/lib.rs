//! Content-addressed blob storage port and the local CIDv1 blockstore (IPFS-compatible raw
//! leaves and UnixFS chunking).
//!
//! Objects are addressed exactly as `ipfs add --cid-version=1 --raw-leaves` would address them,
//! so the embedded store and an IPFS node agree on every CID and a blob can move between them.

pub mod cid;
#[cfg(any(test, feature = "test-utils"))]
pub mod conformance;
pub mod ipfs;
pub mod local;
pub mod unixfs;

pub use cid::{Cid, CidError};
pub use ipfs::IpfsBlobStore;
pub use local::LocalBlockstore;

use bytes::Bytes;

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
