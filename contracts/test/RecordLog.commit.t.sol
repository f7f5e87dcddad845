// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordLogFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IRecordLog} from "../src/IRecordLog.sol";
import {RecordLog} from "../src/RecordLog.sol";

/// @title RecordLogCommitTest
/// @notice Construction of {RecordLog} and {RecordLog.commitTreeHead}.
contract RecordLogCommitTest is RecordLogFixture {
    /// @notice The constructor argument becomes the committer and the log starts empty.
    function test_constructor_setsCommitterAndEmptyLog() public view {
        assertEq(log.committer(), committer, "committer");
        assertEq(log.treeHeadCount(), 0, "count");
    }

    /// @notice The constructor records the initial committer as a transfer from address 0.
    function test_constructor_emitsCommitterTransferred() public {
        vm.recordLogs();
        RecordLog created = new RecordLog(committer);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(created), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IRecordLog.CommitterTransferred.selector, "event");
        assertEq(logs[0].topics[1], bytes32(0), "previous");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(committer))), "next");
    }

    /// @notice The constructor rejects the zero address.
    function test_constructor_revertsWhenCommitterIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.ZeroAddress.selector));
        new RecordLog(address(0));
    }

    /// @notice A commit stores the head with the block number and timestamp of its block.
    function test_commitTreeHead_storesHeadWithBlockData() public {
        vm.roll(4_242);
        vm.warp(1_767_225_600);
        commitAs(7, rootFor(7));

        (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp) = log.treeHeadAt(0);
        assertEq(treeSize, 7, "treeSize");
        assertEq(rootHash, rootFor(7), "rootHash");
        assertEq(blockNumber, 4_242, "blockNumber");
        assertEq(timestamp, 1_767_225_600, "timestamp");
        assertEq(log.treeHeadCount(), 1, "count");
    }

    /// @notice Commits return 0-based indices in order.
    function test_commitTreeHead_returnsSequentialIndices() public {
        assertEq(commitAs(1, rootFor(1)), 0, "first index");
        assertEq(commitAs(2, rootFor(2)), 1, "second index");
        assertEq(commitAs(10, rootFor(10)), 2, "third index");
        assertEq(log.treeHeadCount(), 3, "count");
    }

    /// @notice A commit emits TreeHeadCommitted with the new index, size and root.
    function test_commitTreeHead_emitsTreeHeadCommitted() public {
        commitAs(3, rootFor(3));
        vm.expectEmit(address(log));
        emit IRecordLog.TreeHeadCommitted(1, 5, rootFor(5));
        commitAs(5, rootFor(5));
    }

    /// @notice The largest possible tree size can be committed.
    function test_commitTreeHead_acceptsMaxTreeSize() public {
        commitAs(type(uint64).max, rootFor(type(uint64).max));
        (uint64 treeSize,,,) = log.treeHeadAt(0);
        assertEq(treeSize, type(uint64).max, "treeSize");
    }

    /// @notice Nothing can be committed after the largest possible tree size.
    function test_commitTreeHead_revertsWhenPreviousIsMaxTreeSize() public {
        commitAs(type(uint64).max, rootFor(1));
        vm.expectRevert(
            abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, type(uint64).max, type(uint64).max)
        );
        commitAs(type(uint64).max, rootFor(2));
    }

    /// @notice Only the committer may commit.
    function test_commitTreeHead_revertsWhenCallerIsNotCommitter() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, stranger));
        vm.prank(stranger);
        log.commitTreeHead(1, rootFor(1));
    }

    /// @notice The first head must describe a non-empty tree.
    function test_commitTreeHead_revertsWhenFirstTreeSizeIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, 0, 0));
        commitAs(0, rootFor(0));
    }

    /// @notice The same tree size cannot be committed twice, even with another root.
    function test_commitTreeHead_revertsWhenTreeSizeRepeats() public {
        commitAs(4, rootFor(4));
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, 4, 4));
        commitAs(4, keccak256("another root"));
    }

    /// @notice A smaller tree cannot follow a larger one.
    function test_commitTreeHead_revertsWhenTreeSizeDecreases() public {
        commitAs(9, rootFor(9));
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, 9, 8));
        commitAs(8, rootFor(8));
    }

    /// @notice A failed commit leaves the log unchanged.
    function test_commitTreeHead_revertsWithoutChangingLog() public {
        commitAs(2, rootFor(2));
        vm.prank(committer);
        try log.commitTreeHead(1, rootFor(1)) {
            fail("commit of a smaller tree succeeded");
        } catch {}
        assertEq(log.treeHeadCount(), 1, "count");
        (uint64 treeSize, bytes32 rootHash,,) = log.treeHeadAt(0);
        assertEq(treeSize, 2, "treeSize");
        assertEq(rootHash, rootFor(2), "rootHash");
    }

    /// @notice Any head with a positive size is stored exactly, with any block data.
    /// @param treeSize Fuzzed tree size.
    /// @param rootHash Fuzzed root.
    /// @param blockNumber Fuzzed block number.
    /// @param timestamp Fuzzed timestamp.
    function testFuzz_commitTreeHead_storesAnyHead(
        uint64 treeSize,
        bytes32 rootHash,
        uint64 blockNumber,
        uint64 timestamp
    ) public {
        treeSize = uint64(bound(treeSize, 1, type(uint64).max));
        vm.roll(blockNumber);
        vm.warp(timestamp);
        vm.expectEmit(address(log));
        emit IRecordLog.TreeHeadCommitted(0, treeSize, rootHash);
        assertEq(commitAs(treeSize, rootHash), 0, "index");

        (uint64 storedSize, bytes32 storedRoot, uint64 storedBlock, uint64 storedTime) = log.treeHeadAt(0);
        assertEq(storedSize, treeSize, "treeSize");
        assertEq(storedRoot, rootHash, "rootHash");
        assertEq(storedBlock, blockNumber, "blockNumber");
        assertEq(storedTime, timestamp, "timestamp");
    }

    /// @notice Tree sizes must strictly increase: a size not above the previous one reverts.
    /// @param previous Fuzzed first tree size.
    /// @param proposed Fuzzed second tree size.
    function testFuzz_commitTreeHead_revertsWhenTreeSizeNotIncreasing(uint64 previous, uint64 proposed) public {
        previous = uint64(bound(previous, 1, type(uint64).max));
        proposed = uint64(bound(proposed, 0, previous));
        commitAs(previous, rootFor(previous));
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.TreeSizeNotIncreasing.selector, previous, proposed));
        commitAs(proposed, rootFor(proposed));
    }

    /// @notice Any strictly increasing sequence of sizes is accepted, in order.
    /// @param steps Fuzzed positive gaps between consecutive tree sizes.
    function testFuzz_commitTreeHead_acceptsStrictlyIncreasingSizes(uint32[8] memory steps) public {
        uint64 size;
        for (uint256 i = 0; i < steps.length; i++) {
            size += uint64(bound(steps[i], 1, type(uint32).max));
            assertEq(commitAs(size, rootFor(size)), i, "index");
        }
        assertEq(log.treeHeadCount(), steps.length, "count");
        uint64 previous;
        for (uint256 i = 0; i < steps.length; i++) {
            (uint64 treeSize, bytes32 rootHash,,) = log.treeHeadAt(i);
            assertGt(treeSize, previous, "sizes increase");
            assertEq(rootHash, rootFor(treeSize), "rootHash");
            previous = treeSize;
        }
    }

    /// @notice No address other than the committer can commit.
    /// @param caller Fuzzed caller.
    /// @param treeSize Fuzzed tree size.
    function testFuzz_commitTreeHead_revertsWhenCallerIsNotCommitter(address caller, uint64 treeSize) public {
        vm.assume(caller != committer);
        treeSize = uint64(bound(treeSize, 1, type(uint64).max));
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.NotCommitter.selector, caller));
        vm.prank(caller);
        log.commitTreeHead(treeSize, rootFor(treeSize));
        assertEq(log.treeHeadCount(), 0, "count");
    }
}
