// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistryFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IConsentRegistry} from "../src/IConsentRegistry.sol";

/// @title ConsentRegistryRegistrarTest
/// @notice {ConsentRegistry.transferRegistrar}.
contract ConsentRegistryRegistrarTest is ConsentRegistryFixture {
    /// @notice After a transfer, the new registrar records changes and the old one no longer can.
    function test_transferRegistrar_movesRecordRight() public {
        address next = makeAddr("next registrar");
        vm.prank(registrar);
        registry.transferRegistrar(next);
        assertEq(registry.registrar(), next, "registrar");

        vm.prank(next);
        registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), authorizationFor(CONSENT_1, 1));

        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, registrar));
        revokeAs(CONSENT_1, ALICE, 2);
    }

    /// @notice A transfer emits RegistrarTransferred with both addresses as topics.
    function test_transferRegistrar_emitsRegistrarTransferred() public {
        address next = makeAddr("next registrar");
        vm.recordLogs();
        vm.prank(registrar);
        registry.transferRegistrar(next);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(registry), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IConsentRegistry.RegistrarTransferred.selector, "event");
        assertEq(logs[0].topics[1], bytes32(uint256(uint160(registrar))), "previous");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(next))), "next");
        assertEq(logs[0].data.length, 0, "data");
    }

    /// @notice Consents and versions are kept across a transfer.
    function test_transferRegistrar_keepsHistory() public {
        grantAs(CONSENT_1, ALICE, 1);
        address next = makeAddr("next registrar");
        vm.prank(registrar);
        registry.transferRegistrar(next);

        assertEq(registry.changeCount(), 1, "changeCount");
        vm.prank(next);
        assertEq(registry.recordRevocation(CONSENT_1, ALICE, authorizationFor(CONSENT_1, 2)), 2, "version");
    }

    /// @notice Transferring to oneself is allowed and keeps the registrar.
    function test_transferRegistrar_toSelfKeepsRegistrar() public {
        vm.prank(registrar);
        registry.transferRegistrar(registrar);
        assertEq(registry.registrar(), registrar, "registrar");
    }

    /// @notice Only the registrar may transfer the role.
    function test_transferRegistrar_revertsWhenCallerIsNotRegistrar() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, stranger));
        vm.prank(stranger);
        registry.transferRegistrar(stranger);
    }

    /// @notice The role cannot go to the zero address.
    function test_transferRegistrar_revertsWhenNextIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ZeroAddress.selector));
        vm.prank(registrar);
        registry.transferRegistrar(address(0));
        assertEq(registry.registrar(), registrar, "registrar");
    }

    /// @notice After a transfer to any address, exactly that address may record changes.
    /// @param next Fuzzed new registrar.
    /// @param other Fuzzed other caller.
    function testFuzz_transferRegistrar_onlyNewRegistrarCanRecord(address next, address other) public {
        vm.assume(next != address(0));
        vm.assume(other != next);
        vm.prank(registrar);
        registry.transferRegistrar(next);

        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, other));
        vm.prank(other);
        registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), bytes32(0));

        vm.prank(next);
        assertEq(registry.recordGrant(CONSENT_1, ALICE, commitmentFor(CONSENT_1, 1), bytes32(0)), 1, "version");
    }

    /// @notice No address other than the registrar can transfer the role.
    /// @param caller Fuzzed caller.
    /// @param next Fuzzed proposed registrar.
    function testFuzz_transferRegistrar_revertsWhenCallerIsNotRegistrar(address caller, address next) public {
        vm.assume(caller != registrar);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.NotRegistrar.selector, caller));
        vm.prank(caller);
        registry.transferRegistrar(next);
        assertEq(registry.registrar(), registrar, "registrar");
    }
}
