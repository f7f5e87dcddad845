// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {IConsentRegistry} from "../src/IConsentRegistry.sol";
import {ConsentRegistry} from "../src/ConsentRegistry.sol";

/// @title ConsentRegistryHandler
/// @notice Drives a {ConsentRegistry} with random grants and revocations over a few consent ids
///         and patients, from the registrar and from strangers, for the invariant fuzzer. Every
///         call's outcome (new version or exact error) is predicted from a shadow copy of the
///         registry.
contract ConsentRegistryHandler is Test {
    /// @notice Shadow state of one consent.
    /// @param patient Patient commitment recorded for the consent (zero while unknown).
    /// @param commitment Last granted commitment.
    /// @param version Number of changes recorded.
    /// @param active Whether the consent is granted now.
    struct Shadow {
        bytes32 patient;
        bytes32 commitment;
        uint64 version;
        bool active;
    }

    /// @notice The registry under test.
    ConsentRegistry public immutable registry;
    /// @notice The registry's registrar.
    address public immutable registrar;
    /// @notice Consent ids the handler chooses from; the last one is zero (always rejected).
    bytes32[5] internal _ids;
    /// @notice Patients the handler chooses from.
    bytes32[3] internal _patients;
    /// @notice Shadow state of each consent id.
    mapping(bytes32 consentId => Shadow shadow) internal _shadows;
    /// @notice Consent ids that were granted at least once, in order of first grant.
    bytes32[] public touched;
    /// @notice Number of calls that recorded a change.
    uint256 public successfulChanges;

    /// @notice Creates the handler and the registry it drives.
    constructor() {
        registrar = makeAddr("registrar");
        registry = new ConsentRegistry(registrar);
        for (uint256 i = 0; i < 4; i++) {
            _ids[i] = keccak256(abi.encode("consent", i));
        }
        for (uint256 i = 0; i < _patients.length; i++) {
            _patients[i] = keccak256(abi.encode("patient", i));
        }
    }

    /// @notice Number of consent ids that were granted at least once.
    /// @return The count.
    function touchedCount() external view returns (uint256) {
        return touched.length;
    }

    /// @notice Shadow state of a consent id.
    /// @param consentId Consent id.
    /// @return patient Recorded patient.
    /// @return commitment Last granted commitment.
    /// @return version Number of changes recorded.
    /// @return active Whether the consent is granted now.
    function shadow(bytes32 consentId)
        external
        view
        returns (bytes32 patient, bytes32 commitment, uint64 version, bool active)
    {
        Shadow storage s = _shadows[consentId];
        return (s.patient, s.commitment, s.version, s.active);
    }

    /// @notice Records a grant as the registrar and checks its outcome against the shadow.
    /// @param idSeed Fuzzed choice of consent id.
    /// @param patientSeed Fuzzed choice of patient (mostly the recorded one, if any).
    /// @param commitment Fuzzed commitment (sometimes forced to zero).
    /// @param authorization Fuzzed authorisation.
    function grant(uint8 idSeed, uint8 patientSeed, bytes32 commitment, bytes32 authorization) external {
        bytes32 consentId = _ids[idSeed % _ids.length];
        Shadow storage s = _shadows[consentId];
        bytes32 patient = _pickPatient(s.patient, patientSeed);
        if (uint256(commitment) % 8 == 0) commitment = bytes32(0);

        bytes memory expectedError;
        if (consentId == bytes32(0) || commitment == bytes32(0)) {
            expectedError = abi.encodeWithSelector(IConsentRegistry.ZeroId.selector);
        } else if (s.patient != bytes32(0) && s.patient != patient) {
            expectedError =
                abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, consentId, s.patient, patient);
        }

        vm.prank(registrar);
        try registry.recordGrant(consentId, patient, commitment, authorization) returns (uint64 version) {
            assertEq(expectedError.length, 0, "accepted a grant that should fail");
            assertEq(version, s.version + 1, "version");
            if (s.version == 0) touched.push(consentId);
            s.patient = patient;
            s.commitment = commitment;
            s.version = version;
            s.active = true;
            successfulChanges += 1;
        } catch (bytes memory reason) {
            assertTrue(expectedError.length != 0, "rejected a valid grant");
            assertEq(reason, expectedError, "revert data");
        }
    }

    /// @notice Records a revocation as the registrar and checks its outcome against the shadow.
    /// @param idSeed Fuzzed choice of consent id.
    /// @param patientSeed Fuzzed choice of patient (mostly the recorded one, if any).
    /// @param authorization Fuzzed authorisation.
    function revoke(uint8 idSeed, uint8 patientSeed, bytes32 authorization) external {
        bytes32 consentId = _ids[idSeed % _ids.length];
        Shadow storage s = _shadows[consentId];
        bytes32 patient = _pickPatient(s.patient, patientSeed);

        bytes memory expectedError;
        if (consentId == bytes32(0)) {
            expectedError = abi.encodeWithSelector(IConsentRegistry.ZeroId.selector);
        } else if (!s.active) {
            expectedError = abi.encodeWithSelector(IConsentRegistry.ConsentNotActive.selector, consentId);
        } else if (s.patient != patient) {
            expectedError =
                abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, consentId, s.patient, patient);
        }

        vm.prank(registrar);
        try registry.recordRevocation(consentId, patient, authorization) returns (uint64 version) {
            assertEq(expectedError.length, 0, "accepted a revocation that should fail");
            assertEq(version, s.version + 1, "version");
            s.version = version;
            s.active = false;
            successfulChanges += 1;
        } catch (bytes memory reason) {
            assertTrue(expectedError.length != 0, "rejected a valid revocation");
            assertEq(reason, expectedError, "revert data");
        }
    }

    /// @notice Tries to record a change from an address that is not the registrar; must always
    ///         fail with {IConsentRegistry.NotRegistrar}.
    /// @param caller Fuzzed caller.
    /// @param idSeed Fuzzed choice of consent id.
    /// @param asRevocation Whether to try a revocation instead of a grant.
    function changeAsStranger(address caller, uint8 idSeed, bool asRevocation) external {
        if (caller == registrar) return;
        bytes32 consentId = _ids[idSeed % _ids.length];
        bytes32 patient = _pickPatient(_shadows[consentId].patient, 0);
        vm.prank(caller);
        if (asRevocation) {
            try registry.recordRevocation(consentId, patient, bytes32(0)) {
                fail("a stranger revoked");
            } catch (bytes memory reason) {
                assertEq(reason, abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, caller), "revert");
            }
        } else {
            try registry.recordGrant(consentId, patient, keccak256("commitment"), bytes32(0)) {
                fail("a stranger granted");
            } catch (bytes memory reason) {
                assertEq(reason, abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, caller), "revert");
            }
        }
    }

    /// @dev The recorded patient three times in four (when there is one), otherwise any of the
    ///      handler's patients, so that most calls pass the patient check.
    /// @param recorded Patient recorded for the consent (zero while unknown).
    /// @param seed Fuzzed seed.
    /// @return The patient to use.
    function _pickPatient(bytes32 recorded, uint8 seed) private view returns (bytes32) {
        if (recorded != bytes32(0) && seed % 4 != 3) return recorded;
        return _patients[seed % _patients.length];
    }
}

/// @title ConsentRegistryInvariantTest
/// @notice Whatever sequence of calls happens, every change is counted once: the change count is
///         the sum of the versions of the touched consents, and each consent's state matches the
///         accepted changes.
contract ConsentRegistryInvariantTest is Test {
    /// @notice The handler the fuzzer calls.
    ConsentRegistryHandler internal handler;

    /// @notice Deploys the handler and targets it.
    function setUp() public {
        handler = new ConsentRegistryHandler();
        targetContract(address(handler));
    }

    /// @notice The change count equals the sum of versions over the consents the handler touched,
    ///         and the number of successful calls.
    function invariant_changeCountEqualsSumOfVersions() public view {
        ConsentRegistry registry = handler.registry();
        uint256 sum;
        uint256 count = handler.touchedCount();
        for (uint256 i = 0; i < count; i++) {
            (,, uint64 version,,) = registry.consentState(handler.touched(i));
            sum += version;
        }
        assertEq(registry.changeCount(), sum, "changeCount vs versions");
        assertEq(registry.changeCount(), handler.successfulChanges(), "changeCount vs successful calls");
    }

    /// @notice Every touched consent's state matches the shadow copy.
    function invariant_statesMatchShadow() public view {
        ConsentRegistry registry = handler.registry();
        uint256 count = handler.touchedCount();
        for (uint256 i = 0; i < count; i++) {
            bytes32 consentId = handler.touched(i);
            (bytes32 patient, bytes32 commitment, uint64 version, bool active,) = registry.consentState(consentId);
            (bytes32 shadowPatient, bytes32 shadowCommitment, uint64 shadowVersion, bool shadowActive) =
                handler.shadow(consentId);
            assertEq(patient, shadowPatient, "patient");
            assertEq(commitment, shadowCommitment, "commitment");
            assertEq(version, shadowVersion, "version");
            assertEq(active, shadowActive, "active");
            assertTrue(patient != bytes32(0) && commitment != bytes32(0), "touched consent has ids");
        }
    }

    /// @notice The registrar never changes without a transfer.
    function invariant_registrarUnchanged() public view {
        assertEq(handler.registry().registrar(), handler.registrar(), "registrar");
    }
}
