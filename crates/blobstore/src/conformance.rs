//! The contract every BlobStore backend must meet, as a test function: the local blockstore runs
//! it now, the IPFS adapter will run the same one against a node. The CIDs asserted are the ones
//! `ipfs add --cid-version=1 --raw-leaves` gives, so every backend names objects identically.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use bytes::Bytes;

use crate::{BlobError, BlobStore, Cid};

/// Against an empty store.
pub async fn blob_store(s: &dyn BlobStore) {
    let small = Bytes::from_static(b"hello\n");
    let cid = s.put(small.clone()).await.unwrap();
    assert_eq!(
        cid.to_string(),
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
    );
    assert_eq!(
        s.put(small.clone()).await.unwrap(),
        cid,
        "storing the same bytes twice"
    );
    assert_eq!(s.get(&cid).await.unwrap(), small);

    let large: Vec<u8> = (0..crate::unixfs::CHUNK_SIZE * 3 + 1000)
        .map(|i| (i % 251) as u8)
        .collect();
    let big = s.put(Bytes::from(large.clone())).await.unwrap();
    assert_eq!(
        big.to_string(),
        "bafybeibxcaffkga6wx7kvis5lrj6olydk6e7xmpcuspuptcg5tcucjbjji"
    );
    assert_eq!(s.get(&big).await.unwrap().as_ref(), large.as_slice());

    let unknown = Cid::of(crate::cid::RAW, b"never stored");
    let r = s.get(&unknown).await;
    assert!(matches!(r, Err(BlobError::NotFound(_))), "{r:?}");

    s.remove(&big).await.unwrap();
    let r = s.get(&big).await;
    assert!(matches!(r, Err(BlobError::NotFound(_))), "{r:?}");
    s.remove(&big).await.unwrap();
    assert_eq!(
        s.get(&cid).await.unwrap(),
        small,
        "removing one object touched another"
    );
}
