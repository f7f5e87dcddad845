//! Commitments of role and consent changes on the private chain's `Roles` and `ConsentRegistry`,
//! and the consent proof: what lets a holder of a Consent version check, with nothing but the
//! chain, that this exact version was recorded, for that patient, authorised by its author.
//!
//! The chain never sees an identity: an account is `SHA-256(tag ‖ salt ‖ reference)` with a
//! random per-account salt; a Consent's id and its patient use one random salt per Consent (so
//! a patient's consents cannot be linked on chain); the content is the same salted HMAC as
//! records have, with a fresh salt per version.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ProofError;

/// Consent proof format identifier.
pub const CONSENT_PROOF_FORMAT: &str = "medledger.consent-proof.v1";

fn tagged(tag: &[u8], salt: &[u8; 32], value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update([0]);
    h.update(salt);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// The on-chain identity of an account (`Practitioner/dr-1`, …) in Roles.
pub fn account_commitment(salt: &[u8; 32], account: &str) -> [u8; 32] {
    tagged(b"medledger.account.v1", salt, account)
}

/// The on-chain id of a Consent in ConsentRegistry.
pub fn consent_id_commitment(subject_salt: &[u8; 32], id: &str) -> [u8; 32] {
    tagged(b"medledger.consent-id.v1", subject_salt, id)
}

/// The on-chain patient of a Consent in ConsentRegistry.
pub fn patient_commitment(subject_salt: &[u8; 32], patient: &str) -> [u8; 32] {
    tagged(b"medledger.consent-patient.v1", subject_salt, patient)
}

/// Role ids of the Roles contract (1 patient … 6 admin).
pub fn role_id(role: &str) -> Option<u8> {
    Some(match role {
        "patient" => 1,
        "practitioner" => 2,
        "organization" => 3,
        "auditor" => 4,
        "authority" => 5,
        "admin" => 6,
        _ => return None,
    })
}

/// Who authorised a consent change and when: the statement the authorisation commitment
/// binds. (The author is the patient, or the consent service acting on the patient's approval
/// of an access request, named as the patient's own change.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// `Consent/{id}`.
    pub consent: String,
    /// The version the change produced.
    pub version: u64,
    /// The authenticated author (`Patient/p1`).
    pub actor: String,
    /// When the change was stored, Unix milliseconds.
    pub recorded_at_ms: i64,
    /// The version's content commitment (hex), so a revocation, which records no content on
    /// chain, still binds the exact version it produced.
    pub content: String,
}

impl Authorization {
    /// The statement for version `version` of Consent `id`, stored by `actor` at
    /// `recorded_at_ms`, whose canonical JSON is `resource`; `salt` is the version's salt.
    pub fn for_version(
        id: &str,
        version: u64,
        actor: &str,
        recorded_at_ms: i64,
        salt: &[u8; 32],
        resource: &[u8],
    ) -> Self {
        Self {
            consent: format!("Consent/{id}"),
            version,
            actor: actor.to_owned(),
            recorded_at_ms,
            content: hex::encode(medledger_crypto::commitment(salt, resource)),
        }
    }

    /// `HMAC-SHA256(salt, statement)`, the statement being this struct as compact JSON in
    /// field order.
    pub fn commitment(&self, salt: &[u8; 32]) -> [u8; 32] {
        let statement = serde_json::to_vec(self).unwrap_or_default();
        medledger_crypto::commitment(salt, &statement)
    }
}

/// A consent change as the chain recorded it (the JSON the registrar stores and a chain client
/// reads back from the transaction's event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedChange {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// ConsentRegistry's address.
    pub contract: String,
    /// Block holding the change.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: String,
    /// The transaction; empty when the chain needed no change (a version that is not in force
    /// of a consent that was not in force either).
    pub tx_hash: String,
    /// Consent id commitment, hex.
    pub consent_id: String,
    /// Patient commitment, hex.
    pub patient: String,
    /// The consent's version on chain after the change.
    pub chain_version: u64,
    /// A grant or a revocation.
    pub granted: bool,
    /// The granted commitment, hex; empty for a revocation.
    pub commitment: String,
    /// The authorisation commitment, hex.
    pub authorization: String,
}

/// A proof that one Consent version was recorded in ConsentRegistry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentProof {
    /// Always [`CONSENT_PROOF_FORMAT`].
    pub format: String,
    /// `Consent/{id}`.
    pub consent: String,
    /// The version.
    pub version: u64,
    /// `Patient/{id}` the Consent is about.
    pub patient: String,
    /// `Consent.status` of the version (`active` versions are grants, others revocations).
    pub status: String,
    /// Who authorised the change, and when.
    pub authorization: Authorization,
    /// Salt of the content and authorisation commitments, hex.
    pub salt: String,
    /// Salt of the id and patient commitments, hex.
    pub subject_salt: String,
    /// The change as recorded on chain.
    pub recorded: RecordedChange,
}

fn salt32(hex_salt: &str, what: &'static str) -> Result<[u8; 32], ProofError> {
    hex::decode(hex_salt)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(ProofError::Malformed(what))
}

impl ConsentProof {
    /// Checks the proof against the Consent version's canonical JSON (as read from the FHIR
    /// API): every commitment the chain recorded must follow from the resource, the salts
    /// and the authorisation statement.
    pub fn verify_resource(&self, canonical: &[u8]) -> Result<(), ProofError> {
        if self.format != CONSENT_PROOF_FORMAT {
            return Err(ProofError::Format(self.format.clone()));
        }
        let salt = salt32(&self.salt, "salt")?;
        let subject_salt = salt32(&self.subject_salt, "subjectSalt")?;
        let id = self
            .consent
            .strip_prefix("Consent/")
            .ok_or(ProofError::Malformed("consent"))?;
        if self.authorization.consent != self.consent || self.authorization.version != self.version
        {
            return Err(ProofError::Malformed("authorization"));
        }
        let r = &self.recorded;
        if r.consent_id != hex::encode(consent_id_commitment(&subject_salt, id))
            || r.patient != hex::encode(patient_commitment(&subject_salt, &self.patient))
        {
            return Err(ProofError::Malformed("the id or patient commitment"));
        }
        let content = hex::encode(medledger_crypto::commitment(&salt, canonical));
        if self.authorization.content != content {
            return Err(ProofError::Commitment);
        }
        let resource: serde_json::Value =
            serde_json::from_slice(canonical).map_err(|_| ProofError::Malformed("resource"))?;
        let stated_version = resource["meta"]["versionId"].as_str().unwrap_or_default();
        if resource["id"].as_str() != Some(id)
            || stated_version != self.version.to_string()
            || resource["status"].as_str() != Some(self.status.as_str())
        {
            return Err(ProofError::Commitment);
        }
        let active = self.status == "active";
        if r.tx_hash.is_empty() {
            // Nothing was sent: only a version not in force can be in that state.
            return if active || r.granted {
                Err(ProofError::Malformed("recorded"))
            } else {
                Ok(())
            };
        }
        if r.authorization != hex::encode(self.authorization.commitment(&salt)) {
            return Err(ProofError::Malformed("the authorization commitment"));
        }
        if r.granted != active || (r.granted && r.commitment != content) {
            return Err(ProofError::Commitment);
        }
        Ok(())
    }

    /// Checks that the chain's record of the proof's transaction is the one the proof states.
    pub fn check_on_chain(&self, on_chain: &RecordedChange) -> Result<(), ProofError> {
        if *on_chain != self.recorded {
            return Err(ProofError::RegistryMismatch(self.recorded.tx_hash.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn proof(canonical: &[u8], status: &str) -> ConsentProof {
        let salt = [3u8; 32];
        let subject_salt = [4u8; 32];
        let authorization = Authorization {
            consent: "Consent/c1".into(),
            version: 2,
            actor: "Patient/p1".into(),
            recorded_at_ms: 7,
            content: hex::encode(medledger_crypto::commitment(&salt, canonical)),
        };
        let granted = status == "active";
        ConsentProof {
            format: CONSENT_PROOF_FORMAT.into(),
            consent: "Consent/c1".into(),
            version: 2,
            patient: "Patient/p1".into(),
            status: status.into(),
            recorded: RecordedChange {
                chain_id: 1337,
                contract: "0x01".into(),
                block_number: 9,
                block_hash: "0x02".into(),
                tx_hash: "0x03".into(),
                consent_id: hex::encode(consent_id_commitment(&subject_salt, "c1")),
                patient: hex::encode(patient_commitment(&subject_salt, "Patient/p1")),
                chain_version: 2,
                granted,
                commitment: if granted {
                    hex::encode(medledger_crypto::commitment(&salt, canonical))
                } else {
                    String::new()
                },
                authorization: hex::encode(authorization.commitment(&salt)),
            },
            authorization,
            salt: hex::encode(salt),
            subject_salt: hex::encode(subject_salt),
        }
    }

    const GRANT: &[u8] =
        br#"{"id":"c1","meta":{"versionId":"2"},"resourceType":"Consent","status":"active"}"#;

    #[test]
    fn a_proof_checks_against_its_resource_and_nothing_else() {
        let p = proof(GRANT, "active");
        p.verify_resource(GRANT).unwrap();
        // Another resource, another author or another patient does not check.
        let edited = br#"{"id":"c1","meta":{"versionId":"2"},"resourceType":"Consent","status":"active","x":1}"#;
        assert_eq!(p.verify_resource(edited), Err(ProofError::Commitment));
        let mut q = p.clone();
        q.authorization.actor = "Practitioner/dr-1".into();
        assert!(q.verify_resource(GRANT).is_err());
        let mut q = p.clone();
        q.patient = "Patient/p2".into();
        assert!(q.verify_resource(GRANT).is_err());
        // The chain must hold exactly what the proof says.
        p.check_on_chain(&p.recorded).unwrap();
        let mut other = p.recorded.clone();
        other.block_number += 1;
        assert!(p.check_on_chain(&other).is_err());
    }

    #[test]
    fn a_revocation_binds_its_content_through_the_authorisation() {
        let revoked =
            br#"{"id":"c1","meta":{"versionId":"2"},"resourceType":"Consent","status":"inactive"}"#;
        let p = proof(revoked, "inactive");
        assert!(p.recorded.commitment.is_empty());
        p.verify_resource(revoked).unwrap();
        let edited = br#"{"id":"c1","meta":{"versionId":"2"},"resourceType":"Consent","status":"inactive","x":1}"#;
        assert_eq!(p.verify_resource(edited), Err(ProofError::Commitment));
        assert!(p.verify_resource(GRANT).is_err());
    }

    #[test]
    fn commitments_are_salted_and_separated_by_kind() {
        let s = [9u8; 32];
        assert_ne!(
            account_commitment(&s, "Patient/p1"),
            account_commitment(&[8; 32], "Patient/p1")
        );
        assert_ne!(patient_commitment(&s, "x"), consent_id_commitment(&s, "x"));
        assert_ne!(account_commitment(&s, "x"), patient_commitment(&s, "x"));
        assert_eq!(role_id("auditor"), Some(4));
        assert_eq!(role_id("root"), None);
    }
}
