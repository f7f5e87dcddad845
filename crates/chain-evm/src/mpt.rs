//! An in-memory Merkle-Patricia trie that keeps its node hashes between updates.
//!
//! `alloy-trie`'s `HashBuilder` computes a root from a sorted key stream, which costs a pass over
//! every key. Doing that per block would make each block, and therefore a replay of the whole
//! chain, grow with the size of the state (quadratic replay). This trie caches each inner node's
//! RLP, so an update only re-hashes the nodes on its path. Node encoding is delegated to
//! `alloy-trie`'s node types so the hashes are the Ethereum ones, and the tests compare every
//! root against `alloy_trie::root`.
//!
//! Keys are always 32-byte hashes (`keccak(address)` / `keccak(slot)`), so every key has 64
//! nibbles, no key is a prefix of another and branch nodes never carry a value.

use alloy::primitives::{B256, keccak256};
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieMask};

type Children = Box<[Option<Box<Node>>; 16]>;

/// A trie node with its cached reference (`rlp`), cleared whenever something below changes.
/// Leaves cache theirs too: re-hashing a branch would otherwise re-hash all of its leaves.
#[derive(Debug)]
enum Node {
    Leaf {
        key: Nibbles,
        value: Box<[u8]>,
        rlp: Option<RlpNode>,
    },
    Extension {
        key: Nibbles,
        child: Box<Node>,
        rlp: Option<RlpNode>,
    },
    Branch {
        children: Children,
        rlp: Option<RlpNode>,
    },
}

/// A Merkle-Patricia trie over 32-byte keys with cached inner-node hashes.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    root: Option<Box<Node>>,
    len: usize,
}

impl Trie {
    /// Number of keys in the trie.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts or replaces the value stored under `key` (already hashed).
    pub(crate) fn insert(&mut self, key: B256, value: Vec<u8>) {
        let path = Nibbles::unpack(key);
        let value = value.into_boxed_slice();
        match &mut self.root {
            None => {
                self.root = Some(Box::new(Node::Leaf {
                    key: path,
                    value,
                    rlp: None,
                }));
                self.len += 1;
            }
            Some(node) => {
                if insert_node(node, path, value) {
                    self.len += 1;
                }
            }
        }
    }

    /// Removes `key` (already hashed); returns whether it was present.
    pub(crate) fn remove(&mut self, key: B256) -> bool {
        let Some(root) = self.root.take() else {
            return false;
        };
        let (root, removed) = remove_node(*root, Nibbles::unpack(key));
        self.root = root;
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// The trie's root hash (`EMPTY_ROOT_HASH` when empty); refreshes the cached node hashes.
    pub(crate) fn root(&mut self) -> B256 {
        let Some(root) = self.root.as_deref_mut() else {
            return EMPTY_ROOT_HASH;
        };
        let mut buf = Vec::with_capacity(128);
        let rlp = node_rlp(root, &mut buf);
        // The root is hashed even when its encoding is shorter than 32 bytes.
        rlp.as_hash().unwrap_or_else(|| keccak256(&rlp[..]))
    }
}

/// Inserts below `node`; returns true if the key is new.
fn insert_node(node: &mut Box<Node>, path: Nibbles, value: Box<[u8]>) -> bool {
    match &mut **node {
        Node::Leaf {
            key,
            value: old,
            rlp,
        } if *key == path => {
            *old = value;
            *rlp = None;
            return false;
        }
        Node::Branch { children, rlp } => {
            *rlp = None;
            // A branch is never at the end of a key (keys have equal length), so `first` exists.
            let Some(index) = path.first() else {
                return false;
            };
            let rest = path.slice(1..);
            let slot = &mut children[usize::from(index)];
            return match slot {
                Some(child) => insert_node(child, rest, value),
                None => {
                    *slot = Some(Box::new(Node::Leaf {
                        key: rest,
                        value,
                        rlp: None,
                    }));
                    true
                }
            };
        }
        Node::Extension { key, child, rlp } if path.starts_with(key) => {
            *rlp = None;
            let rest = path.slice(key.len()..);
            return insert_node(child, rest, value);
        }
        _ => {}
    }

    // The new key diverges inside this leaf's or extension's path: put a branch at the
    // divergence point, holding the old node's remainder and a new leaf.
    let old_key = match &**node {
        Node::Leaf { key, .. } | Node::Extension { key, .. } => *key,
        Node::Branch { .. } => return false,
    };
    let common = old_key.common_prefix_length(&path);
    let (Some(old_index), Some(new_index)) = (old_key.get(common), path.get(common)) else {
        // Equal-length distinct keys always differ before their end.
        return false;
    };
    let old_rest = old_key.slice(common + 1..);
    let placeholder = Node::Leaf {
        key: Nibbles::new(),
        value: Box::default(),
        rlp: None,
    };
    let old_side = match std::mem::replace(&mut **node, placeholder) {
        // The leaf's path got shorter, so its encoding changes.
        Node::Leaf { value, .. } => Box::new(Node::Leaf {
            key: old_rest,
            value,
            rlp: None,
        }),
        Node::Extension { child, .. } if old_rest.is_empty() => child,
        Node::Extension { child, .. } => Box::new(Node::Extension {
            key: old_rest,
            child,
            rlp: None,
        }),
        Node::Branch { .. } => return false,
    };
    let mut children: Children = Box::default();
    children[usize::from(old_index)] = Some(old_side);
    children[usize::from(new_index)] = Some(Box::new(Node::Leaf {
        key: path.slice(common + 1..),
        value,
        rlp: None,
    }));
    let branch = Node::Branch {
        children,
        rlp: None,
    };
    **node = if common == 0 {
        branch
    } else {
        Node::Extension {
            key: path.slice(..common),
            child: Box::new(branch),
            rlp: None,
        }
    };
    true
}

/// Removes `path` below `node`; returns the replacement subtree and whether a key was removed.
fn remove_node(node: Node, path: Nibbles) -> (Option<Box<Node>>, bool) {
    match node {
        Node::Leaf { key, value, rlp } => {
            if key == path {
                (None, true)
            } else {
                (Some(Box::new(Node::Leaf { key, value, rlp })), false)
            }
        }
        Node::Extension { key, child, rlp } => {
            if !path.starts_with(&key) {
                return (Some(Box::new(Node::Extension { key, child, rlp })), false);
            }
            let (child, removed) = remove_node(*child, path.slice(key.len()..));
            if !removed {
                return (
                    child.map(|child| Box::new(Node::Extension { key, child, rlp })),
                    false,
                );
            }
            (child.map(|child| prepend(key, child)), true)
        }
        Node::Branch { mut children, rlp } => {
            let Some(index) = path.first() else {
                return (Some(Box::new(Node::Branch { children, rlp })), false);
            };
            let index = usize::from(index);
            let Some(child) = children[index].take() else {
                return (Some(Box::new(Node::Branch { children, rlp })), false);
            };
            let (child, removed) = remove_node(*child, path.slice(1..));
            children[index] = child;
            if !removed {
                return (Some(Box::new(Node::Branch { children, rlp })), false);
            }
            (collapse(children), true)
        }
    }
}

/// A branch that lost a child: with one child left it becomes that child with the branch
/// nibble prepended, as the canonical trie has no single-child branches.
fn collapse(mut children: Children) -> Option<Box<Node>> {
    let mut present = children
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_some())
        .map(|(i, _)| i);
    let first = present.next()?;
    if present.next().is_some() {
        return Some(Box::new(Node::Branch {
            children,
            rlp: None,
        }));
    }
    let child = children[first].take()?;
    // `first` < 16, so it is a valid nibble.
    let prefix = Nibbles::from_nibbles_unchecked([first as u8]);
    Some(prepend(prefix, child))
}

/// Puts `prefix` in front of `node`'s path, merging extensions and leaves.
fn prepend(prefix: Nibbles, node: Box<Node>) -> Box<Node> {
    if prefix.is_empty() {
        return node;
    }
    match *node {
        Node::Leaf { key, value, .. } => Box::new(Node::Leaf {
            key: prefix.join(&key),
            value,
            rlp: None,
        }),
        Node::Extension { key, child, .. } => Box::new(Node::Extension {
            key: prefix.join(&key),
            child,
            rlp: None,
        }),
        branch @ Node::Branch { .. } => Box::new(Node::Extension {
            key: prefix,
            child: Box::new(branch),
            rlp: None,
        }),
    }
}

/// The node's reference as its parent embeds it: the RLP itself if shorter than 32 bytes,
/// otherwise `rlp(keccak(rlp))`.
fn node_rlp(node: &mut Node, buf: &mut Vec<u8>) -> RlpNode {
    match node {
        Node::Leaf { key, value, rlp } => {
            if let Some(cached) = rlp {
                return cached.clone();
            }
            buf.clear();
            let encoded = LeafNodeRef::new(key, value).rlp(buf);
            *rlp = Some(encoded.clone());
            encoded
        }
        Node::Extension { key, child, rlp } => {
            if let Some(cached) = rlp {
                return cached.clone();
            }
            let child_rlp = node_rlp(child, buf);
            buf.clear();
            let encoded = ExtensionNodeRef::new(key, &child_rlp).rlp(buf);
            *rlp = Some(encoded.clone());
            encoded
        }
        Node::Branch { children, rlp } => {
            if let Some(cached) = rlp {
                return cached.clone();
            }
            let mut stack = Vec::with_capacity(16);
            let mut mask = TrieMask::default();
            for (index, child) in children.iter_mut().enumerate() {
                if let Some(child) = child {
                    stack.push(node_rlp(child, buf));
                    // `index` < 16.
                    mask.set_bit(index as u8);
                }
            }
            buf.clear();
            let encoded = BranchNodeRef::new(&stack, mask).rlp(buf);
            *rlp = Some(encoded.clone());
            encoded
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use std::collections::BTreeMap;

    /// xorshift64*: deterministic pseudo-random keys without a `rand` dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    fn reference_root(map: &BTreeMap<B256, U256>) -> B256 {
        // `storage_root` takes hashed keys, which is what the trie is keyed by here.
        alloy_trie::root::storage_root(map.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn empty_trie_has_empty_root() {
        assert_eq!(Trie::default().root(), EMPTY_ROOT_HASH);
    }

    #[test]
    fn matches_alloy_trie_under_random_inserts_updates_and_removals() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut trie = Trie::default();
        let mut reference = BTreeMap::new();
        // A small key space forces shared prefixes, overwrites and removals of present keys;
        // a few keys share long prefixes to exercise extensions.
        let keys: Vec<B256> = (0..300u64)
            .map(|i| {
                if i % 10 == 0 {
                    let mut k = B256::repeat_byte(0xAB);
                    k.0[31] = i as u8;
                    k.0[30] = (i >> 8) as u8;
                    k
                } else {
                    keccak256(i.to_be_bytes())
                }
            })
            .collect();
        for step in 0..4000 {
            let key = keys[(rng.next() % keys.len() as u64) as usize];
            if rng.next().is_multiple_of(3) {
                assert_eq!(trie.remove(key), reference.remove(&key).is_some());
            } else {
                let value = U256::from(rng.next() | 1);
                trie.insert(key, alloy::rlp::encode(value));
                reference.insert(key, value);
            }
            if step % 37 == 0 {
                assert_eq!(trie.root(), reference_root(&reference), "step {step}");
            }
            assert_eq!(trie.len(), reference.len());
        }
        assert_eq!(trie.root(), reference_root(&reference));
        for key in keys {
            trie.remove(key);
        }
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
        assert_eq!(trie.len(), 0);
    }

    #[test]
    fn single_small_leaf_root_is_hashed() {
        let mut trie = Trie::default();
        let key = keccak256([1u8]);
        trie.insert(key, alloy::rlp::encode(U256::from(1)));
        let mut reference = BTreeMap::new();
        reference.insert(key, U256::from(1));
        assert_eq!(trie.root(), reference_root(&reference));
    }
}
