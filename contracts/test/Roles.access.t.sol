// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RolesFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IRoles, ROLE_PATIENT, ROLE_PRACTITIONER, ROLE_ADMIN} from "../src/IRoles.sol";
import {Roles} from "../src/Roles.sol";

/// @title RolesAccessTest
/// @notice Who may call what on {Roles}: admin operators, authority operators, nobody else.
contract RolesAccessTest is RolesFixture {
    /// @notice The constructor's address is an admin operator.
    function test_constructor_makesAdminOperator() public {
        grantAs(ALICE, ROLE_PATIENT);
        assertTrue(roles.hasRole(ALICE, ROLE_PATIENT), "admin could grant");
    }

    /// @notice The constructor announces the first admin operator.
    function test_constructor_emitsAdminSet() public {
        vm.recordLogs();
        Roles created = new Roles(admin);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(created), "emitter");
        assertEq(logs[0].topics.length, 2, "topic count");
        assertEq(logs[0].topics[0], IRoles.AdminSet.selector, "event");
        assertEq(logs[0].topics[1], bytes32(uint256(uint160(admin))), "operator");
        assertEq(logs[0].data, abi.encode(true), "enabled");
    }

    /// @notice The constructor rejects the zero address.
    function test_constructor_revertsWhenAdminIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.ZeroAddress.selector));
        new Roles(address(0));
    }

    /// @notice Holding the admin role as an account does not make an address an operator.
    function test_grantRole_revertsWhenCallerIsOnlyAuthority() public {
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, authority));
        vm.prank(authority);
        roles.grantRole(ALICE, ROLE_ADMIN);
    }

    /// @notice Admin operators cannot verify practitioners unless they are authorities too.
    function test_setPractitionerVerified_revertsWhenCallerIsOnlyAdmin() public {
        grantAs(BOB, ROLE_PRACTITIONER);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAuthority.selector, admin));
        vm.prank(admin);
        roles.setPractitionerVerified(BOB, true);
    }

    /// @notice An address that was an authority operator loses the right when disabled.
    function test_setPractitionerVerified_revertsWhenAuthorityWasDisabled() public {
        grantAs(BOB, ROLE_PRACTITIONER);
        vm.prank(admin);
        roles.setAuthority(authority, false);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAuthority.selector, authority));
        vm.prank(authority);
        roles.setPractitionerVerified(BOB, true);
    }

    /// @notice An address that was an admin operator loses its rights when disabled.
    function test_grantRole_revertsWhenAdminWasDisabled() public {
        address second = makeAddr("second admin");
        vm.startPrank(admin);
        roles.setAdmin(second, true);
        roles.setAdmin(admin, false);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, admin));
        roles.grantRole(ALICE, ROLE_PATIENT);
        vm.stopPrank();
    }

    /// @notice Nobody but an admin operator can grant roles.
    /// @param caller Fuzzed caller.
    /// @param account Fuzzed account.
    /// @param role Fuzzed role id.
    function testFuzz_grantRole_revertsWhenCallerIsNotAdmin(address caller, bytes32 account, uint8 role) public {
        vm.assume(caller != admin);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, caller));
        vm.prank(caller);
        roles.grantRole(account, role);
    }

    /// @notice Nobody but an admin operator can revoke roles.
    /// @param caller Fuzzed caller.
    /// @param role Fuzzed role id.
    function testFuzz_revokeRole_revertsWhenCallerIsNotAdmin(address caller, uint8 role) public {
        vm.assume(caller != admin);
        role = uint8(bound(role, 1, 6));
        grantAs(ALICE, role);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, caller));
        vm.prank(caller);
        roles.revokeRole(ALICE, role);
        assertTrue(roles.hasRole(ALICE, role), "role kept");
    }

    /// @notice Nobody but an admin operator can set admin operators.
    /// @param caller Fuzzed caller.
    /// @param operator Fuzzed operator.
    /// @param enabled Fuzzed flag.
    function testFuzz_setAdmin_revertsWhenCallerIsNotAdmin(address caller, address operator, bool enabled) public {
        vm.assume(caller != admin);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, caller));
        vm.prank(caller);
        roles.setAdmin(operator, enabled);
    }

    /// @notice Nobody but an admin operator can set authority operators.
    /// @param caller Fuzzed caller.
    /// @param operator Fuzzed operator.
    /// @param enabled Fuzzed flag.
    function testFuzz_setAuthority_revertsWhenCallerIsNotAdmin(address caller, address operator, bool enabled) public {
        vm.assume(caller != admin);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAdmin.selector, caller));
        vm.prank(caller);
        roles.setAuthority(operator, enabled);
    }

    /// @notice Nobody but an authority operator can verify practitioners.
    /// @param caller Fuzzed caller.
    /// @param verified Fuzzed flag.
    function testFuzz_setPractitionerVerified_revertsWhenCallerIsNotAuthority(address caller, bool verified) public {
        vm.assume(caller != authority);
        grantAs(BOB, ROLE_PRACTITIONER);
        vm.expectRevert(abi.encodeWithSelector(IRoles.NotAuthority.selector, caller));
        vm.prank(caller);
        roles.setPractitionerVerified(BOB, verified);
        assertFalse(roles.isVerified(BOB), "not verified");
    }
}
