// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AnchorFixture} from "./utils/Fixtures.sol";
import {Vm} from "./utils/Test.sol";
import {IAnchor} from "../src/IAnchor.sol";
import {Anchor} from "../src/Anchor.sol";

/// @title AnchorAnchorTest
/// @notice Construction of {Anchor} and {Anchor.anchorCheckpoint}.
contract AnchorAnchorTest is AnchorFixture {
    /// @notice The constructor arguments become the anchorer and the source, and there is no
    ///         checkpoint yet.
    function test_constructor_setsAnchorerSourceAndNoCheckpoint() public view {
        assertEq(anchor.anchorer(), anchorer, "anchorer");
        assertEq(anchor.sourceChainId(), SOURCE_CHAIN_ID, "sourceChainId");
        assertEq(anchor.sourceLog(), sourceLog, "sourceLog");
        assertEq(anchor.checkpointCount(), 0, "count");
    }

    /// @notice The constructor records the initial anchorer as a transfer from address 0.
    function test_constructor_emitsAnchorerTransferred() public {
        vm.recordLogs();
        Anchor created = new Anchor(anchorer, SOURCE_CHAIN_ID, sourceLog);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(created), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IAnchor.AnchorerTransferred.selector, "event");
        assertEq(logs[0].topics[1], bytes32(0), "previous");
        assertEq(logs[0].topics[2], bytes32(uint256(uint160(anchorer))), "next");
        assertEq(logs[0].data.length, 0, "data");
    }

    /// @notice The constructor rejects a zero anchorer.
    function test_constructor_revertsWhenAnchorerIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.ZeroAddress.selector));
        new Anchor(address(0), SOURCE_CHAIN_ID, sourceLog);
    }

    /// @notice The constructor rejects a zero source log.
    function test_constructor_revertsWhenSourceLogIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.ZeroAddress.selector));
        new Anchor(anchorer, SOURCE_CHAIN_ID, address(0));
    }

    /// @notice Any non-zero anchorer and source log, and any chain id, are stored as given.
    /// @param anchorer_ Fuzzed anchorer.
    /// @param chainId Fuzzed source chain id.
    /// @param log_ Fuzzed source log.
    function testFuzz_constructor_storesAnySource(address anchorer_, uint64 chainId, address log_) public {
        vm.assume(anchorer_ != address(0) && log_ != address(0));
        Anchor created = new Anchor(anchorer_, chainId, log_);
        assertEq(created.anchorer(), anchorer_, "anchorer");
        assertEq(created.sourceChainId(), chainId, "sourceChainId");
        assertEq(created.sourceLog(), log_, "sourceLog");
    }

    /// @notice A checkpoint is stored with its source block and the public block's number and
    ///         timestamp.
    function test_anchorCheckpoint_storesCheckpointWithBlockData() public {
        vm.roll(19_000_000);
        vm.warp(1_767_225_600);
        vm.prank(anchorer);
        anchor.anchorCheckpoint(7, rootFor(7), 4_242, blockHashFor(7));

        (
            uint64 treeSize,
            bytes32 rootHash,
            uint64 sourceBlockNumber,
            bytes32 sourceBlockHash,
            uint64 blockNumber,
            uint64 timestamp
        ) = anchor.checkpointAt(0);
        assertEq(treeSize, 7, "treeSize");
        assertEq(rootHash, rootFor(7), "rootHash");
        assertEq(sourceBlockNumber, 4_242, "sourceBlockNumber");
        assertEq(sourceBlockHash, blockHashFor(7), "sourceBlockHash");
        assertEq(blockNumber, 19_000_000, "blockNumber");
        assertEq(timestamp, 1_767_225_600, "timestamp");
        assertEq(anchor.checkpointCount(), 1, "count");
    }

    /// @notice Checkpoints get 0-based indices in order.
    function test_anchorCheckpoint_returnsSequentialIndices() public {
        assertEq(anchorAs(1), 0, "first index");
        assertEq(anchorAs(2), 1, "second index");
        assertEq(anchorAs(10), 2, "third index");
        assertEq(anchor.checkpointCount(), 3, "count");
    }

    /// @notice Anchoring emits CheckpointAnchored with the index and size as topics and the root
    ///         and source block as data.
    function test_anchorCheckpoint_emitsCheckpointAnchored() public {
        anchorAs(3);
        vm.recordLogs();
        anchorAs(5);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "log count");
        assertEq(logs[0].emitter, address(anchor), "emitter");
        assertEq(logs[0].topics.length, 3, "topic count");
        assertEq(logs[0].topics[0], IAnchor.CheckpointAnchored.selector, "event");
        assertEq(logs[0].topics[1], bytes32(uint256(1)), "index");
        assertEq(logs[0].topics[2], bytes32(uint256(5)), "treeSize");
        assertEq(logs[0].data, abi.encode(rootFor(5), sourceBlockFor(5), blockHashFor(5)), "data");
    }

    /// @notice The event matches what forge expects for the same emit.
    function test_anchorCheckpoint_emitsExpectedEvent() public {
        vm.expectEmit(address(anchor));
        emit IAnchor.CheckpointAnchored(0, 9, rootFor(9), sourceBlockFor(9), blockHashFor(9));
        anchorAs(9);
    }

    /// @notice The source block is stored as given and not checked: two checkpoints may name the
    ///         same private block, and a later one may name an earlier block.
    function test_anchorCheckpoint_doesNotCheckSourceBlock() public {
        vm.startPrank(anchorer);
        anchor.anchorCheckpoint(1, rootFor(1), 100, blockHashFor(1));
        anchor.anchorCheckpoint(2, rootFor(2), 100, blockHashFor(1));
        anchor.anchorCheckpoint(3, rootFor(3), 0, bytes32(0));
        vm.stopPrank();
        (,, uint64 sourceBlockNumber, bytes32 sourceBlockHash,,) = anchor.checkpointAt(1);
        assertEq(sourceBlockNumber, 100, "second sourceBlockNumber");
        assertEq(sourceBlockHash, blockHashFor(1), "second sourceBlockHash");
        (,, sourceBlockNumber, sourceBlockHash,,) = anchor.checkpointAt(2);
        assertEq(sourceBlockNumber, 0, "third sourceBlockNumber");
        assertEq(sourceBlockHash, bytes32(0), "third sourceBlockHash");
    }

    /// @notice The largest possible tree size can be anchored.
    function test_anchorCheckpoint_acceptsMaxTreeSize() public {
        anchorAs(type(uint64).max);
        (uint64 treeSize,,,,,) = anchor.checkpointAt(0);
        assertEq(treeSize, type(uint64).max, "treeSize");
    }

    /// @notice Nothing can be anchored after the largest possible tree size.
    function test_anchorCheckpoint_revertsWhenPreviousIsMaxTreeSize() public {
        anchorAs(type(uint64).max);
        vm.expectRevert(
            abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, type(uint64).max, type(uint64).max)
        );
        anchorAs(type(uint64).max);
    }

    /// @notice Only the anchorer may anchor.
    function test_anchorCheckpoint_revertsWhenCallerIsNotAnchorer() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, stranger));
        vm.prank(stranger);
        anchor.anchorCheckpoint(1, rootFor(1), sourceBlockFor(1), blockHashFor(1));
    }

    /// @notice The first checkpoint must describe a non-empty tree.
    function test_anchorCheckpoint_revertsWhenFirstTreeSizeIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, 0, 0));
        anchorAs(0);
    }

    /// @notice The same tree size cannot be anchored twice, even with another root and block.
    function test_anchorCheckpoint_revertsWhenTreeSizeRepeats() public {
        anchorAs(4);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, 4, 4));
        vm.prank(anchorer);
        anchor.anchorCheckpoint(4, keccak256("another root"), 1, keccak256("another block"));
    }

    /// @notice A smaller tree cannot follow a larger one.
    function test_anchorCheckpoint_revertsWhenTreeSizeDecreases() public {
        anchorAs(9);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, 9, 8));
        anchorAs(8);
    }

    /// @notice A failed anchor leaves the checkpoints unchanged.
    function test_anchorCheckpoint_revertsWithoutChangingCheckpoints() public {
        anchorAs(2);
        vm.prank(anchorer);
        try anchor.anchorCheckpoint(1, rootFor(1), sourceBlockFor(1), blockHashFor(1)) {
            fail("anchor of a smaller tree succeeded");
        } catch {}
        assertEq(anchor.checkpointCount(), 1, "count");
        (uint64 treeSize, bytes32 rootHash,, bytes32 sourceBlockHash,,) = anchor.checkpointAt(0);
        assertEq(treeSize, 2, "treeSize");
        assertEq(rootHash, rootFor(2), "rootHash");
        assertEq(sourceBlockHash, blockHashFor(2), "sourceBlockHash");
    }

    /// @notice Any checkpoint with a positive size is stored exactly, with any block data.
    /// @param treeSize Fuzzed tree size.
    /// @param rootHash Fuzzed root.
    /// @param sourceBlockNumber Fuzzed private block number.
    /// @param sourceBlockHash Fuzzed private block hash.
    /// @param blockNumber Fuzzed public block number.
    /// @param timestamp Fuzzed public block timestamp.
    function testFuzz_anchorCheckpoint_storesAnyCheckpoint(
        uint64 treeSize,
        bytes32 rootHash,
        uint64 sourceBlockNumber,
        bytes32 sourceBlockHash,
        uint64 blockNumber,
        uint64 timestamp
    ) public {
        treeSize = uint64(bound(treeSize, 1, type(uint64).max));
        vm.roll(blockNumber);
        vm.warp(timestamp);
        vm.expectEmit(address(anchor));
        emit IAnchor.CheckpointAnchored(0, treeSize, rootHash, sourceBlockNumber, sourceBlockHash);
        vm.prank(anchorer);
        assertEq(anchor.anchorCheckpoint(treeSize, rootHash, sourceBlockNumber, sourceBlockHash), 0, "index");

        (
            uint64 storedSize,
            bytes32 storedRoot,
            uint64 storedSourceBlock,
            bytes32 storedSourceHash,
            uint64 storedBlock,
            uint64 storedTime
        ) = anchor.checkpointAt(0);
        assertEq(storedSize, treeSize, "treeSize");
        assertEq(storedRoot, rootHash, "rootHash");
        assertEq(storedSourceBlock, sourceBlockNumber, "sourceBlockNumber");
        assertEq(storedSourceHash, sourceBlockHash, "sourceBlockHash");
        assertEq(storedBlock, blockNumber, "blockNumber");
        assertEq(storedTime, timestamp, "timestamp");
    }

    /// @notice Tree sizes must strictly increase: a size not above the previous one reverts.
    /// @param previous Fuzzed first tree size.
    /// @param proposed Fuzzed second tree size.
    function testFuzz_anchorCheckpoint_revertsWhenTreeSizeNotIncreasing(uint64 previous, uint64 proposed) public {
        previous = uint64(bound(previous, 1, type(uint64).max));
        proposed = uint64(bound(proposed, 0, previous));
        anchorAs(previous);
        vm.expectRevert(abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, previous, proposed));
        anchorAs(proposed);
        assertEq(anchor.checkpointCount(), 1, "count");
    }

    /// @notice Any strictly increasing sequence of sizes is accepted, in order.
    /// @param steps Fuzzed positive gaps between consecutive tree sizes.
    function testFuzz_anchorCheckpoint_acceptsStrictlyIncreasingSizes(uint32[8] memory steps) public {
        uint64 size;
        for (uint256 i = 0; i < steps.length; i++) {
            size += uint64(bound(steps[i], 1, type(uint32).max));
            assertEq(anchorAs(size), i, "index");
        }
        assertEq(anchor.checkpointCount(), steps.length, "count");
        uint64 previous;
        for (uint256 i = 0; i < steps.length; i++) {
            (uint64 treeSize, bytes32 rootHash, uint64 sourceBlockNumber, bytes32 sourceBlockHash,,) =
                anchor.checkpointAt(i);
            assertGt(treeSize, previous, "sizes increase");
            assertEq(rootHash, rootFor(treeSize), "rootHash");
            assertEq(sourceBlockNumber, sourceBlockFor(treeSize), "sourceBlockNumber");
            assertEq(sourceBlockHash, blockHashFor(treeSize), "sourceBlockHash");
            previous = treeSize;
        }
    }

    /// @notice No address other than the anchorer can anchor.
    /// @param caller Fuzzed caller.
    /// @param treeSize Fuzzed tree size.
    function testFuzz_anchorCheckpoint_revertsWhenCallerIsNotAnchorer(address caller, uint64 treeSize) public {
        vm.assume(caller != anchorer);
        treeSize = uint64(bound(treeSize, 1, type(uint64).max));
        vm.expectRevert(abi.encodeWithSelector(IAnchor.NotAnchorer.selector, caller));
        vm.prank(caller);
        anchor.anchorCheckpoint(treeSize, rootFor(treeSize), sourceBlockFor(treeSize), blockHashFor(treeSize));
        assertEq(anchor.checkpointCount(), 0, "count");
    }
}
