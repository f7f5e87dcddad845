//! The registry port: role and consent changes committed to the private chain's `Roles` and
//! `ConsentRegistry` contracts, as salted commitments only, and read back for verification.
//!
//! The consent service's store stays authoritative (a change takes effect when it commits
//! there); the registrar copies each change here afterwards, so anyone can later prove that a
//! consent version existed and was authorised, and since when.

use alloy::primitives::{Address, B256, Log};
use alloy::sol_types::SolEvent;

use crate::ChainError;
use crate::abi::ConsentRegistry;

/// Roles a commitment holds on chain, and its practitioner verification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleState {
    /// Bit `r` is set when role `r` (1 patient … 6 admin) is held.
    pub roles: u8,
    /// `Roles.isVerified`.
    pub verified: bool,
}

impl RoleState {
    /// Whether role `role` is held.
    pub fn has(&self, role: u8) -> bool {
        role < 8 && self.roles & (1 << role) != 0
    }
}

/// The latest state of one consent in ConsentRegistry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnChainConsent {
    /// Patient commitment (zero while unknown).
    pub patient: [u8; 32],
    /// Last granted commitment.
    pub commitment: [u8; 32],
    /// Changes recorded (0 while unknown).
    pub version: u64,
    /// Whether the consent is granted now.
    pub active: bool,
}

/// One recorded consent change, as its transaction's event shows it: the proof format's own type
/// (`medledger_ledger::registry::RecordedChange`), so what the chain reads back compares directly
/// with what a proof states.
pub use medledger_ledger::registry::RecordedChange;

/// Roles and consent changes on the private chain.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Makes the signing account an authority operator of Roles, so it may set practitioner
    /// verification (it is Roles' admin; a repeated call changes nothing).
    async fn ensure_authority(&self) -> Result<(), ChainError>;

    /// Roles `account` holds, and its verification.
    async fn role_state(&self, account: [u8; 32]) -> Result<RoleState, ChainError>;

    /// Grants (`held`) or revokes `role`; returns the transaction's hash.
    async fn set_role(&self, account: [u8; 32], role: u8, held: bool) -> Result<B256, ChainError>;

    /// Sets a practitioner's verification; returns the transaction's hash.
    async fn set_verified(&self, account: [u8; 32], verified: bool) -> Result<B256, ChainError>;

    /// `ConsentRegistry.recordGrant`.
    async fn record_grant(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        commitment: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<RecordedChange, ChainError>;

    /// `ConsentRegistry.recordRevocation`.
    async fn record_revocation(
        &self,
        consent_id: [u8; 32],
        patient: [u8; 32],
        authorization: [u8; 32],
    ) -> Result<RecordedChange, ChainError>;

    /// `ConsentRegistry.consentState`.
    async fn consent_state(&self, consent_id: [u8; 32]) -> Result<OnChainConsent, ChainError>;

    /// The consent change transaction `tx_hash` recorded, read from its event; `None` when the
    /// chain has no such transaction or it recorded no consent change.
    async fn consent_change(&self, tx_hash: B256) -> Result<Option<RecordedChange>, ChainError>;

    /// Every change recorded for `consent_id`, oldest first (from the events).
    async fn consent_history(
        &self,
        consent_id: [u8; 32],
    ) -> Result<Vec<RecordedChange>, ChainError>;
}

/// Where a change landed, without the event's fields. The call builders and decoders below are
/// what every [`Registry`] backend sends and reads, written once so that the backends agree.
pub struct Landed {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Number of the block holding the transaction.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Hash of the transaction.
    pub tx_hash: B256,
}

/// The consent change among `logs` that `registry` emitted.
pub fn change_of(
    logs: &[Log],
    registry: Address,
    at: &Landed,
) -> Result<Option<RecordedChange>, ChainError> {
    for log in logs.iter().filter(|l| l.address == registry) {
        let base =
            |consent_id: B256, patient: B256, version: u64, authorization: B256| RecordedChange {
                chain_id: at.chain_id,
                contract: registry.to_string(),
                block_number: at.block_number,
                block_hash: at.block_hash.to_string(),
                tx_hash: at.tx_hash.to_string(),
                consent_id: hex::encode(consent_id),
                patient: hex::encode(patient),
                chain_version: version,
                granted: false,
                commitment: String::new(),
                authorization: hex::encode(authorization),
            };
        if let Ok(e) = ConsentRegistry::ConsentGranted::decode_log(log) {
            let mut change = base(e.consentId, e.patient, e.version, e.authorization);
            change.granted = true;
            change.commitment = hex::encode(e.commitment);
            return Ok(Some(change));
        }
        if let Ok(e) = ConsentRegistry::ConsentRevoked::decode_log(log) {
            return Ok(Some(base(
                e.consentId,
                e.patient,
                e.version,
                e.authorization,
            )));
        }
    }
    Ok(None)
}

/// The consent change a receipt must hold.
pub fn require_change(
    logs: &[Log],
    registry: Address,
    at: &Landed,
) -> Result<RecordedChange, ChainError> {
    change_of(logs, registry, at)?
        .ok_or_else(|| ChainError::Decode("the receipt holds no consent change event".into()))
}

/// `ConsentRegistry.recordGrant` call data (both backends send the same bytes).
pub fn grant_call(
    consent_id: [u8; 32],
    patient: [u8; 32],
    commitment: [u8; 32],
    authorization: [u8; 32],
) -> Vec<u8> {
    use alloy::sol_types::SolCall;
    ConsentRegistry::recordGrantCall {
        consentId: consent_id.into(),
        patient: patient.into(),
        commitment: commitment.into(),
        authorization: authorization.into(),
    }
    .abi_encode()
}

/// `ConsentRegistry.recordRevocation` call data.
pub fn revocation_call(
    consent_id: [u8; 32],
    patient: [u8; 32],
    authorization: [u8; 32],
) -> Vec<u8> {
    use alloy::sol_types::SolCall;
    ConsentRegistry::recordRevocationCall {
        consentId: consent_id.into(),
        patient: patient.into(),
        authorization: authorization.into(),
    }
    .abi_encode()
}

/// `ConsentRegistry.consentState` call data.
pub fn consent_state_call(consent_id: [u8; 32]) -> Vec<u8> {
    use alloy::sol_types::SolCall;
    ConsentRegistry::consentStateCall {
        consentId: consent_id.into(),
    }
    .abi_encode()
}

/// The state from `consentState`'s ABI-encoded output.
pub fn consent_state_of(output: &[u8]) -> Result<OnChainConsent, ChainError> {
    use alloy::sol_types::SolCall;
    let s = ConsentRegistry::consentStateCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    Ok(OnChainConsent {
        patient: s.patient.0,
        commitment: s.commitment.0,
        version: s.version,
        active: s.active,
    })
}
