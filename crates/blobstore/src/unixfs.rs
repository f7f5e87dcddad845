//! UnixFS file DAGs as go-ipfs/kubo build them with `--raw-leaves` and the default
//! `size-262144` chunker and balanced layout (at most 174 links per node).
//!
//! Interior nodes are dag-pb `PBNode { Links, Data }` with links encoded before data, each link
//! `{Hash, Name: "", Tsize}`, and data a UnixFS `File` message carrying the file size and one
//! `blocksizes` entry per child.

use crate::cid::{Cid, DAG_PB, RAW, put_varint};

/// Chunk size of the default kubo chunker.
pub const CHUNK_SIZE: usize = 262_144;
/// Maximum links per node in kubo's balanced layout.
pub const MAX_LINKS: usize = 174;

/// One block of a DAG.
#[derive(Debug, Clone)]
pub struct Block {
    /// Its CID.
    pub cid: Cid,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Splits `data` into blocks; the last block returned is the root.
pub fn build_dag(data: &[u8]) -> Vec<Block> {
    if data.len() <= CHUNK_SIZE {
        return vec![Block {
            cid: Cid::of(RAW, data),
            data: data.to_vec(),
        }];
    }
    let mut blocks = Vec::new();
    // (cid, total file bytes below, encoded size of the subtree for Tsize)
    let mut level: Vec<(Cid, u64, u64)> = data
        .chunks(CHUNK_SIZE)
        .map(|chunk| {
            let cid = Cid::of(RAW, chunk);
            blocks.push(Block {
                cid,
                data: chunk.to_vec(),
            });
            (cid, chunk.len() as u64, chunk.len() as u64)
        })
        .collect();
    while level.len() > 1 {
        let mut next = Vec::new();
        for group in level.chunks(MAX_LINKS) {
            let node = encode_node(group);
            let cid = Cid::of(DAG_PB, &node);
            let file_size: u64 = group.iter().map(|c| c.1).sum();
            let tsize = node.len() as u64 + group.iter().map(|c| c.2).sum::<u64>();
            blocks.push(Block { cid, data: node });
            next.push((cid, file_size, tsize));
        }
        level = next;
    }
    blocks
}

fn encode_node(children: &[(Cid, u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (cid, _, tsize) in children {
        let mut link = Vec::new();
        let hash = cid.to_bytes();
        field_bytes(&mut link, 1, &hash);
        field_bytes(&mut link, 2, b"");
        put_varint(&mut link, 3 << 3);
        put_varint(&mut link, *tsize);
        field_bytes(&mut out, 2, &link);
    }
    let mut unixfs = Vec::new();
    put_varint(&mut unixfs, 1 << 3);
    put_varint(&mut unixfs, 2); // Type = File
    put_varint(&mut unixfs, 3 << 3);
    put_varint(&mut unixfs, children.iter().map(|c| c.1).sum());
    for (_, size, _) in children {
        put_varint(&mut unixfs, 4 << 3);
        put_varint(&mut unixfs, *size);
    }
    field_bytes(&mut out, 1, &unixfs);
    out
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Child CIDs of a dag-pb node, in order.
pub fn links(node: &[u8]) -> Result<Vec<Cid>, &'static str> {
    let mut out = Vec::new();
    let mut b = node;
    while !b.is_empty() {
        let key = read_varint(&mut b)?;
        match (key >> 3, key & 7) {
            (2, 2) => {
                let mut link = read_len(&mut b)?;
                while !link.is_empty() {
                    let k = read_varint(&mut link)?;
                    match k & 7 {
                        2 => {
                            let v = read_len(&mut link)?;
                            if k >> 3 == 1 {
                                out.push(Cid::from_bytes(v).map_err(|_| "bad link CID")?);
                            }
                        }
                        0 => {
                            read_varint(&mut link)?;
                        }
                        _ => return Err("unexpected wire type in link"),
                    }
                }
            }
            (1, 2) => {
                read_len(&mut b)?;
            }
            _ => return Err("unexpected field in dag-pb node"),
        }
    }
    Ok(out)
}

fn read_varint(b: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long")
}

fn read_len<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let len = usize::try_from(read_varint(b)?).map_err(|_| "length overflow")?;
    if b.len() < len {
        return Err("truncated field");
    }
    let (v, rest) = b.split_at(len);
    *b = rest;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    /// CIDs that js-ipfs' `ipfs-unixfs-importer` 17.1.1 computes for the same bytes with the
    /// settings `ipfs add --cid-version=1 --raw-leaves` uses (CIDv1, raw leaves, fixed 256 KiB
    /// chunks, balanced layout of 174 links, a single leaf reduced to itself).
    #[test]
    fn root_cids_match_the_reference_importer() {
        let cases = [
            (
                CHUNK_SIZE,
                "bafkreibruh455iawsviqslif5c7uurdcfdemh22mtnytyzvnzn75kpejxy",
            ),
            (
                CHUNK_SIZE * 3 + 1000,
                "bafybeibxcaffkga6wx7kvis5lrj6olydk6e7xmpcuspuptcg5tcucjbjji",
            ),
            (
                CHUNK_SIZE * 175,
                "bafybeie73j3heycdgkdsehpoe6cxh2y3iywtf6djpi3dzqrywevvjmazny",
            ),
        ];
        for (n, want) in cases {
            let blocks = build_dag(&pattern(n));
            assert_eq!(
                blocks.last().expect("root").cid.to_string(),
                want,
                "{n} bytes"
            );
        }
    }

    #[test]
    fn small_objects_are_one_raw_block() {
        let blocks = build_dag(&[7u8; CHUNK_SIZE]);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].cid.codec(), RAW);
    }

    #[test]
    fn large_objects_become_a_dag_whose_links_reassemble_the_data() {
        let data: Vec<u8> = (0..(CHUNK_SIZE * 3 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let blocks = build_dag(&data);
        assert_eq!(blocks.len(), 5);
        let root = blocks.last().expect("root");
        assert_eq!(root.cid.codec(), DAG_PB);
        let children = links(&root.data).expect("links");
        assert_eq!(children.len(), 4);
        let mut joined = Vec::new();
        for c in children {
            let b = blocks.iter().find(|b| b.cid == c).expect("child present");
            joined.extend_from_slice(&b.data);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn more_than_174_chunks_nest() {
        let data = vec![1u8; CHUNK_SIZE * (MAX_LINKS + 1)];
        let blocks = build_dag(&data);
        let root = blocks.last().expect("root");
        assert_eq!(links(&root.data).expect("links").len(), 2);
    }
}
