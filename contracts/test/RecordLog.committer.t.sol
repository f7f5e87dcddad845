// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordLogFixture} from "./utils/Fixtures.sol";
import {IRecordLog} from "../src/IRecordLog.sol";

/// @title RecordLogCommitterTest
/// @notice {RecordLog.transferCommitter}.
contract RecordLogCommitterTest is RecordLogFixture {
    /// @notice After a transfer, the new committer commits and the old one no longer can.
    function test_transferCommitter_movesCommitRight() public {
        address next = makeAddr("next committer");
        vm.prank(committer);
        log.transferCommitter(next);
        assertEq(log.committer(), next, "committer");

        vm.prank(next);
        log.commitTreeHead(1, rootFor(1));

        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, committer));
        vm.prank(committer);
        log.commitTreeHead(2, rootFor(2));
    }

    /// @notice A transfer emits CommitterTransferred with both addresses.
    function test_transferCommitter_emitsCommitterTransferred() public {
        address next = makeAddr("next committer");
        vm.expectEmit(address(log));
        emit IRecordLog.CommitterTransferred(committer, next);
        vm.prank(committer);
        log.transferCommitter(next);
    }

    /// @notice The log's history is kept across a transfer, and sizes keep increasing from it.
    function test_transferCommitter_keepsHistory() public {
        commitAs(5, rootFor(5));
        address next = makeAddr("next committer");
        vm.prank(committer);
        log.transferCommitter(next);

        assertEq(log.treeHeadCount(), 1, "count");
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, 5, 5));
        vm.prank(next);
        log.commitTreeHead(5, rootFor(5));
    }

    /// @notice Transferring to oneself is allowed and changes nothing.
    function test_transferCommitter_toSelfKeepsCommitter() public {
        vm.prank(committer);
        log.transferCommitter(committer);
        assertEq(log.committer(), committer, "committer");
    }

    /// @notice Only the committer may transfer the role.
    function test_transferCommitter_revertsWhenCallerIsNotCommitter() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, stranger));
        vm.prank(stranger);
        log.transferCommitter(stranger);
    }

    /// @notice The role cannot go to the zero address.
    function test_transferCommitter_revertsWhenNextIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.ZeroAddress.selector));
        vm.prank(committer);
        log.transferCommitter(address(0));
    }

    /// @notice After a transfer to any address, exactly that address may commit.
    /// @param next Fuzzed new committer.
    /// @param other Fuzzed other caller.
    function testFuzz_transferCommitter_onlyNewCommitterCanCommit(address next, address other) public {
        vm.assume(next != address(0));
        vm.assume(other != next);
        vm.prank(committer);
        log.transferCommitter(next);

        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, other));
        vm.prank(other);
        log.commitTreeHead(1, rootFor(1));

        vm.prank(next);
        assertEq(log.commitTreeHead(1, rootFor(1)), 0, "index");
    }

    /// @notice No address other than the committer can transfer the role.
    /// @param caller Fuzzed caller.
    /// @param next Fuzzed proposed committer.
    function testFuzz_transferCommitter_revertsWhenCallerIsNotCommitter(address caller, address next) public {
        vm.assume(caller != committer);
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, caller));
        vm.prank(caller);
        log.transferCommitter(next);
        assertEq(log.committer(), committer, "committer");
    }
}
