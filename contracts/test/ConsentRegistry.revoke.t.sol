// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistryFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IConsentRegistry} from "../src/IConsentRegistry.sol";

/// @title ConsentRegistryRevokeTest
/// @notice {ConsentRegistry.recordRevocation}.
contract ConsentRegistryRevokeTest is ConsentRegistryFixture {
    /// @notice A revocation deactivates the consent at the next version and keeps the patient and
    ///         the last granted commitment.
    function test_recordRevocation_deactivatesConsent() public {
        vm.warp(1_000);
        grantAs(CONSENT_1, ALICE, 1);
        vm.warp(2_000);
        assertEq(revokeAs(CONSENT_1, ALICE, 2), 2, "returned version");

        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(commitment, commitmentFor(CONSENT_1, 1), "commitment");
        assertEq(version, 2, "version");
        assertFalse(active, "active");
        assertEq(updatedAt, 2_000, "updatedAt");
        assertEq(registry.changeCount(), 2, "changeCount");
    }

    /// @notice A revocation emits ConsentRevoked with the ids as topics and the version and
    ///         authorisation as data.
    function test_recordRevocation_emitsConsentRevoked() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.recordLogs();
        revokeAs(CONSENT_1, ALICE, 2);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(registry), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IConsentRegistry.ConsentRevoked.selector, "event");
        assertEq(logs[0].topics[1], CONSENT_1, "consentId");
        assertEq(logs[0].topics[2], ALICE, "patient");
        assertEq(logs[0].data, abi.encode(uint64(2), authorizationFor(CONSENT_1, 2)), "version, authorization");
    }

    /// @notice The event matches what forge expects for the same emit.
    function test_recordRevocation_emitsExpectedEvent() public {
        grantAs(CONSENT_1, ALICE, 1);
        grantAs(CONSENT_1, ALICE, 2);
        vm.expectEmit(address(registry));
        emit IConsentRegistry.ConsentRevoked(CONSENT_1, ALICE, 3, authorizationFor(CONSENT_1, 3));
        revokeAs(CONSENT_1, ALICE, 3);
    }

    /// @notice Revoking one consent leaves the patient's other consents active.
    function test_recordRevocation_leavesOtherConsents() public {
        grantAs(CONSENT_1, ALICE, 1);
        grantAs(CONSENT_2, ALICE, 1);
        revokeAs(CONSENT_1, ALICE, 2);
        (,, uint64 version, bool active,) = registry.consentState(CONSENT_2);
        assertEq(version, 1, "other version");
        assertTrue(active, "other active");
    }

    /// @notice Only the registrar may record revocations.
    function test_recordRevocation_revertsWhenCallerIsNotRegistrar() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, stranger));
        vm.prank(stranger);
        registry.recordRevocation(CONSENT_1, ALICE, authorizationFor(CONSENT_1, 2));
    }

    /// @notice The consent id cannot be zero.
    function test_recordRevocation_revertsWhenConsentIdIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        revokeAs(bytes32(0), ALICE, 1);
    }

    /// @notice The patient cannot be zero.
    function test_recordRevocation_revertsWhenPatientIsZero() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        revokeAs(CONSENT_1, bytes32(0), 2);
    }

    /// @notice An unknown consent cannot be revoked.
    function test_recordRevocation_revertsWhenConsentUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNotActive.selector, CONSENT_1));
        revokeAs(CONSENT_1, ALICE, 1);
    }

    /// @notice A revoked consent cannot be revoked again.
    function test_recordRevocation_revertsWhenAlreadyRevoked() public {
        grantAs(CONSENT_1, ALICE, 1);
        revokeAs(CONSENT_1, ALICE, 2);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNotActive.selector, CONSENT_1));
        revokeAs(CONSENT_1, ALICE, 3);
    }

    /// @notice Only the consent's patient can be named in its revocation.
    function test_recordRevocation_revertsWhenPatientDiffers() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, CONSENT_1, ALICE, BOB));
        revokeAs(CONSENT_1, BOB, 2);
    }

    /// @notice An inactive consent is reported as such before the patient is compared.
    function test_recordRevocation_revertsWithNotActiveBeforePatientMismatch() public {
        grantAs(CONSENT_1, ALICE, 1);
        revokeAs(CONSENT_1, ALICE, 2);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNotActive.selector, CONSENT_1));
        revokeAs(CONSENT_1, BOB, 3);
    }

    /// @notice A failed revocation leaves the consent and the change count unchanged.
    function test_recordRevocation_revertsWithoutChangingState() public {
        vm.warp(1_000);
        grantAs(CONSENT_1, ALICE, 1);
        vm.warp(2_000);
        vm.prank(registrar);
        try registry.recordRevocation(CONSENT_1, BOB, authorizationFor(CONSENT_1, 2)) {
            fail("revocation for another patient succeeded");
        } catch {}
        (bytes32 patient,, uint64 version, bool active, uint64 updatedAt) = registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(version, 1, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, 1_000, "updatedAt");
        assertEq(registry.changeCount(), 1, "changeCount");
    }

    /// @notice Any active consent can be revoked by naming its patient, with any authorisation.
    /// @param consentId Fuzzed consent id.
    /// @param patient Fuzzed patient.
    /// @param authorization Fuzzed authorisation.
    /// @param timestamp Fuzzed block timestamp.
    function testFuzz_recordRevocation_revokesAnyActiveConsent(
        bytes32 consentId,
        bytes32 patient,
        bytes32 authorization,
        uint64 timestamp
    ) public {
        vm.assume(consentId != bytes32(0) && patient != bytes32(0));
        grantAs(consentId, patient, 1);
        vm.warp(timestamp);
        vm.expectEmit(address(registry));
        emit IConsentRegistry.ConsentRevoked(consentId, patient, 2, authorization);
        vm.prank(registrar);
        assertEq(registry.recordRevocation(consentId, patient, authorization), 2, "version");
        (,,, bool active, uint64 updatedAt) = registry.consentState(consentId);
        assertFalse(active, "active");
        assertEq(updatedAt, timestamp, "updatedAt");
    }

    /// @notice A consent that was never granted cannot be revoked, whatever the ids.
    /// @param consentId Fuzzed consent id.
    /// @param patient Fuzzed patient.
    function testFuzz_recordRevocation_revertsWhenConsentUnknown(bytes32 consentId, bytes32 patient) public {
        vm.assume(consentId != bytes32(0) && patient != bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentNotActive.selector, consentId));
        revokeAs(consentId, patient, 1);
        assertEq(registry.changeCount(), 0, "changeCount");
    }

    /// @notice No address other than the registrar can record revocations.
    /// @param caller Fuzzed caller.
    function testFuzz_recordRevocation_revertsWhenCallerIsNotRegistrar(address caller) public {
        vm.assume(caller != registrar);
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, caller));
        vm.prank(caller);
        registry.recordRevocation(CONSENT_1, ALICE, authorizationFor(CONSENT_1, 2));
        (,,, bool active,) = registry.consentState(CONSENT_1);
        assertTrue(active, "still active");
    }
}
