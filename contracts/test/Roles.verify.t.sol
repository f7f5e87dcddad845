// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RolesFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IRoles, ROLE_PATIENT, ROLE_PRACTITIONER, MAX_ROLE} from "../src/IRoles.sol";

/// @title RolesVerifyTest
/// @notice {Roles.setPractitionerVerified} and {Roles.isVerified}.
contract RolesVerifyTest is RolesFixture {
    /// @notice Nobody is verified at first, practitioner or not.
    function test_isVerified_falseByDefault() public {
        assertFalse(roles.isVerified(BOB), "unknown account");
        grantAs(BOB, ROLE_PRACTITIONER);
        assertFalse(roles.isVerified(BOB), "unverified practitioner");
    }

    /// @notice An authority verifies a practitioner and the event names it.
    function test_setPractitionerVerified_verifiesAndEmits() public {
        grantAs(BOB, ROLE_PRACTITIONER);
        vm.expectEmit(address(roles));
        emit IRoles.PractitionerVerified(BOB, true, authority);
        vm.prank(authority);
        roles.setPractitionerVerified(BOB, true);
        assertTrue(roles.isVerified(BOB), "verified");
        assertFalse(roles.isVerified(ALICE), "other account");
    }

    /// @notice An authority can clear a verification again.
    function test_setPractitionerVerified_clearsVerification() public {
        makeVerifiedPractitioner(BOB);
        vm.expectEmit(address(roles));
        emit IRoles.PractitionerVerified(BOB, false, authority);
        vm.prank(authority);
        roles.setPractitionerVerified(BOB, false);
        assertFalse(roles.isVerified(BOB), "cleared");
        assertTrue(roles.hasRole(BOB, ROLE_PRACTITIONER), "role kept");
    }

    /// @notice Setting the current value again changes nothing and emits nothing.
    function test_setPractitionerVerified_isNoOpWhenUnchanged() public {
        makeVerifiedPractitioner(BOB);
        vm.recordLogs();
        vm.prank(authority);
        roles.setPractitionerVerified(BOB, true);
        assertEq(vm.getRecordedLogs().length, 0, "no event");
        assertTrue(roles.isVerified(BOB), "still verified");
    }

    /// @notice Only practitioners can be verified.
    function test_setPractitionerVerified_revertsWhenAccountIsNotPractitioner() public {
        grantAs(ALICE, ROLE_PATIENT);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotPractitioner.selector, ALICE));
        vm.prank(authority);
        roles.setPractitionerVerified(ALICE, true);
    }

    /// @notice Revoking the practitioner role ends the verification and says so in an event.
    function test_revokeRole_practitionerClearsVerificationAndEmits() public {
        makeVerifiedPractitioner(BOB);
        vm.recordLogs();
        vm.prank(admin);
        roles.revokeRole(BOB, ROLE_PRACTITIONER);

        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "two events");
        assertEq(logs[0].topics[0], IRoles.RoleRevoked.selector, "first event");
        assertEq(logs[1].topics[0], IRoles.PractitionerVerified.selector, "second event");
        assertEq(logs[1].topics[1], BOB, "account");
        assertEq(logs[1].topics[2], bytes32(uint256(uint160(admin))), "by");
        assertEq(logs[1].data, abi.encode(false), "verified");
        assertFalse(roles.isVerified(BOB), "no longer verified");
    }

    /// @notice Granting the practitioner role again does not bring the verification back.
    function test_revokeRole_regrantDoesNotRestoreVerification() public {
        makeVerifiedPractitioner(BOB);
        vm.prank(admin);
        roles.revokeRole(BOB, ROLE_PRACTITIONER);
        grantAs(BOB, ROLE_PRACTITIONER);
        assertFalse(roles.isVerified(BOB), "must be verified again");
    }

    /// @notice For any account, revoking the practitioner role removes its verification.
    /// @param account Fuzzed account.
    function testFuzz_revokeRole_practitionerRemovesVerification(bytes32 account) public {
        makeVerifiedPractitioner(account);
        assertTrue(roles.isVerified(account), "verified");
        vm.prank(admin);
        roles.revokeRole(account, ROLE_PRACTITIONER);
        assertFalse(roles.isVerified(account), "revoked practitioner is not verified");
    }

    /// @notice Revoking any other role keeps the verification.
    /// @param account Fuzzed account.
    /// @param role Fuzzed role other than practitioner.
    function testFuzz_revokeRole_otherRoleKeepsVerification(bytes32 account, uint8 role) public {
        role = uint8(bound(role, 1, MAX_ROLE));
        vm.assume(role != ROLE_PRACTITIONER);
        makeVerifiedPractitioner(account);
        grantAs(account, role);
        vm.prank(admin);
        roles.revokeRole(account, role);
        assertTrue(roles.isVerified(account), "still verified");
    }

    /// @notice No account without the practitioner role can be verified or unverified.
    /// @param account Fuzzed account.
    /// @param role Fuzzed role other than practitioner that the account holds.
    /// @param verified Fuzzed flag.
    function testFuzz_setPractitionerVerified_revertsWhenAccountIsNotPractitioner(
        bytes32 account,
        uint8 role,
        bool verified
    ) public {
        role = uint8(bound(role, 1, MAX_ROLE));
        vm.assume(role != ROLE_PRACTITIONER);
        grantAs(account, role);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotPractitioner.selector, account));
        vm.prank(authority);
        roles.setPractitionerVerified(account, verified);
        assertFalse(roles.isVerified(account), "not verified");
    }
}
