//! The embedded blockstore: one file per block under `DIR/blocks/`, named by CID.
//!
//! Each block is written to a temporary file, fsynced and renamed into place, so a crash leaves
//! either the whole block or nothing, and a block that is there was durable before `put` returned.
//! Reads re-hash every block, so a flipped byte on disk is reported, never served.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::cid::{Cid, DAG_PB, RAW};
use crate::unixfs::{build_dag, links};
use crate::{BlobError, BlobStore};

/// Blocks stored as files in a directory.
#[derive(Debug, Clone)]
pub struct LocalBlockstore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

impl LocalBlockstore {
    /// Opens (creating if needed) a blockstore in `dir`.
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        let root = dir.join("blocks");
        std::fs::create_dir_all(&root).map_err(io)?;
        Ok(Self { root })
    }

    /// Path of the file holding a block (sharded by the CID's last characters, as kubo's flatfs).
    pub fn block_path(&self, cid: &Cid) -> PathBuf {
        let s = cid.to_string();
        let shard = &s[s.len() - 3..s.len() - 1];
        self.root.join(shard).join(s)
    }

    fn write_block(&self, cid: &Cid, data: &[u8]) -> Result<(), BlobError> {
        let path = self.block_path(cid);
        if path.exists() {
            return Ok(());
        }
        let dir = path
            .parent()
            .ok_or_else(|| BlobError::Unavailable("block path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".{}.tmp{}", cid, std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(data).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    fn read_block(&self, cid: &Cid) -> Result<Vec<u8>, BlobError> {
        let data = std::fs::read(self.block_path(cid)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound(*cid),
            _ => io(e),
        })?;
        if !cid.matches(&data) {
            return Err(BlobError::Corrupt {
                cid: *cid,
                reason: "block does not hash to its CID".into(),
            });
        }
        Ok(data)
    }

    fn assemble(&self, cid: &Cid, out: &mut Vec<u8>) -> Result<(), BlobError> {
        let data = self.read_block(cid)?;
        match cid.codec() {
            RAW => out.extend_from_slice(&data),
            DAG_PB => {
                let children = links(&data).map_err(|r| BlobError::Corrupt {
                    cid: *cid,
                    reason: r.into(),
                })?;
                for child in children {
                    self.assemble(&child, out)?;
                }
            }
            _ => {
                return Err(BlobError::Corrupt {
                    cid: *cid,
                    reason: "unsupported codec".into(),
                });
            }
        }
        Ok(())
    }

    fn remove_tree(&self, cid: &Cid) -> Result<(), BlobError> {
        if cid.codec() == DAG_PB
            && let Ok(data) = self.read_block(cid)
        {
            for child in links(&data).unwrap_or_default() {
                self.remove_tree(&child)?;
            }
        }
        match std::fs::remove_file(self.block_path(cid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Every block CID on disk (for garbage collection of objects no index refers to).
    pub fn list_blocks(&self) -> Result<Vec<Cid>, BlobError> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&self.root).map_err(io)? {
            let shard = shard.map_err(io)?;
            if !shard.file_type().map_err(io)?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(shard.path()).map_err(io)? {
                let f = f.map_err(io)?;
                if let Some(cid) = f.file_name().to_str().and_then(|n| n.parse::<Cid>().ok()) {
                    out.push(cid);
                }
            }
        }
        Ok(out)
    }

    /// CIDs of the blocks that make up the object `root` (itself included).
    pub fn object_blocks(&self, root: &Cid) -> Result<Vec<Cid>, BlobError> {
        let mut out = vec![*root];
        if root.codec() == DAG_PB {
            let data = self.read_block(root)?;
            for child in links(&data).map_err(|r| BlobError::Corrupt {
                cid: *root,
                reason: r.into(),
            })? {
                out.extend(self.object_blocks(&child)?);
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlockstore {
    async fn put(&self, data: Bytes) -> Result<Cid, BlobError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let blocks = build_dag(&data);
            for b in &blocks {
                this.write_block(&b.cid, &b.data)?;
            }
            blocks
                .last()
                .map(|b| b.cid)
                .ok_or_else(|| BlobError::Unavailable("empty DAG".into()))
        })
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?
    }

    async fn get(&self, cid: &Cid) -> Result<Bytes, BlobError> {
        let (this, cid) = (self.clone(), *cid);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            this.assemble(&cid, &mut out)?;
            Ok(Bytes::from(out))
        })
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?
    }

    async fn remove(&self, cid: &Cid) -> Result<(), BlobError> {
        let (this, cid) = (self.clone(), *cid);
        tokio::task::spawn_blocking(move || this.remove_tree(&cid))
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::CHUNK_SIZE;

    #[tokio::test]
    async fn put_get_remove_small_and_large() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalBlockstore::open(dir.path()).expect("open");
        let small = Bytes::from_static(b"hello\n");
        let cid = store.put(small.clone()).await.expect("put");
        assert_eq!(
            cid.to_string(),
            "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        );
        assert_eq!(store.get(&cid).await.expect("get"), small);

        let large: Vec<u8> = (0..CHUNK_SIZE * 2 + 5)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let big = store
            .put(Bytes::from(large.clone()))
            .await
            .expect("put large");
        assert_eq!(
            store.get(&big).await.expect("get large").as_ref(),
            large.as_slice()
        );
        assert_eq!(store.object_blocks(&big).expect("blocks").len(), 4);

        // Reopening sees the same objects.
        let again = LocalBlockstore::open(dir.path()).expect("reopen");
        assert_eq!(again.get(&cid).await.expect("get"), small);

        store.remove(&big).await.expect("remove");
        assert!(matches!(store.get(&big).await, Err(BlobError::NotFound(_))));
        assert_eq!(store.list_blocks().expect("list"), vec![cid]);
    }

    #[tokio::test]
    async fn meets_the_blob_store_contract() {
        let dir = tempfile::tempdir().expect("tmp");
        crate::conformance::blob_store(&LocalBlockstore::open(dir.path()).expect("open")).await;
    }

    #[tokio::test]
    async fn flipped_byte_is_detected() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalBlockstore::open(dir.path()).expect("open");
        let cid = store
            .put(Bytes::from_static(b"some ciphertext"))
            .await
            .expect("put");
        let path = store.block_path(&cid);
        let mut data = std::fs::read(&path).expect("read");
        data[3] ^= 0x20;
        std::fs::write(&path, data).expect("write");
        assert!(matches!(
            store.get(&cid).await,
            Err(BlobError::Corrupt { .. })
        ));
    }
}
