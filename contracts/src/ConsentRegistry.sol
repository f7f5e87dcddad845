// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";

/// @title ConsentRegistry
/// @author MedLedger
/// @notice Append-only history of consent grants and revocations over salted commitments,
///         written by a single registrar.
/// @dev See {IConsentRegistry} for the semantics of every function, event and error.
contract ConsentRegistry is IConsentRegistry {
    /// @notice Latest state of one consent.
    /// @dev Packed into three storage slots: version, updatedAt and active share the last one.
    /// @param patient Salted commitment of the patient; zero while the consent is unknown.
    /// @param commitment Salted HMAC of the last granted Consent version.
    /// @param version Number of changes recorded for the consent.
    /// @param updatedAt Timestamp of the block of the latest change.
    /// @param active Whether the consent is granted now.
    struct Consent {
        bytes32 patient;
        bytes32 commitment;
        uint64 version;
        uint64 updatedAt;
        bool active;
    }

    /// @dev Address allowed to record consent changes.
    address private _registrar;

    /// @dev Latest state of each consent.
    mapping(bytes32 consentId => Consent consent) private _consents;

    /// @dev Number of changes recorded over all consents.
    uint256 private _changeCount;

    /// @notice Creates an empty registry.
    /// @dev Reverts with {ZeroAddress} when `registrar` is the zero address. Emits
    ///      {RegistrarTransferred} from the zero address, so the registrar history is complete.
    /// @param registrar Address allowed to record consent changes.
    constructor(address registrar) {
        if (registrar == address(0)) revert ZeroAddress();
        _registrar = registrar;
        emit RegistrarTransferred(address(0), registrar);
    }

    /// @dev Restricts a function to the registrar.
    modifier onlyRegistrar() {
        if (msg.sender != _registrar) revert NotRegistrar(msg.sender);
        _;
    }

    /// @inheritdoc IConsentRegistry
    function recordGrant(bytes32 consentId, bytes32 patient, bytes32 commitment, bytes32 authorization)
        external
        onlyRegistrar
        returns (uint64 version)
    {
        if (consentId == bytes32(0) || patient == bytes32(0) || commitment == bytes32(0)) revert ZeroId();
        Consent storage consent = _consents[consentId];
        bytes32 recorded = consent.patient;
        if (recorded == bytes32(0)) {
            consent.patient = patient;
        } else if (recorded != patient) {
            revert PatientMismatch(consentId, recorded, patient);
        }
        version = consent.version + 1;
        consent.commitment = commitment;
        consent.version = version;
        consent.updatedAt = uint64(block.timestamp);
        consent.active = true;
        _changeCount += 1;
        emit ConsentGranted(consentId, patient, version, commitment, authorization);
    }

    /// @inheritdoc IConsentRegistry
    function recordRevocation(bytes32 consentId, bytes32 patient, bytes32 authorization)
        external
        onlyRegistrar
        returns (uint64 version)
    {
        if (consentId == bytes32(0) || patient == bytes32(0)) revert ZeroId();
        Consent storage consent = _consents[consentId];
        if (!consent.active) revert ConsentNotActive(consentId);
        bytes32 recorded = consent.patient;
        if (recorded != patient) revert PatientMismatch(consentId, recorded, patient);
        version = consent.version + 1;
        consent.version = version;
        consent.updatedAt = uint64(block.timestamp);
        consent.active = false;
        _changeCount += 1;
        emit ConsentRevoked(consentId, patient, version, authorization);
    }

    /// @inheritdoc IConsentRegistry
    function consentState(bytes32 consentId)
        external
        view
        returns (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt)
    {
        Consent storage consent = _consents[consentId];
        return (consent.patient, consent.commitment, consent.version, consent.active, consent.updatedAt);
    }

    /// @inheritdoc IConsentRegistry
    function changeCount() external view returns (uint256) {
        return _changeCount;
    }

    /// @inheritdoc IConsentRegistry
    function registrar() external view returns (address) {
        return _registrar;
    }

    /// @inheritdoc IConsentRegistry
    function transferRegistrar(address next) external onlyRegistrar {
        if (next == address(0)) revert ZeroAddress();
        address previous = _registrar;
        _registrar = next;
        emit RegistrarTransferred(previous, next);
    }
}
