// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RolesFixture} from "./utils/Fixtures.sol";
import {IRoles, ROLE_PATIENT, ROLE_PRACTITIONER} from "../src/IRoles.sol";

/// @title RolesOperatorsTest
/// @notice {Roles.setAdmin} and {Roles.setAuthority}.
contract RolesOperatorsTest is RolesFixture {
    /// @notice A new admin operator can grant roles, and the event names it.
    function test_setAdmin_addsAdminOperator() public {
        address second = makeAddr("second admin");
        vm.expectEmit(address(roles));
        emit IRoles.AdminSet(second, true);
        vm.prank(admin);
        roles.setAdmin(second, true);

        vm.prank(second);
        roles.grantRole(ALICE, ROLE_PATIENT);
        assertTrue(roles.hasRole(ALICE, ROLE_PATIENT), "granted by second admin");
    }

    /// @notice An admin operator can be disabled while another one remains.
    function test_setAdmin_removesAdminOperator() public {
        address second = makeAddr("second admin");
        vm.prank(admin);
        roles.setAdmin(second, true);
        vm.expectEmit(address(roles));
        emit IRoles.AdminSet(second, false);
        vm.prank(admin);
        roles.setAdmin(second, false);

        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, second));
        vm.prank(second);
        roles.grantRole(ALICE, ROLE_PATIENT);
    }

    /// @notice An admin operator may step down when another one remains.
    function test_setAdmin_adminCanRemoveItself() public {
        address second = makeAddr("second admin");
        vm.startPrank(admin);
        roles.setAdmin(second, true);
        roles.setAdmin(admin, false);
        vm.stopPrank();
        vm.prank(second);
        roles.grantRole(ALICE, ROLE_PATIENT);
    }

    /// @notice The last admin operator cannot be disabled.
    function test_setAdmin_revertsWhenDisablingLastAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.LastAdmin.selector));
        vm.prank(admin);
        roles.setAdmin(admin, false);
    }

    /// @notice The last admin check counts operators, not calls: after a re-enable no-op,
    ///         disabling one of two admins still works and the other becomes the last one.
    function test_setAdmin_countsAdminsExactly() public {
        address second = makeAddr("second admin");
        vm.startPrank(admin);
        roles.setAdmin(second, true);
        roles.setAdmin(second, true); // no-op
        roles.setAdmin(second, false);
        vm.expectRevert(abi.encodeWithSelector(IRoles.LastAdmin.selector));
        roles.setAdmin(admin, false);
        vm.stopPrank();
    }

    /// @notice Setting an admin status to its current value emits nothing.
    function test_setAdmin_isNoOpWhenUnchanged() public {
        vm.recordLogs();
        vm.startPrank(admin);
        roles.setAdmin(admin, true);
        roles.setAdmin(stranger, false);
        vm.stopPrank();
        assertEq(vm.getRecordedLogs().length, 0, "no event");
    }

    /// @notice The zero address cannot be an admin operator.
    function test_setAdmin_revertsWhenOperatorIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.ZeroAddress.selector));
        vm.prank(admin);
        roles.setAdmin(address(0), true);
    }

    /// @notice A new authority operator can verify, and the event names it.
    function test_setAuthority_addsAuthorityOperator() public {
        address board = makeAddr("medical board");
        vm.expectEmit(address(roles));
        emit IRoles.AuthoritySet(board, true);
        vm.prank(admin);
        roles.setAuthority(board, true);

        grantAs(BOB, ROLE_PRACTITIONER);
        vm.prank(board);
        roles.setPractitionerVerified(BOB, true);
        assertTrue(roles.isVerified(BOB), "verified by new authority");
    }

    /// @notice Disabling an authority operator emits AuthoritySet with false.
    function test_setAuthority_removesAuthorityOperator() public {
        vm.expectEmit(address(roles));
        emit IRoles.AuthoritySet(authority, false);
        vm.prank(admin);
        roles.setAuthority(authority, false);
    }

    /// @notice Verifications made by an authority outlive its operator status.
    function test_setAuthority_disablingKeepsVerifications() public {
        makeVerifiedPractitioner(BOB);
        vm.prank(admin);
        roles.setAuthority(authority, false);
        assertTrue(roles.isVerified(BOB), "still verified");
    }

    /// @notice Setting an authority status to its current value emits nothing.
    function test_setAuthority_isNoOpWhenUnchanged() public {
        vm.recordLogs();
        vm.prank(admin);
        roles.setAuthority(authority, true);
        assertEq(vm.getRecordedLogs().length, 0, "no event");
    }

    /// @notice The zero address cannot be an authority operator.
    function test_setAuthority_revertsWhenOperatorIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.ZeroAddress.selector));
        vm.prank(admin);
        roles.setAuthority(address(0), true);
    }

    /// @notice Any non-zero address can be made and unmade an admin operator.
    /// @param operator Fuzzed operator.
    function testFuzz_setAdmin_enableThenDisable(address operator) public {
        vm.assume(operator != address(0) && operator != admin);
        vm.prank(admin);
        roles.setAdmin(operator, true);
        vm.prank(operator);
        roles.grantRole(ALICE, ROLE_PATIENT);
        vm.prank(admin);
        roles.setAdmin(operator, false);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, operator));
        vm.prank(operator);
        roles.revokeRole(ALICE, ROLE_PATIENT);
    }
}
