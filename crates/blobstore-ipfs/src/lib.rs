//! The BlobStore port on an IPFS node through the Kubo RPC API (`ipfs-api-backend-hyper`),
//! for distributed mode; `medledger-blobstore` holds the port, the CIDs and the UnixFS builder.
//!
//! Objects are split into blocks here, by the same UnixFS builder the local blockstore uses, and
//! stored with `block/put`; the root is pinned. So CIDs are identical to the embedded store's by
//! construction, whatever the node's own `add` defaults are, and every block read back with
//! `block/get` is checked against its CID. Node answers are parsed as CIDs (the reference node
//! answers `block/put` with a base58 CIDv0 key), never compared as strings. Every call has a
//! timeout, and a call that fails at once (connection refused or reset, a 5xx) is retried twice
//! with backoff: every call made here is idempotent (content-addressed puts, gets, pins).

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri, request};

use medledger_blobstore::cid::{Cid, DAG_PB, RAW};
use medledger_blobstore::unixfs::{build_dag, links};
use medledger_blobstore::{BlobError, BlobStore};

/// How long one RPC call may take, its retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per call when it fails fast.
const ATTEMPTS: u32 = 3;
/// Wait before the first retry; quadrupled before each further one.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// A BlobStore on an IPFS node's RPC API.
pub struct IpfsBlobStore {
    client: IpfsClient,
}

impl std::fmt::Debug for IpfsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpfsBlobStore").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

/// Runs one RPC call made by `f`, retrying fast failures, all within one timeout: the bound a
/// caller relies on covers the retries too.
async fn call<T, F, Fut>(mut f: F) -> Result<T, BlobError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BlobError>>,
{
    let attempts = async {
        let mut delay = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(BlobError::Unavailable(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, reason = %why, "IPFS call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    attempt += 1;
                }
                result => return result,
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, attempts)
        .await
        .map_err(|_| BlobError::Unavailable("IPFS call timed out".into()))?
}

/// The sha2-256 digest named by a key as a node returns it: a CIDv1 (`b…` base32) or a CIDv0 /
/// bare multihash in base58btc (`Qm…`, or `z…` multibase).
fn digest_of_key(key: &str) -> Option<[u8; 32]> {
    if let Ok(cid) = key.parse::<Cid>() {
        return Some(*cid.digest());
    }
    let b58 = key.strip_prefix('z').unwrap_or(key);
    let bytes = base58_decode(b58)?;
    match bytes.as_slice() {
        [0x12, 0x20, digest @ ..] if digest.len() == 32 => digest.try_into().ok(),
        _ => Cid::from_bytes(&bytes).ok().map(|c| *c.digest()),
    }
}

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut out: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut v = vec![0u8; zeros];
    v.extend(out);
    Some(v)
}

impl IpfsBlobStore {
    /// A store on the node whose RPC API is at `url` (e.g. `http://127.0.0.1:5001`).
    pub fn new(url: &str) -> Result<Self, BlobError> {
        Ok(Self {
            client: IpfsClient::from_str(url)
                .map_err(|e| unavailable(format!("bad IPFS URL: {e}")))?,
        })
    }

    /// The node's version string (a health check).
    pub async fn version(&self) -> Result<String, BlobError> {
        call(|| async {
            self.client
                .version()
                .await
                .map(|v| v.version)
                .map_err(unavailable)
        })
        .await
    }

    async fn block(&self, cid: &Cid) -> Result<Vec<u8>, BlobError> {
        let key = cid.to_string();
        let data: Vec<u8> = call(|| async {
            self.client
                .block_get(&key)
                .map_ok(|b| b.to_vec())
                .try_concat()
                .await
                .map_err(|e| {
                    // Kubo says "not found" / "could not find"; the js-ipfs node reports the missing
                    // block file (ENOENT).
                    let msg = e.to_string().to_ascii_lowercase();
                    let missing = ["not found", "could not find", "enoent", "no such file"]
                        .iter()
                        .any(|m| msg.contains(m));
                    if missing {
                        BlobError::NotFound(*cid)
                    } else {
                        unavailable(e)
                    }
                })
        })
        .await?;
        if !cid.matches(&data) {
            return Err(BlobError::Corrupt {
                cid: *cid,
                reason: "block from the node does not hash to its CID".into(),
            });
        }
        Ok(data)
    }

    async fn assemble(&self, cid: Cid, out: &mut Vec<u8>) -> Result<(), BlobError> {
        // Iterative depth-first walk: UnixFS DAGs are shallow, but recursion in async needs boxing.
        let mut stack = vec![cid];
        while let Some(c) = stack.pop() {
            let data = self.block(&c).await?;
            match c.codec() {
                RAW => out.extend_from_slice(&data),
                DAG_PB => {
                    let children = links(&data).map_err(|r| BlobError::Corrupt {
                        cid: c,
                        reason: r.into(),
                    })?;
                    stack.extend(children.into_iter().rev());
                }
                _ => {
                    return Err(BlobError::Corrupt {
                        cid: c,
                        reason: "unsupported codec".into(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn object_blocks(&self, root: Cid) -> Result<Vec<Cid>, BlobError> {
        let mut all = Vec::new();
        let mut stack = vec![root];
        while let Some(c) = stack.pop() {
            all.push(c);
            if c.codec() == DAG_PB {
                let data = self.block(&c).await?;
                stack.extend(links(&data).map_err(|r| BlobError::Corrupt {
                    cid: c,
                    reason: r.into(),
                })?);
            }
        }
        Ok(all)
    }
}

#[async_trait::async_trait]
impl BlobStore for IpfsBlobStore {
    async fn put(&self, data: Bytes) -> Result<Cid, BlobError> {
        let blocks = build_dag(&data);
        let root = blocks
            .last()
            .map(|b| b.cid)
            .ok_or_else(|| unavailable("empty DAG"))?;
        // Most records are one block: pinning it with its `block/put` saves a call (for a leaf,
        // a direct pin protects all there is). A multi-block DAG gets a recursive pin of its
        // root once every block is stored.
        let single = blocks.len() == 1;
        for b in &blocks {
            let format = if b.cid.codec() == DAG_PB {
                "dag-pb"
            } else {
                "raw"
            };
            let answer = call(|| async {
                let options = request::BlockPut {
                    format: Some(format),
                    mhtype: Some("sha2-256"),
                    mhlen: Some(32),
                    pin: Some(single),
                };
                self.client
                    .block_put_with_options(Cursor::new(b.data.clone()), options)
                    .await
                    .map_err(unavailable)
            })
            .await?;
            if digest_of_key(&answer.key) != Some(*b.cid.digest()) {
                return Err(unavailable(format!(
                    "node stored block {} under a different hash",
                    b.cid
                )));
            }
        }
        if !single {
            let key = root.to_string();
            call(|| async {
                self.client
                    .pin_add(&key, true)
                    .await
                    .map(|_| ())
                    .map_err(unavailable)
            })
            .await?;
        }
        Ok(root)
    }

    async fn get(&self, cid: &Cid) -> Result<Bytes, BlobError> {
        let mut out = Vec::new();
        self.assemble(*cid, &mut out).await?;
        Ok(Bytes::from(out))
    }

    async fn remove(&self, cid: &Cid) -> Result<(), BlobError> {
        let blocks = match self.object_blocks(*cid).await {
            Ok(b) => b,
            Err(BlobError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let key = cid.to_string();
        // Not pinned (a half-finished put) is fine: the goal is that the object is gone.
        let _ = call(|| async { self.client.pin_rm(&key, true).await.map_err(unavailable) }).await;
        for b in blocks {
            let k = b.to_string();
            let _ = call(|| async { self.client.block_rm(&k).await.map_err(unavailable) }).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_parse_to_digests() {
        let cid = Cid::of(RAW, b"hello\n");
        assert_eq!(digest_of_key(&cid.to_string()), Some(*cid.digest()));
        // `ipfs add` (CIDv0) of "hello\n" is a dag-pb node; check base58 decoding on a known
        // multihash instead: the sha2-256 multihash of "hello\n" in base58btc.
        let mut mh = vec![0x12, 0x20];
        mh.extend_from_slice(cid.digest());
        let b58 = base58_encode(&mh);
        assert!(b58.starts_with("Qm"));
        assert_eq!(digest_of_key(&b58), Some(*cid.digest()));
        assert_eq!(
            digest_of_key(&format!("z{}", base58_encode(&cid.to_bytes()))),
            Some(*cid.digest())
        );
        assert_eq!(digest_of_key("not-a-key!"), None);
    }

    fn base58_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut digits: Vec<u8> = Vec::new();
        for &b in bytes {
            let mut carry = u32::from(b);
            for d in digits.iter_mut() {
                carry += u32::from(*d) << 8;
                *d = (carry % 58) as u8;
                carry /= 58;
            }
            while carry > 0 {
                digits.push((carry % 58) as u8);
                carry /= 58;
            }
        }
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        std::iter::repeat_n('1', zeros)
            .chain(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char))
            .collect()
    }
}
