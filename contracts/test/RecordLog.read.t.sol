// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordLogFixture} from "./utils/Fixtures.sol";
import {IRecordLog} from "../src/IRecordLog.sol";

/// @title RecordLogReadTest
/// @notice {RecordLog.treeHeadCount} and {RecordLog.treeHeadAt}.
contract RecordLogReadTest is RecordLogFixture {
    /// @notice A new log holds no heads.
    function test_treeHeadCount_isZeroInitially() public view {
        assertEq(log.treeHeadCount(), 0, "count");
    }

    /// @notice Reading from an empty log reverts.
    function test_treeHeadAt_revertsWhenLogIsEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.IndexOutOfRange.selector, 0, 0));
        log.treeHeadAt(0);
    }

    /// @notice The index equal to the count is out of range.
    function test_treeHeadAt_revertsWhenIndexEqualsCount() public {
        commitAs(1, rootFor(1));
        commitAs(2, rootFor(2));
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.IndexOutOfRange.selector, 2, 2));
        log.treeHeadAt(2);
    }

    /// @notice Earlier heads keep their values, block number and timestamp after later commits.
    function test_treeHeadAt_keepsEarlierHeadsUnchanged() public {
        vm.roll(10);
        vm.warp(1_000);
        commitAs(3, rootFor(3));
        vm.roll(11);
        vm.warp(1_012);
        commitAs(8, rootFor(8));

        (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp) = log.treeHeadAt(0);
        assertEq(treeSize, 3, "first treeSize");
        assertEq(rootHash, rootFor(3), "first rootHash");
        assertEq(blockNumber, 10, "first blockNumber");
        assertEq(timestamp, 1_000, "first timestamp");

        (treeSize, rootHash, blockNumber, timestamp) = log.treeHeadAt(1);
        assertEq(treeSize, 8, "second treeSize");
        assertEq(rootHash, rootFor(8), "second rootHash");
        assertEq(blockNumber, 11, "second blockNumber");
        assertEq(timestamp, 1_012, "second timestamp");
    }

    /// @notice Several heads committed in the same block share its number and timestamp.
    function test_treeHeadAt_headsInOneBlockShareBlockData() public {
        vm.roll(77);
        vm.warp(5_555);
        commitAs(1, rootFor(1));
        commitAs(2, rootFor(2));
        (,, uint64 firstBlock, uint64 firstTime) = log.treeHeadAt(0);
        (,, uint64 secondBlock, uint64 secondTime) = log.treeHeadAt(1);
        assertEq(firstBlock, secondBlock, "blockNumber");
        assertEq(firstTime, secondTime, "timestamp");
    }

    /// @notice Any index at or past the count reverts with the index and the count.
    /// @param commits Fuzzed number of heads to commit first.
    /// @param index Fuzzed index to read.
    function testFuzz_treeHeadAt_revertsWhenIndexOutOfRange(uint8 commits, uint256 index) public {
        uint256 count = bound(commits, 0, 5);
        for (uint64 i = 1; i <= count; i++) {
            commitAs(i, rootFor(i));
        }
        index = bound(index, count, type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IRecordLog.IndexOutOfRange.selector, index, count));
        log.treeHeadAt(index);
    }
}
