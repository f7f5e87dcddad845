// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RolesFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {
    IRoles,
    ROLE_PATIENT,
    ROLE_PRACTITIONER,
    ROLE_ORGANIZATION,
    ROLE_AUDITOR,
    ROLE_AUTHORITY,
    ROLE_ADMIN,
    MAX_ROLE
} from "../src/IRoles.sol";

/// @title RolesGrantTest
/// @notice {Roles.grantRole}, {Roles.revokeRole} and {Roles.hasRole}.
contract RolesGrantTest is RolesFixture {
    /// @notice The role ids are the ones the off-chain code uses.
    function test_roleIds_matchSpecification() public pure {
        assertEq(ROLE_PATIENT, 1, "patient");
        assertEq(ROLE_PRACTITIONER, 2, "practitioner");
        assertEq(ROLE_ORGANIZATION, 3, "organization");
        assertEq(ROLE_AUDITOR, 4, "auditor");
        assertEq(ROLE_AUTHORITY, 5, "authority");
        assertEq(ROLE_ADMIN, 6, "admin");
        assertEq(MAX_ROLE, 6, "max");
    }

    /// @notice A new account holds no role.
    function test_hasRole_falseInitially() public view {
        for (uint8 role = 0; role <= MAX_ROLE + 1; role++) {
            assertFalse(roles.hasRole(ALICE, role), "no role");
        }
    }

    /// @notice Granting gives the account exactly that role.
    function test_grantRole_grantsOnlyThatRole() public {
        grantAs(ALICE, ROLE_AUDITOR);
        for (uint8 role = 1; role <= MAX_ROLE; role++) {
            assertEq(roles.hasRole(ALICE, role), role == ROLE_AUDITOR, "role set");
        }
        assertFalse(roles.hasRole(BOB, ROLE_AUDITOR), "other account");
    }

    /// @notice Granting emits RoleGranted with the account, role and admin.
    function test_grantRole_emitsRoleGranted() public {
        vm.expectEmit(address(roles));
        emit IRoles.RoleGranted(ALICE, ROLE_ORGANIZATION, admin);
        grantAs(ALICE, ROLE_ORGANIZATION);
    }

    /// @notice Granting a role already held changes nothing and emits nothing.
    function test_grantRole_isNoOpWhenRoleHeld() public {
        grantAs(ALICE, ROLE_PATIENT);
        vm.recordLogs();
        grantAs(ALICE, ROLE_PATIENT);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 0, "no event");
        assertTrue(roles.hasRole(ALICE, ROLE_PATIENT), "still held");
    }

    /// @notice An account can hold every role at once, and revoking one keeps the others.
    function test_revokeRole_keepsOtherRoles() public {
        for (uint8 role = 1; role <= MAX_ROLE; role++) {
            grantAs(ALICE, role);
        }
        vm.prank(admin);
        roles.revokeRole(ALICE, ROLE_ORGANIZATION);
        for (uint8 role = 1; role <= MAX_ROLE; role++) {
            assertEq(roles.hasRole(ALICE, role), role != ROLE_ORGANIZATION, "role set");
        }
    }

    /// @notice Revoking removes the role and emits RoleRevoked.
    function test_revokeRole_removesRoleAndEmitsRoleRevoked() public {
        grantAs(ALICE, ROLE_PATIENT);
        vm.expectEmit(address(roles));
        emit IRoles.RoleRevoked(ALICE, ROLE_PATIENT, admin);
        vm.prank(admin);
        roles.revokeRole(ALICE, ROLE_PATIENT);
        assertFalse(roles.hasRole(ALICE, ROLE_PATIENT), "revoked");
    }

    /// @notice Revoking a role not held changes nothing and emits nothing.
    function test_revokeRole_isNoOpWhenRoleNotHeld() public {
        vm.recordLogs();
        vm.prank(admin);
        roles.revokeRole(ALICE, ROLE_PATIENT);
        assertEq(vm.getRecordedLogs().length, 0, "no event");
    }

    /// @notice Role 0 is invalid.
    function test_grantRole_revertsWhenRoleIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.InvalidRole.selector, 0));
        grantAs(ALICE, 0);
    }

    /// @notice Roles above admin (6) are invalid.
    function test_grantRole_revertsWhenRoleIsAboveAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.InvalidRole.selector, 7));
        grantAs(ALICE, 7);
    }

    /// @notice Revoking an invalid role reverts too.
    function test_revokeRole_revertsWhenRoleIsInvalid() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.InvalidRole.selector, 255));
        vm.prank(admin);
        roles.revokeRole(ALICE, 255);
    }

    /// @notice Every role id outside 1..6 is rejected on grant and on revoke, and never held.
    /// @param role Fuzzed invalid role id.
    function testFuzz_grantRole_revertsWhenRoleIsInvalid(uint8 role) public {
        vm.assume(role == 0 || role > MAX_ROLE);
        vm.expectRevert(abi.encodeWithSelector(IRoles.InvalidRole.selector, role));
        grantAs(ALICE, role);
        vm.expectRevert(abi.encodeWithSelector(IRoles.InvalidRole.selector, role));
        vm.prank(admin);
        roles.revokeRole(ALICE, role);
        assertFalse(roles.hasRole(ALICE, role), "invalid role never held");
    }

    /// @notice Granting one (account, role) pair affects no other pair; revoking undoes it.
    /// @param account Fuzzed account.
    /// @param other Fuzzed other account.
    /// @param role Fuzzed role.
    /// @param otherRole Fuzzed other role.
    function testFuzz_grantRole_affectsOnlyThatAccountAndRole(
        bytes32 account,
        bytes32 other,
        uint8 role,
        uint8 otherRole
    ) public {
        role = uint8(bound(role, 1, MAX_ROLE));
        vm.assume(other != account || otherRole != role);

        vm.expectEmit(address(roles));
        emit IRoles.RoleGranted(account, role, admin);
        grantAs(account, role);
        assertTrue(roles.hasRole(account, role), "granted");
        assertFalse(roles.hasRole(other, otherRole), "other pair untouched");

        vm.prank(admin);
        roles.revokeRole(account, role);
        assertFalse(roles.hasRole(account, role), "revoked");
    }
}
