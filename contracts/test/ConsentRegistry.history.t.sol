// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistryFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IConsentRegistry} from "../src/IConsentRegistry.sol";

/// @title ConsentRegistryHistoryTest
/// @notice {ConsentRegistry.consentState} and {ConsentRegistry.changeCount} over sequences of
///         grants and revocations.
contract ConsentRegistryHistoryTest is ConsentRegistryFixture {
    /// @notice An unknown consent reads as all zero.
    function test_consentState_isZeroForUnknownConsent() public view {
        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(CONSENT_1);
        assertEq(patient, bytes32(0), "patient");
        assertEq(commitment, bytes32(0), "commitment");
        assertEq(version, 0, "version");
        assertFalse(active, "active");
        assertEq(updatedAt, 0, "updatedAt");
    }

    /// @notice A grant, a revocation and a new grant give versions 1, 2 and 3, and three events
    ///         that together are the consent's history.
    function test_history_grantRevokeGrant() public {
        vm.recordLogs();
        assertEq(grantAs(CONSENT_1, ALICE, 1), 1, "first grant");
        assertEq(revokeAs(CONSENT_1, ALICE, 2), 2, "revocation");
        assertEq(grantAs(CONSENT_1, ALICE, 3), 3, "second grant");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 3, "log count");
        assertEq(logs[0].topics[0], IConsentRegistry.ConsentGranted.selector, "first event");
        assertEq(logs[1].topics[0], IConsentRegistry.ConsentRevoked.selector, "second event");
        assertEq(logs[2].topics[0], IConsentRegistry.ConsentGranted.selector, "third event");
        assertEq(registry.changeCount(), 3, "changeCount");
    }

    /// @notice The change count adds up the changes of every consent.
    function test_changeCount_countsAllConsents() public {
        grantAs(CONSENT_1, ALICE, 1);
        grantAs(CONSENT_2, BOB, 1);
        revokeAs(CONSENT_2, BOB, 2);
        grantAs(CONSENT_1, ALICE, 3);
        assertEq(registry.changeCount(), 4, "changeCount");
    }

    /// @notice Failed calls are not counted.
    function test_changeCount_ignoresFailedCalls() public {
        grantAs(CONSENT_1, ALICE, 1);
        vm.startPrank(registrar);
        try registry.recordRevocation(CONSENT_2, ALICE, bytes32(0)) {
            fail("revoked an unknown consent");
        } catch {}
        try registry.recordGrant(CONSENT_1, BOB, commitmentFor(CONSENT_1, 2), bytes32(0)) {
            fail("changed the patient");
        } catch {}
        vm.stopPrank();
        assertEq(registry.changeCount(), 1, "changeCount");
    }

    /// @notice Any consent id that was never touched reads as all zero.
    /// @param consentId Fuzzed consent id.
    function testFuzz_consentState_isZeroForUnknownConsent(bytes32 consentId) public {
        vm.assume(consentId != CONSENT_1);
        grantAs(CONSENT_1, ALICE, 1);
        (bytes32 patient, bytes32 commitment, uint64 version, bool active, uint64 updatedAt) =
            registry.consentState(consentId);
        assertEq(patient, bytes32(0), "patient");
        assertEq(commitment, bytes32(0), "commitment");
        assertEq(version, 0, "version");
        assertFalse(active, "active");
        assertEq(updatedAt, 0, "updatedAt");
    }

    /// @notice In any sequence of grants and revocations of one consent, every change increments
    ///         the version by one, and the state follows the last change.
    /// @param revokes Fuzzed choices: revoke (when active) or grant at each step.
    function testFuzz_versions_countEveryGrantAndRevocation(bool[16] memory revokes) public {
        bool active;
        bytes32 lastCommitment;
        for (uint64 i = 0; i < revokes.length; i++) {
            uint64 expected = i + 1;
            if (active && revokes[i]) {
                assertEq(revokeAs(CONSENT_1, ALICE, i), expected, "revocation version");
                active = false;
            } else {
                assertEq(grantAs(CONSENT_1, ALICE, i), expected, "grant version");
                active = true;
                lastCommitment = commitmentFor(CONSENT_1, i);
            }
            (bytes32 patient, bytes32 commitment, uint64 version, bool isActive,) = registry.consentState(CONSENT_1);
            assertEq(patient, ALICE, "patient");
            assertEq(commitment, lastCommitment, "commitment");
            assertEq(version, expected, "version");
            assertEq(isActive, active, "active");
            assertEq(registry.changeCount(), expected, "changeCount");
        }
    }

    /// @notice Over changes spread across several consents, the change count is the sum of their
    ///         versions.
    /// @param steps Fuzzed steps: which consent (low bits) and whether to revoke (bit 7).
    function testFuzz_changeCount_equalsSumOfVersions(uint8[24] memory steps) public {
        bytes32[3] memory ids = [CONSENT_1, CONSENT_2, keccak256("salt-c3|Consent/consent-3")];
        bytes32[3] memory patients = [ALICE, ALICE, BOB];
        for (uint256 i = 0; i < steps.length; i++) {
            uint256 which = steps[i] % 3;
            (,,, bool active,) = registry.consentState(ids[which]);
            if (active && steps[i] >= 128) {
                revokeAs(ids[which], patients[which], i);
            } else {
                grantAs(ids[which], patients[which], i);
            }
        }
        uint256 sum;
        for (uint256 j = 0; j < ids.length; j++) {
            (,, uint64 version,,) = registry.consentState(ids[j]);
            sum += version;
        }
        assertEq(registry.changeCount(), sum, "changeCount");
        assertEq(sum, steps.length, "one version per step");
    }
}
