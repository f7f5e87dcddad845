// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsentRegistry
/// @author MedLedger
/// @notice Append-only history of patient consent changes (grants and revocations). Only salted
///         commitments are recorded, never identities or consent content in clear:
///         - `consentId` is a salted commitment of the FHIR Consent resource's id;
///         - `patient` is a salted commitment of the patient the consent belongs to;
///         - `commitment` is a salted HMAC of the canonical form of one version of the Consent;
///         - `authorization` is a commitment to the patient's authorisation of the change (e.g.
///           the signed request that made it), so that the change can later be proven to have
///           been authorised by the patient without revealing the authorisation itself.
/// @dev Deployed on the private chain. A single registrar records the changes. Every grant and
///      every revocation of a consent is one change: it increments that consent's version (which
///      starts at 1 with the first grant) and emits an event, so the events are the complete
///      history and the state only holds the latest change. A consent never changes patient. A
///      grant creates a consent, replaces the granted version of an active one, or re-activates a
///      revoked one; only an active consent can be revoked.
interface IConsentRegistry {
    /// @notice A consent was granted: created, updated to a new version, or re-activated.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @param patient Salted commitment of the patient.
    /// @param version The consent's version after this change (1 for its first grant).
    /// @param commitment Salted HMAC of the canonical granted Consent version.
    /// @param authorization Commitment to the patient's authorisation of this change.
    event ConsentGranted(
        bytes32 indexed consentId, bytes32 indexed patient, uint64 version, bytes32 commitment, bytes32 authorization
    );

    /// @notice An active consent was revoked.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @param patient Salted commitment of the patient.
    /// @param version The consent's version after this change.
    /// @param authorization Commitment to the patient's authorisation of this change.
    event ConsentRevoked(bytes32 indexed consentId, bytes32 indexed patient, uint64 version, bytes32 authorization);

    /// @notice The registrar role passed from one address to another.
    /// @param previous Address that was the registrar until now (the zero address at deployment).
    /// @param next Address that is the registrar from now on.
    event RegistrarTransferred(address indexed previous, address indexed next);

    /// @notice The caller is not the registrar.
    /// @param caller Address that attempted the call.
    error NotRegistrar(address caller);

    /// @notice The consent id, the patient or the commitment is zero.
    error ZeroId();

    /// @notice The given patient is not the one the consent was first granted for.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @param recorded Patient commitment recorded for the consent.
    /// @param given Patient commitment given in the call.
    error PatientMismatch(bytes32 consentId, bytes32 recorded, bytes32 given);

    /// @notice The consent is unknown or already revoked.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    error ConsentNotActive(bytes32 consentId);

    /// @notice The zero address was given where an account is required.
    error ZeroAddress();

    /// @notice Records a grant of a consent. Only the registrar may call it.
    /// @dev Creates the consent if it is unknown, replaces the granted version if it is active,
    ///      and re-activates it if it was revoked. Every call is a change, even one that grants the
    ///      same commitment again. Reverts with {NotRegistrar} for any other caller, with {ZeroId}
    ///      when `consentId`, `patient` or `commitment` is zero, and with {PatientMismatch} when
    ///      the consent is known for another patient. Emits {ConsentGranted}.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @param patient Salted commitment of the patient.
    /// @param commitment Salted HMAC of the canonical granted Consent version.
    /// @param authorization Commitment to the patient's authorisation of this change.
    /// @return version The consent's version after this change (1 for its first grant).
    function recordGrant(bytes32 consentId, bytes32 patient, bytes32 commitment, bytes32 authorization)
        external
        returns (uint64 version);

    /// @notice Records the revocation of an active consent. Only the registrar may call it.
    /// @dev Keeps the last granted commitment in the state. Reverts with {NotRegistrar} for any
    ///      other caller, with {ZeroId} when `consentId` or `patient` is zero, with
    ///      {ConsentNotActive} when the consent is unknown or already revoked, and with
    ///      {PatientMismatch} when `patient` is not the consent's patient (checked in this
    ///      order). Emits {ConsentRevoked}.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @param patient Salted commitment of the patient.
    /// @param authorization Commitment to the patient's authorisation of this change.
    /// @return version The consent's version after this change.
    function recordRevocation(bytes32 consentId, bytes32 patient, bytes32 authorization)
        external
        returns (uint64 version);

    /// @notice Reads the latest state of a consent.
    /// @dev Every field is zero for an unknown consent id.
    /// @param consentId Salted commitment of the FHIR Consent's id.
    /// @return patient Salted commitment of the patient.
    /// @return commitment Salted HMAC of the last granted Consent version (kept after a
    ///         revocation).
    /// @return version Number of changes recorded for the consent (0 when unknown).
    /// @return active Whether the consent is granted now (false after a revocation).
    /// @return updatedAt Timestamp (block.timestamp, seconds since the Unix epoch) of the block
    ///         of the latest change.
    function consentState(bytes32 consentId)
        external
        view
        returns (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt);

    /// @notice Total number of changes recorded, over all consents.
    /// @return Number of grants plus number of revocations recorded.
    function changeCount() external view returns (uint256);

    /// @notice Address allowed to record consent changes.
    /// @return The current registrar.
    function registrar() external view returns (address);

    /// @notice Hands the registrar role to another address. Only the registrar may call it.
    /// @dev Reverts with {NotRegistrar} for any other caller and with {ZeroAddress} when `next` is
    ///      the zero address. Emits {RegistrarTransferred}.
    /// @param next Address that becomes the registrar.
    function transferRegistrar(address next) external;
}
