// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AnchorFixture} from "./utils/Fixtures.sol";
import {IAnchor} from "../src/IAnchor.sol";

/// @title AnchorReadTest
/// @notice {Anchor.checkpointCount}, {Anchor.checkpointAt}, {Anchor.sourceChainId} and
///         {Anchor.sourceLog}.
contract AnchorReadTest is AnchorFixture {
    /// @notice A new anchor holds no checkpoint.
    function test_checkpointCount_isZeroInitially() public view {
        assertEq(anchor.checkpointCount(), 0, "count");
    }

    /// @notice Reading from an empty anchor reverts.
    function test_checkpointAt_revertsWhenEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.IndexOutOfRange.selector, 0, 0));
        anchor.checkpointAt(0);
    }

    /// @notice The index equal to the count is out of range.
    function test_checkpointAt_revertsWhenIndexEqualsCount() public {
        anchorAs(1);
        anchorAs(2);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.IndexOutOfRange.selector, 2, 2));
        anchor.checkpointAt(2);
    }

    /// @notice Earlier checkpoints keep their values and block data after later anchors.
    function test_checkpointAt_keepsEarlierCheckpointsUnchanged() public {
        vm.roll(10);
        vm.warp(1_000);
        anchorAs(3);
        vm.roll(11);
        vm.warp(1_012);
        anchorAs(8);

        (
            uint64 treeSize,
            bytes32 rootHash,
            uint64 sourceBlockNumber,
            bytes32 sourceBlockHash,
            uint64 blockNumber,
            uint64 timestamp
        ) = anchor.checkpointAt(0);
        assertEq(treeSize, 3, "first treeSize");
        assertEq(rootHash, rootFor(3), "first rootHash");
        assertEq(sourceBlockNumber, sourceBlockFor(3), "first sourceBlockNumber");
        assertEq(sourceBlockHash, blockHashFor(3), "first sourceBlockHash");
        assertEq(blockNumber, 10, "first blockNumber");
        assertEq(timestamp, 1_000, "first timestamp");

        (treeSize, rootHash, sourceBlockNumber, sourceBlockHash, blockNumber, timestamp) = anchor.checkpointAt(1);
        assertEq(treeSize, 8, "second treeSize");
        assertEq(rootHash, rootFor(8), "second rootHash");
        assertEq(sourceBlockNumber, sourceBlockFor(8), "second sourceBlockNumber");
        assertEq(sourceBlockHash, blockHashFor(8), "second sourceBlockHash");
        assertEq(blockNumber, 11, "second blockNumber");
        assertEq(timestamp, 1_012, "second timestamp");
    }

    /// @notice Several checkpoints anchored in the same block share its number and timestamp.
    function test_checkpointAt_checkpointsInOneBlockShareBlockData() public {
        vm.roll(77);
        vm.warp(5_555);
        anchorAs(1);
        anchorAs(2);
        (,,,, uint64 firstBlock, uint64 firstTime) = anchor.checkpointAt(0);
        (,,,, uint64 secondBlock, uint64 secondTime) = anchor.checkpointAt(1);
        assertEq(firstBlock, 77, "first blockNumber");
        assertEq(secondBlock, 77, "second blockNumber");
        assertEq(firstTime, 5_555, "first timestamp");
        assertEq(secondTime, 5_555, "second timestamp");
    }

    /// @notice The source chain id and log never change, whatever is anchored.
    function test_source_unchangedByAnchoring() public {
        anchorAs(1);
        vm.prank(anchorer);
        anchor.transferAnchorer(stranger);
        assertEq(anchor.sourceChainId(), SOURCE_CHAIN_ID, "sourceChainId");
        assertEq(anchor.sourceLog(), sourceLog, "sourceLog");
    }

    /// @notice Any index at or past the count reverts with the index and the count.
    /// @param anchors Fuzzed number of checkpoints to anchor first.
    /// @param index Fuzzed index to read.
    function testFuzz_checkpointAt_revertsWhenIndexOutOfRange(uint8 anchors, uint256 index) public {
        uint256 count = bound(anchors, 0, 5);
        for (uint64 i = 1; i <= count; i++) {
            anchorAs(i);
        }
        index = bound(index, count, type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.IndexOutOfRange.selector, index, count));
        anchor.checkpointAt(index);
    }
}
