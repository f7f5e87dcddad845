//! The one rule that ties a stored version's index row, the event that carries it to the ledger
//! writer, and its leaf in the Merkle log: the same type, id, version, CID, commitment, deletion
//! flag, time and actor, where a deletion has no CID and an all-zero commitment. Ingest builds
//! the event from the row ([`record_event`]), the ledger writer the leaf from the event
//! ([`record_leaf`]), and a read checks the leaf against the row ([`RecordLeaf::matches_row`]);
//! each side calls this module, so the three cannot drift apart.

use medledger_proto::v1::{AuditRecorded, RecordVersionStored};
use medledger_storage_api::{LeafRow, VersionRow};

use crate::{AuditLeaf, LeafKind, RecordLeaf};

/// The commitment a version's leaf holds: the row's, or all zeros for a deletion (which has no
/// content to commit to).
pub fn leaf_commitment(row: &VersionRow) -> [u8; 32] {
    match row.commitment {
        Some(c) if !row.deleted => c,
        _ => [0; 32],
    }
}

/// The event announcing a stored version, keyed for the bus by the owner's pseudonym.
pub fn record_event(
    row: &VersionRow,
    event_id: String,
    owner_pseudonym: String,
    recorded_at_ms: i64,
) -> RecordVersionStored {
    RecordVersionStored {
        event_id,
        resource_type: row.resource_type.clone(),
        id: row.id.clone(),
        version: row.version,
        cid: row.cid.clone().unwrap_or_default(),
        commitment: if row.deleted {
            Vec::new()
        } else {
            leaf_commitment(row).to_vec()
        },
        deleted: row.deleted,
        recorded_at_ms,
        actor: row.actor.clone(),
        owner_pseudonym,
    }
}

/// The leaf of a record event (kind [`LeafKind::RecordVersion`]), or why the event cannot be
/// one.
pub fn record_leaf(ev: &RecordVersionStored) -> Result<LeafRow, &'static str> {
    let commitment = if ev.deleted {
        [0u8; 32]
    } else {
        ev.commitment
            .as_slice()
            .try_into()
            .map_err(|_| "commitment is not 32 bytes")?
    };
    if ev.resource_type.is_empty() || ev.id.is_empty() || ev.version == 0 {
        return Err("event lacks type, id or version");
    }
    let leaf = RecordLeaf {
        resource_type: ev.resource_type.clone(),
        id: ev.id.clone(),
        version: ev.version,
        cid: ev.cid.clone(),
        commitment: hex::encode(commitment),
        recorded_at_ms: ev.recorded_at_ms,
        actor: ev.actor.clone(),
        deleted: ev.deleted,
    };
    let bytes = leaf.encode().map_err(|_| "leaf does not encode")?;
    Ok(LeafRow {
        index: 0,
        kind: LeafKind::RecordVersion as u8,
        subject: leaf.subject(),
        version: ev.version,
        leaf: bytes,
    })
}

/// The event announcing a stored AuditEvent: its id and salted commitment, never its content.
pub fn audit_event(event_id: String, commitment: [u8; 32], recorded_at_ms: i64) -> AuditRecorded {
    AuditRecorded {
        event_id,
        commitment: commitment.to_vec(),
        recorded_at_ms,
    }
}

/// The leaf of an audit event (kind [`LeafKind::AuditEvent`]), or why the event cannot be one.
pub fn audit_leaf(ev: &AuditRecorded) -> Result<LeafRow, &'static str> {
    let commitment: [u8; 32] = ev
        .commitment
        .as_slice()
        .try_into()
        .map_err(|_| "commitment is not 32 bytes")?;
    if ev.event_id.is_empty() {
        return Err("event lacks an id");
    }
    let leaf = AuditLeaf {
        id: ev.event_id.clone(),
        commitment: hex::encode(commitment),
        recorded_at_ms: ev.recorded_at_ms,
    };
    let bytes = leaf.encode().map_err(|_| "leaf does not encode")?;
    Ok(LeafRow {
        index: 0,
        kind: LeafKind::AuditEvent as u8,
        subject: leaf.subject(),
        version: 1,
        leaf: bytes,
    })
}

impl RecordLeaf {
    /// Whether this leaf commits to exactly what the index row says of the version: its CID,
    /// its commitment (zeros for a deletion) and whether it is a deletion.
    pub fn matches_row(&self, row: &VersionRow) -> bool {
        self.cid == row.cid.clone().unwrap_or_default()
            && self.commitment == hex::encode(leaf_commitment(row))
            && self.deleted == row.deleted
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(deleted: bool) -> VersionRow {
        VersionRow {
            resource_type: "Observation".into(),
            id: "o1".into(),
            version: 2,
            cid: (!deleted).then(|| "bafkreiexample".into()),
            wrapped_key: Vec::new(),
            owner: "Patient/p1".into(),
            commitment: (!deleted).then_some([7; 32]),
            deleted,
            last_updated: "2026-12-03T00:00:00.000Z".into(),
            actor: "Practitioner/dr-1".into(),
        }
    }

    #[test]
    fn a_row_its_event_and_its_leaf_agree_and_a_deletion_commits_to_zeros() {
        for deleted in [false, true] {
            let r = row(deleted);
            let ev = record_event(&r, "e1".into(), "pseudonym".into(), 5);
            let leaf = RecordLeaf::decode(&record_leaf(&ev).unwrap().leaf).unwrap();
            assert!(leaf.matches_row(&r), "deleted: {deleted}");
            assert_eq!(leaf.deleted, deleted);
            if deleted {
                assert_eq!(leaf.commitment, "00".repeat(32));
                assert!(ev.commitment.is_empty() && ev.cid.is_empty());
            }
            let mut other = r.clone();
            other.cid = Some("bafkreiother".into());
            assert!(!leaf.matches_row(&other));
        }
        let mut bad = record_event(&row(false), "e".into(), "p".into(), 1);
        bad.commitment.pop();
        assert!(record_leaf(&bad).is_err());
        let audit = audit_event("a1".into(), [3; 32], 9);
        assert_eq!(audit_leaf(&audit).unwrap().kind, LeafKind::AuditEvent as u8);
    }
}
