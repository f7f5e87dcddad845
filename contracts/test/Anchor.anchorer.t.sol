// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AnchorFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IAnchor} from "../src/IAnchor.sol";

/// @title AnchorAnchorerTest
/// @notice {Anchor.transferAnchorer}.
contract AnchorAnchorerTest is AnchorFixture {
    /// @notice After a transfer, the new anchorer anchors and the old one no longer can.
    function test_transferAnchorer_movesAnchorRight() public {
        address next = makeAddr("next anchorer");
        vm.prank(anchorer);
        anchor.transferAnchorer(next);
        assertEq(anchor.anchorer(), next, "anchorer");

        vm.prank(next);
        anchor.anchorCheckpoint(1, rootFor(1), sourceBlockFor(1), blockHashFor(1));

        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, anchorer));
        vm.prank(anchorer);
        anchor.anchorCheckpoint(2, rootFor(2), sourceBlockFor(2), blockHashFor(2));
    }

    /// @notice A transfer emits AnchorerTransferred with both addresses as topics.
    function test_transferAnchorer_emitsAnchorerTransferred() public {
        address next = makeAddr("next anchorer");
        vm.recordLogs();
        vm.prank(anchorer);
        anchor.transferAnchorer(next);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(anchor), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IAnchor.AnchorerTransferred.selector, "event");
        assertEq(logs[0].topics[1], bytes32(uint256(uint160(anchorer))), "previous");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(next))), "next");
        assertEq(logs[0].data.length, 0, "data");
    }

    /// @notice The checkpoints are kept across a transfer, and sizes keep increasing from them.
    function test_transferAnchorer_keepsHistory() public {
        anchorAs(5);
        address next = makeAddr("next anchorer");
        vm.prank(anchorer);
        anchor.transferAnchorer(next);

        assertEq(anchor.checkpointCount(), 1, "count");
        vm.expectRevert(abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, 5, 5));
        vm.prank(next);
        anchor.anchorCheckpoint(5, rootFor(5), sourceBlockFor(5), blockHashFor(5));
    }

    /// @notice Transferring to oneself is allowed and keeps the anchorer.
    function test_transferAnchorer_toSelfKeepsAnchorer() public {
        vm.prank(anchorer);
        anchor.transferAnchorer(anchorer);
        assertEq(anchor.anchorer(), anchorer, "anchorer");
    }

    /// @notice Only the anchorer may transfer the role.
    function test_transferAnchorer_revertsWhenCallerIsNotAnchorer() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, stranger));
        vm.prank(stranger);
        anchor.transferAnchorer(stranger);
    }

    /// @notice The role cannot go to the zero address.
    function test_transferAnchorer_revertsWhenNextIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.ZeroAddress.selector));
        vm.prank(anchorer);
        anchor.transferAnchorer(address(0));
        assertEq(anchor.anchorer(), anchorer, "anchorer");
    }

    /// @notice After a transfer to any address, exactly that address may anchor.
    /// @param next Fuzzed new anchorer.
    /// @param other Fuzzed other caller.
    function testFuzz_transferAnchorer_onlyNewAnchorerCanAnchor(address next, address other) public {
        vm.assume(next != address(0));
        vm.assume(other != next);
        vm.prank(anchorer);
        anchor.transferAnchorer(next);

        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, other));
        vm.prank(other);
        anchor.anchorCheckpoint(1, rootFor(1), sourceBlockFor(1), blockHashFor(1));

        vm.prank(next);
        assertEq(anchor.anchorCheckpoint(1, rootFor(1), sourceBlockFor(1), blockHashFor(1)), 0, "index");
    }

    /// @notice No address other than the anchorer can transfer the role.
    /// @param caller Fuzzed caller.
    /// @param next Fuzzed proposed anchorer.
    function testFuzz_transferAnchorer_revertsWhenCallerIsNotAnchorer(address caller, address next) public {
        vm.assume(caller != anchorer);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, caller));
        vm.prank(caller);
        anchor.transferAnchorer(next);
        assertEq(anchor.anchorer(), anchorer, "anchorer");
    }
}
