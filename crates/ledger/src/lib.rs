//! Proof bundles: the leaf format shared by every event kind, and offline verification.
//!
//! A leaf is a compact, length-prefixed binary encoding (see `docs/proof-format.md`) that starts
//! with a format byte and a kind tag, so record versions, consent changes and audit events can
//! share one log without one kind ever being read as another.

pub mod events;
pub mod registry;

use medledger_merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use serde::{Deserialize, Serialize};

/// Leaf encoding version.
pub const LEAF_FORMAT: u8 = 1;
/// Proof bundle format identifier.
pub const PROOF_FORMAT: &str = "medledger.proof.v1";

/// Kind tags of log leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum LeafKind {
    /// A stored version of a FHIR resource.
    RecordVersion = 1,
    /// A consent change (reserved: consent changes are proved through ConsentRegistry, see
    /// [`registry`]).
    ConsentChange = 2,
    /// An AuditEvent of the audit trail.
    AuditEvent = 3,
}

/// The inputs of an audit-event leaf: the event's id, time and salted commitment (the event
/// itself, which names patients and practitioners, stays in the audit store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLeaf {
    /// The AuditEvent's id.
    pub id: String,
    /// HMAC-SHA256(salt, canonical JSON) as hex.
    pub commitment: String,
    /// When the audited interaction happened (Unix ms).
    pub recorded_at_ms: i64,
}

impl AuditLeaf {
    /// `AuditEvent/id`.
    pub fn subject(&self) -> String {
        format!("AuditEvent/{}", self.id)
    }

    /// The leaf bytes: format, kind, subject, commitment, time.
    pub fn encode(&self) -> Result<Vec<u8>, ProofError> {
        let commitment = decode32(&self.commitment, "commitment")?;
        let mut out = Vec::with_capacity(96);
        out.push(LEAF_FORMAT);
        out.push(LeafKind::AuditEvent as u8);
        put_str(&mut out, &self.subject());
        out.extend_from_slice(&commitment);
        out.extend_from_slice(&self.recorded_at_ms.to_be_bytes());
        Ok(out)
    }

    /// Parses leaf bytes produced by [`AuditLeaf::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut r = Reader(bytes);
        if r.u8()? != LEAF_FORMAT || r.u8()? != LeafKind::AuditEvent as u8 {
            return Err(ProofError::Malformed("leaf format or kind"));
        }
        let subject = r.string()?;
        let id = subject
            .strip_prefix("AuditEvent/")
            .ok_or(ProofError::Malformed("leaf subject"))?;
        let commitment = hex::encode(r.take(32)?);
        let recorded_at_ms = i64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| ProofError::Malformed("leaf"))?,
        );
        if !r.0.is_empty() {
            return Err(ProofError::Malformed("trailing bytes in leaf"));
        }
        Ok(Self {
            id: id.to_owned(),
            commitment,
            recorded_at_ms,
        })
    }
}

/// The inputs of a record-version leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordLeaf {
    /// FHIR resource type.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// Version id.
    pub version: u64,
    /// CIDv1 of the ciphertext; empty for a deletion.
    pub cid: String,
    /// HMAC-SHA256(salt, canonical JSON) as hex; all zeros for a deletion.
    pub commitment: String,
    /// When it was stored (Unix ms).
    pub recorded_at_ms: i64,
    /// Who stored it.
    pub actor: String,
    /// Whether the version is a deletion.
    pub deleted: bool,
}

impl RecordLeaf {
    /// `Type/id`.
    pub fn subject(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    /// The leaf bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ProofError> {
        let commitment = decode32(&self.commitment, "commitment")?;
        let mut out = Vec::with_capacity(128);
        out.push(LEAF_FORMAT);
        out.push(LeafKind::RecordVersion as u8);
        put_str(&mut out, &self.subject());
        out.extend_from_slice(&self.version.to_be_bytes());
        put_str(&mut out, &self.cid);
        out.extend_from_slice(&commitment);
        out.extend_from_slice(&self.recorded_at_ms.to_be_bytes());
        put_str(&mut out, &self.actor);
        out.push(u8::from(self.deleted));
        Ok(out)
    }
}

impl RecordLeaf {
    /// Parses leaf bytes produced by [`RecordLeaf::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut r = Reader(bytes);
        if r.u8()? != LEAF_FORMAT || r.u8()? != LeafKind::RecordVersion as u8 {
            return Err(ProofError::Malformed("leaf format or kind"));
        }
        let subject = r.string()?;
        let (resource_type, id) = subject
            .split_once('/')
            .ok_or(ProofError::Malformed("leaf subject"))?;
        let version = u64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| ProofError::Malformed("leaf"))?,
        );
        let cid = r.string()?;
        let commitment = hex::encode(r.take(32)?);
        let recorded_at_ms = i64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| ProofError::Malformed("leaf"))?,
        );
        let actor = r.string()?;
        let deleted = r.u8()? == 1;
        if !r.0.is_empty() {
            return Err(ProofError::Malformed("trailing bytes in leaf"));
        }
        Ok(Self {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version,
            cid,
            commitment,
            recorded_at_ms,
            actor,
            deleted,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProofError> {
        if self.0.len() < n {
            return Err(ProofError::Malformed("truncated leaf"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProofError> {
        Ok(self.take(1)?[0])
    }
    fn string(&mut self) -> Result<String, ProofError> {
        let len = u32::from_be_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| ProofError::Malformed("leaf"))?,
        ) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| ProofError::Malformed("leaf string"))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn decode32(s: &str, what: &'static str) -> Result<[u8; 32], ProofError> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(ProofError::Malformed(what))
}

/// A tree head as carried in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeHead {
    /// Leaves covered.
    pub tree_size: u64,
    /// Root hash (hex).
    pub root_hash: String,
}

/// Where the chain holds the tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainLocation {
    /// `embedded-evm` or `json-rpc`.
    pub network: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// RecordLog contract address.
    pub record_log: String,
    /// Index of the head in RecordLog.
    pub record_log_index: u64,
    /// Block holding the commit.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: String,
    /// Transaction that committed the head.
    pub transaction_hash: String,
}

/// Where a public chain anchors a checkpoint that covers the bundle's tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnchorLocation {
    /// `embedded-evm` (the simulated public chain of `medledger dev`) or `json-rpc`.
    pub network: String,
    /// EIP-155 chain id of the public chain.
    pub chain_id: u64,
    /// Anchor contract address.
    pub anchor: String,
    /// Index of the checkpoint in Anchor.
    pub anchor_index: u64,
    /// Public block holding the anchoring transaction.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: String,
    /// The anchoring transaction.
    pub transaction_hash: String,
    /// The anchored tree head of the private log (at least as large as `treeHead`).
    pub checkpoint: TreeHead,
    /// Private-chain block that committed the checkpoint's head.
    pub source_block_number: u64,
    /// That block's hash.
    pub source_block_hash: String,
    /// RFC 9162 consistency proof from `treeHead` to `checkpoint` (hex; empty when equal).
    pub consistency_proof: Vec<String>,
}

/// A proof that a record version was committed to the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofBundle {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// Leaf kind.
    pub leaf_kind: LeafKind,
    /// The leaf's inputs.
    pub leaf: RecordLeaf,
    /// Salt of the commitment (hex), so a holder of the resource can check it.
    pub salt: String,
    /// Position of the leaf in the log.
    pub leaf_index: u64,
    /// RFC 9162 leaf hash (hex) — redundant, for cross-checking.
    pub leaf_hash: String,
    /// RFC 9162 inclusion proof, bottom-up (hex).
    pub inclusion_proof: Vec<String>,
    /// The tree head the proof leads to.
    pub tree_head: TreeHead,
    /// Where that tree head is on chain.
    pub chain: ChainLocation,
    /// The public anchor covering that tree head, once one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<AnchorLocation>,
}

/// Why a bundle did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// A field is missing or malformed.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// Unknown format version.
    #[error("unsupported proof format '{0}'")]
    Format(String),
    /// The leaf inputs do not hash to the stated leaf hash.
    #[error("leaf hash does not match the leaf inputs")]
    LeafHash,
    /// The inclusion proof does not lead to the tree head.
    #[error("inclusion proof does not lead to the tree head root")]
    Inclusion,
    /// The resource given does not match the commitment.
    #[error("resource does not match the committed hash")]
    Commitment,
    /// The chain holds a different tree head at that index.
    #[error("chain holds a different tree head at RecordLog index {0}")]
    ChainMismatch(u64),
    /// The consistency proof does not lead from the tree head to the anchored checkpoint.
    #[error("consistency proof does not lead from the tree head to the anchored checkpoint")]
    Consistency,
    /// The public chain holds a different checkpoint at that index.
    #[error("public chain holds a different checkpoint at Anchor index {0}")]
    AnchorMismatch(u64),
    /// The private chain does not hold the consent change the proof names.
    #[error("the chain does not hold the consent change of transaction {0}")]
    RegistryMismatch(String),
}

impl ProofBundle {
    /// Checks the bundle's internal consistency: leaf encoding, leaf hash and inclusion in the
    /// tree head. The chain check is separate ([`ProofBundle::check_chain_head`]).
    pub fn verify_inclusion(&self) -> Result<(), ProofError> {
        if self.format != PROOF_FORMAT {
            return Err(ProofError::Format(self.format.clone()));
        }
        if self.leaf_kind != LeafKind::RecordVersion {
            return Err(ProofError::Malformed("leafKind"));
        }
        let computed = leaf_hash(&self.leaf.encode()?);
        if hex::encode(computed) != self.leaf_hash.to_ascii_lowercase() {
            return Err(ProofError::LeafHash);
        }
        let proof: Vec<Hash> = self
            .inclusion_proof
            .iter()
            .map(|h| decode32(h, "inclusionProof"))
            .collect::<Result<_, _>>()?;
        let root = decode32(&self.tree_head.root_hash, "treeHead.rootHash")?;
        verify_inclusion(
            self.leaf_index,
            self.tree_head.tree_size,
            &computed,
            &proof,
            &root,
        )
        .map_err(|_| ProofError::Inclusion)
    }

    /// Checks that `canonical` (RFC 8785 bytes of the resource) matches the leaf's commitment.
    pub fn verify_resource(&self, canonical: &[u8]) -> Result<(), ProofError> {
        let salt = hex::decode(&self.salt).map_err(|_| ProofError::Malformed("salt"))?;
        let expected = decode32(&self.leaf.commitment, "commitment")?;
        if medledger_crypto::commitment(&salt, canonical) == expected {
            Ok(())
        } else {
            Err(ProofError::Commitment)
        }
    }

    /// Checks the anchor section, if any: the checkpoint extends the tree head (consistency
    /// proof). Comparing the checkpoint with the public chain is separate
    /// ([`ProofBundle::check_anchored_checkpoint`]).
    pub fn verify_anchor_consistency(&self) -> Result<(), ProofError> {
        let Some(a) = &self.anchor else {
            return Ok(());
        };
        let proof: Vec<Hash> = a
            .consistency_proof
            .iter()
            .map(|h| decode32(h, "anchor.consistencyProof"))
            .collect::<Result<_, _>>()?;
        let old = decode32(&self.tree_head.root_hash, "treeHead.rootHash")?;
        let new = decode32(&a.checkpoint.root_hash, "anchor.checkpoint.rootHash")?;
        verify_consistency(
            self.tree_head.tree_size,
            a.checkpoint.tree_size,
            &old,
            &new,
            &proof,
        )
        .map_err(|_| ProofError::Consistency)
    }

    /// Compares the checkpoint read from the public chain with the bundle's anchor section.
    pub fn check_anchored_checkpoint(
        &self,
        tree_size: u64,
        root: &[u8; 32],
    ) -> Result<(), ProofError> {
        let a = self
            .anchor
            .as_ref()
            .ok_or(ProofError::Malformed("anchor"))?;
        let ours = decode32(&a.checkpoint.root_hash, "anchor.checkpoint.rootHash")?;
        if tree_size == a.checkpoint.tree_size && *root == ours {
            Ok(())
        } else {
            Err(ProofError::AnchorMismatch(a.anchor_index))
        }
    }

    /// Compares the tree head read from the chain with the bundle's.
    pub fn check_chain_head(&self, tree_size: u64, root: &[u8; 32]) -> Result<(), ProofError> {
        let ours = decode32(&self.tree_head.root_hash, "treeHead.rootHash")?;
        if tree_size == self.tree_head.tree_size && *root == ours {
            Ok(())
        } else {
            Err(ProofError::ChainMismatch(self.chain.record_log_index))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_merkle::MerkleTree;

    #[test]
    fn audit_leaves_round_trip_and_are_never_read_as_records() {
        let a = AuditLeaf {
            id: "0b8e5d3c-1f2a-4c3b-9d4e-5f6a7b8c9d0e".into(),
            commitment: "ab".repeat(32),
            recorded_at_ms: 1_700_000_000_123,
        };
        let bytes = a.encode().expect("encodes");
        assert_eq!(AuditLeaf::decode(&bytes).expect("decodes"), a);
        assert!(RecordLeaf::decode(&bytes).is_err());
        assert!(AuditLeaf::decode(&leaf(1).encode().expect("encodes")).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(AuditLeaf::decode(&longer).is_err());
    }

    fn leaf(i: u64) -> RecordLeaf {
        RecordLeaf {
            resource_type: "Observation".into(),
            id: format!("o{i}"),
            version: 1,
            cid: "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am".into(),
            commitment: hex::encode([i as u8; 32]),
            recorded_at_ms: 1_700_000_000_000,
            actor: "Practitioner/dr-1".into(),
            deleted: false,
        }
    }

    fn bundle() -> ProofBundle {
        let mut tree = MerkleTree::new();
        for i in 0..5 {
            tree.push(&leaf(i).encode().expect("encode"));
        }
        let salt = [3u8; 32];
        let mut l = leaf(2);
        l.commitment = hex::encode(medledger_crypto::commitment(&salt, b"{\"a\":1}"));
        // Rebuild with the real commitment at index 2.
        let mut tree2 = MerkleTree::new();
        for i in 0..5 {
            let x = if i == 2 { l.clone() } else { leaf(i) };
            tree2.push(&x.encode().expect("encode"));
        }
        drop(tree);
        ProofBundle {
            format: PROOF_FORMAT.into(),
            leaf_kind: LeafKind::RecordVersion,
            leaf_hash: hex::encode(tree2.leaf(2).expect("leaf")),
            leaf: l,
            salt: hex::encode(salt),
            leaf_index: 2,
            inclusion_proof: tree2
                .inclusion_proof(2, 5)
                .expect("proof")
                .iter()
                .map(hex::encode)
                .collect(),
            tree_head: TreeHead {
                tree_size: 5,
                root_hash: hex::encode(tree2.root()),
            },
            chain: ChainLocation {
                network: "embedded-evm".into(),
                chain_id: 1337,
                record_log: "0x00".into(),
                record_log_index: 0,
                block_number: 2,
                block_hash: "0x".into(),
                transaction_hash: "0x".into(),
            },
            anchor: None,
        }
    }

    /// `bundle()` with an anchor at a larger checkpoint, plus the tree behind it.
    fn anchored() -> ProofBundle {
        let mut b = bundle();
        let mut tree = MerkleTree::new();
        for i in 0..9 {
            let x = if i == 2 { b.leaf.clone() } else { leaf(i) };
            tree.push(&x.encode().expect("encode"));
        }
        assert_eq!(
            hex::encode(tree.root_at(5).expect("root")),
            b.tree_head.root_hash
        );
        b.anchor = Some(AnchorLocation {
            network: "json-rpc".into(),
            chain_id: 1338,
            anchor: "0x01".into(),
            anchor_index: 3,
            block_number: 7,
            block_hash: "0x".into(),
            transaction_hash: "0x".into(),
            checkpoint: TreeHead {
                tree_size: 9,
                root_hash: hex::encode(tree.root()),
            },
            source_block_number: 4,
            source_block_hash: "0x".into(),
            consistency_proof: tree
                .consistency_proof(5, 9)
                .expect("proof")
                .iter()
                .map(hex::encode)
                .collect(),
        });
        b
    }

    #[test]
    fn anchor_sections_verify_and_round_trip() {
        let b = anchored();
        b.verify_inclusion().expect("inclusion");
        b.verify_anchor_consistency().expect("consistency");
        let json = serde_json::to_string(&b).expect("json");
        assert!(json.contains("\"anchor\""));
        let back: ProofBundle = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, b);
        // A bundle without an anchor leaves the field out and parses back as None.
        let plain = serde_json::to_string(&bundle()).expect("json");
        assert!(!plain.contains("\"anchor\""));
        assert_eq!(bundle().verify_anchor_consistency(), Ok(()));

        let root: [u8; 32] = hex::decode(&b.anchor.as_ref().expect("anchor").checkpoint.root_hash)
            .expect("hex")
            .try_into()
            .expect("32");
        b.check_anchored_checkpoint(9, &root)
            .expect("same checkpoint");
        assert_eq!(
            b.check_anchored_checkpoint(8, &root),
            Err(ProofError::AnchorMismatch(3))
        );
        assert!(bundle().check_anchored_checkpoint(9, &root).is_err());

        // Tampering with the checkpoint, the proof or the sizes breaks consistency.
        let mut t = b.clone();
        t.anchor.as_mut().expect("anchor").checkpoint.root_hash = hex::encode([1u8; 32]);
        assert_eq!(t.verify_anchor_consistency(), Err(ProofError::Consistency));
        let mut t = b.clone();
        t.anchor.as_mut().expect("anchor").consistency_proof.pop();
        assert_eq!(t.verify_anchor_consistency(), Err(ProofError::Consistency));
        let mut t = b.clone();
        t.anchor.as_mut().expect("anchor").checkpoint.tree_size = 4;
        assert_eq!(t.verify_anchor_consistency(), Err(ProofError::Consistency));
    }

    #[test]
    fn valid_bundle_verifies_and_every_field_matters() {
        let b = bundle();
        b.verify_inclusion().expect("valid");
        assert_eq!(
            RecordLeaf::decode(&b.leaf.encode().expect("encode")).expect("decode"),
            b.leaf
        );
        assert!(RecordLeaf::decode(&b.leaf.encode().expect("encode")[..20]).is_err());
        b.verify_resource(b"{\"a\":1}").expect("resource matches");
        assert_eq!(b.verify_resource(b"{\"a\":2}"), Err(ProofError::Commitment));

        let json = serde_json::to_string(&b).expect("json");
        let back: ProofBundle = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, b);

        let mut t = b.clone();
        t.leaf.version = 2;
        assert_eq!(t.verify_inclusion(), Err(ProofError::LeafHash));
        let mut t = b.clone();
        t.leaf.actor = "Practitioner/evil".into();
        assert_eq!(t.verify_inclusion(), Err(ProofError::LeafHash));
        let mut t = b.clone();
        t.leaf_index = 3;
        assert_eq!(t.verify_inclusion(), Err(ProofError::Inclusion));
        let mut t = b.clone();
        t.tree_head.root_hash = hex::encode([0u8; 32]);
        assert_eq!(t.verify_inclusion(), Err(ProofError::Inclusion));
        let mut t = b.clone();
        t.format = "other".into();
        assert!(matches!(t.verify_inclusion(), Err(ProofError::Format(_))));

        let root: [u8; 32] = hex::decode(&b.tree_head.root_hash)
            .expect("hex")
            .try_into()
            .expect("32");
        b.check_chain_head(5, &root).expect("same head");
        assert!(b.check_chain_head(4, &root).is_err());
        assert!(b.check_chain_head(5, &[0; 32]).is_err());
    }
}
