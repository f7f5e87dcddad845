// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistryFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IConsentRegistry} from "../src/IConsentRegistry.sol";
import {ConsentRegistry} from "../src/ConsentRegistry.sol";

/// @title ConsentRegistryGrantTest
/// @notice Construction of {ConsentRegistry} and {ConsentRegistry.recordGrant}.
contract ConsentRegistryGrantTest is ConsentRegistryFixture {
    /// @notice The constructor argument becomes the registrar and nothing is recorded yet.
    function test_constructor_setsRegistrarAndEmptyHistory() public view {
        assertEq(registry.registrar(), registrar, "registrar");
        assertEq(registry.changeCount(), 0, "changeCount");
    }

    /// @notice The constructor records the initial registrar as a transfer from address 0.
    function test_constructor_emitsRegistrarTransferred() public {
        vm.recordLogs();
        ConsentRegistry created = new ConsentRegistry(registrar);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(created), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IConsentRegistry.RegistrarTransferred.selector, "event");
        assertEq(logs[0].topics[1], bytes32(0), "previous");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(registrar))), "next");
        assertEq(logs[0].data.length, 0, "data");
    }

    /// @notice The constructor rejects the zero address.
    function test_constructor_revertsWhenRegistrarIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroAddress.selector));
        new ConsentRegistry(address(0));
    }

    /// @notice A first grant creates an active consent at version 1, stamped with the block time.
    function test_recordGrant_createsConsent() public {
        vm.warp(1_767_225_600);
        assertEq(grantAs(CONSENT_1, ALICE, 1), 1, "returned version");

        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(commitment, commitmentFor(CONSENT_1, 1), "commitment");
        assertEq(version, 1, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, 1_767_225_600, "updatedAt");
        assertEq(registry.changeCount(), 1, "changeCount");
    }

    /// @notice A grant emits ConsentGranted with the ids as topics and the version, commitment
    ///         and authorisation as data.
    function test_recordGrant_emitsConsentGranted() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.recordLogs();
        grantAs(CONSENT_1, ALICE, 2);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(registry), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IConsentRegistry.ConsentGranted.selector, "event");
        assertEq(logs[0].topics[1], CONSENT_1, "consentId");
        assertEq(logs[0].topics[2], ALICE, "patient");
        assertEq(
            logs[0].data,
            abi.encode(uint64(2), commitmentFor(CONSENT_1, 2), authorizationFor(CONSENT_1, 2)),
            "version, commitment, authorization"
        );
    }

    /// @notice The event matches what forge expects for the same emit.
    function test_recordGrant_emitsExpectedEvent() public {
        vm.expectEmit(address(registry));
        emit IConsentRegistry.ConsentGranted(
            CONSENT_1, ALICE, 1, commitmentFor(CONSENT_1, 7), authorizationFor(CONSENT_1, 7)
        );
        grantAs(CONSENT_1, ALICE, 7);
    }

    /// @notice Granting an active consent again replaces the granted version and counts a change.
    function test_recordGrant_updatesActiveConsent() public {
        vm.warp(1_000);
        grantAs(CONSENT_1, ALICE, 1);
        vm.warp(2_000);
        assertEq(grantAs(CONSENT_1, ALICE, 2), 2, "returned version");

        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(commitment, commitmentFor(CONSENT_1, 2), "commitment");
        assertEq(version, 2, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, 2_000, "updatedAt");
        assertEq(registry.changeCount(), 2, "changeCount");
    }

    /// @notice Granting the same commitment again is still a recorded change.
    function test_recordGrant_sameCommitmentIsAChange() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.recordLogs();
        assertEq(grantAs(CONSENT_1, ALICE, 1), 2, "returned version");
        assertEq(vm.getRecordedLogs().length, 1, "event emitted");
        assertEq(registry.changeCount(), 2, "changeCount");
    }

    /// @notice A grant after a revocation re-activates the consent with the new version.
    function test_recordGrant_reactivatesRevokedConsent() public {
        grantAs(CONSENT_1, ALICE, 1);
        revokeAs(CONSENT_1, ALICE, 2);
        vm.warp(9_999);
        assertEq(grantAs(CONSENT_1, ALICE, 3), 3, "returned version");

        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(commitment, commitmentFor(CONSENT_1, 3), "commitment");
        assertEq(version, 3, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, 9_999, "updatedAt");
    }

    /// @notice Versions are counted per consent; one patient can hold several consents.
    function test_recordGrant_countsVersionsPerConsent() public {
        assertEq(grantAs(CONSENT_1, ALICE, 1), 1, "first consent, first grant");
        assertEq(grantAs(CONSENT_2, ALICE, 1), 1, "second consent, first grant");
        assertEq(grantAs(CONSENT_1, ALICE, 2), 2, "first consent, second grant");
        (,, uint64 version,,) = registry.consentState(CONSENT_2);
        assertEq(version, 1, "second consent untouched");
        assertEq(registry.changeCount(), 3, "changeCount");
    }

    /// @notice The authorisation commitment may be zero; it is only carried in the event.
    function test_recordGrant_acceptsZeroAuthorization() public {
        vm.expectEmit(address(registry));
        emit IConsentRegistry.ConsentGranted(CONSENT_1, ALICE, 1, commitmentFor(CONSENT_1, 1), bytes32(0));
        vm.prank(registrar);
        registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), bytes32(0));
    }

    /// @notice Only the registrar may record grants.
    function test_recordGrant_revertsWhenCallerIsNotRegistrar() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, stranger));
        vm.prank(stranger);
        registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), authorizationFor(CONSENT_1, 1));
    }

    /// @notice The consent id cannot be zero.
    function test_recordGrant_revertsWhenConsentIdIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        grantAs(bytes32(0), ALICE, 1);
    }

    /// @notice The patient cannot be zero.
    function test_recordGrant_revertsWhenPatientIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        grantAs(CONSENT_1, bytes32(0), 1);
    }

    /// @notice The commitment cannot be zero.
    function test_recordGrant_revertsWhenCommitmentIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        vm.prank(registrar);
        registry.recordGrant(CONSENT_1, ALICE, bytes32(0), authorizationFor(CONSENT_1, 1));
    }

    /// @notice A consent never changes patient.
    function test_recordGrant_revertsWhenPatientDiffers() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, CONSENT_1, ALICE, BOB));
        grantAs(CONSENT_1, BOB, 2);
    }

    /// @notice Not even a revocation frees a consent for another patient.
    function test_recordGrant_revertsWhenPatientDiffersAfterRevocation() public {
        grantAs(CONSENT_1, ALICE, 1);
        revokeAs(CONSENT_1, ALICE, 2);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, CONSENT_1, ALICE, BOB));
        grantAs(CONSENT_1, BOB, 3);
    }

    /// @notice A failed grant leaves the consent and the change count unchanged.
    function test_recordGrant_revertsWithoutChangingState() public {
        vm.warp(1_000);
        grantAs(CONSENT_1, ALICE, 1);
        vm.warp(2_000);
        vm.prank(registrar);
        try registry.recordGrant(CONSENT_1, BOB, commitmentFor(CONSENT_1, 2), authorizationFor(CONSENT_1, 2)) {
            fail("grant for another patient succeeded");
        } catch {}
        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, ALICE, "patient");
        assertEq(commitment, commitmentFor(CONSENT_1, 1), "commitment");
        assertEq(version, 1, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, 1_000, "updatedAt");
        assertEq(registry.changeCount(), 1, "changeCount");
    }

    /// @notice Any first grant with non-zero ids is stored exactly and announced.
    /// @param consentId Fuzzed consent id.
    /// @param patient Fuzzed patient.
    /// @param commitment Fuzzed commitment.
    /// @param authorization Fuzzed authorisation.
    /// @param timestamp Fuzzed block timestamp.
    function testFuzz_recordGrant_storesAnyGrant(
        bytes32 consentId,
        bytes32 patient,
        bytes32 commitment,
        bytes32 authorization,
        uint64 timestamp
    ) public {
        vm.assume(consentId != bytes32(0) && patient != bytes32(0) && commitment != bytes32(0));
        vm.warp(timestamp);
        vm.expectEmit(address(registry));
        emit IConsentRegistry.ConsentGranted(consentId, patient, 1, commitment, authorization);
        vm.prank(registrar);
        assertEq(registry.recordGrant(consentId, patient, commitment, authorization), 1, "version");

        (bytes32 storedPatient, bytes32 storedCommitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(consentId);
        assertEq(storedPatient, patient, "patient");
        assertEq(storedCommitment, commitment, "commitment");
        assertEq(version, 1, "version");
        assertTrue(active, "active");
        assertEq(updatedAt, timestamp, "updatedAt");
    }

    /// @notice A grant with any zero id is rejected.
    /// @param consentId Fuzzed consent id.
    /// @param patient Fuzzed patient.
    /// @param commitment Fuzzed commitment.
    /// @param which Fuzzed choice of the field that is zeroed.
    function testFuzz_recordGrant_revertsWhenAnyIdIsZero(
        bytes32 consentId,
        bytes32 patient,
        bytes32 commitment,
        uint8 which
    ) public {
        which = uint8(bound(which, 0, 2));
        if (which == 0) consentId = bytes32(0);
        if (which == 1) patient = bytes32(0);
        if (which == 2) commitment = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroId.selector));
        vm.prank(registrar);
        registry.recordGrant(consentId, patient, commitment, bytes32(0));
        assertEq(registry.changeCount(), 0, "changeCount");
    }

    /// @notice Any other patient is rejected for a consent, with both patients in the error.
    /// @param other Fuzzed other patient.
    function testFuzz_recordGrant_revertsWhenPatientDiffers(bytes32 other) public {
        vm.assume(other != ALICE && other != bytes32(0));
        grantAs(CONSENT_1, ALICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.PatientMismatch.selector, CONSENT_1, ALICE, other));
        grantAs(CONSENT_1, other, 2);
    }

    /// @notice No address other than the registrar can record grants.
    /// @param caller Fuzzed caller.
    function testFuzz_recordGrant_revertsWhenCallerIsNotRegistrar(address caller) public {
        vm.assume(caller != registrar);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, caller));
        vm.prank(caller);
        registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), authorizationFor(CONSENT_1, 1));
        assertEq(registry.changeCount(), 0, "changeCount");
    }
}
