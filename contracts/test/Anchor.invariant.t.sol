// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {IAnchor} from "../src/IAnchor.sol";
import {Anchor} from "../src/Anchor.sol";

/// @title AnchorHandler
/// @notice Drives an {Anchor} with random anchors from the anchorer and from strangers, and with
///         transfers of the anchorer role between two addresses, for the invariant fuzzer. Keeps
///         a shadow copy of what the anchor should hold.
contract AnchorHandler is Test {
    /// @notice Chain id of the private chain the anchor checkpoints.
    uint64 public constant SOURCE_CHAIN_ID = 7_350_001;

    /// @notice The anchor under test.
    Anchor public immutable anchor;
    /// @notice The anchored RecordLog's address on the private chain.
    address public immutable sourceLog;
    /// @notice First address that takes turns as the anchorer (the initial one).
    address public immutable first;
    /// @notice Second address that takes turns as the anchorer.
    address public immutable second;
    /// @notice Address that should be the anchorer now.
    address public expectedAnchorer;
    /// @notice Number of calls to {Anchor.anchorCheckpoint} that succeeded.
    uint256 public successfulAnchors;
    /// @notice Tree sizes the anchor should hold, oldest first.
    uint64[] public expectedSizes;
    /// @notice Root hashes the anchor should hold, oldest first.
    bytes32[] public expectedRoots;
    /// @notice Source block hashes the anchor should hold, oldest first.
    bytes32[] public expectedSourceHashes;

    /// @notice Creates the handler and the anchor it drives.
    constructor() {
        first = makeAddr("first anchorer");
        second = makeAddr("second anchorer");
        sourceLog = makeAddr("source record log");
        anchor = new Anchor(first, SOURCE_CHAIN_ID, sourceLog);
        expectedAnchorer = first;
    }

    /// @notice Number of checkpoints the anchor should hold.
    /// @return The expected count.
    function expectedCount() external view returns (uint256) {
        return expectedSizes.length;
    }

    /// @notice Anchors any tree size as the anchorer; only increasing sizes may be accepted, and
    ///         a rejection must carry the exact error.
    /// @param treeSize Fuzzed tree size.
    /// @param rootHash Fuzzed root hash.
    /// @param sourceBlockNumber Fuzzed private block number.
    /// @param sourceBlockHash Fuzzed private block hash.
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash, uint64 sourceBlockNumber, bytes32 sourceBlockHash)
        external
    {
        uint256 count = expectedSizes.length;
        uint64 previous = count == 0 ? 0 : expectedSizes[count - 1];
        // Keep most proposals near the last size so that sequences grow.
        if (treeSize % 4 != 0 && previous < type(uint64).max - 1_000) {
            treeSize = uint64(bound(treeSize, previous, previous + 1_000));
        }
        vm.prank(expectedAnchorer);
        try anchor.anchorCheckpoint(treeSize, rootHash, sourceBlockNumber, sourceBlockHash) returns (uint256 index) {
            assertTrue(treeSize > previous, "accepted a tree size that does not increase");
            assertEq(index, count, "index");
            successfulAnchors += 1;
            expectedSizes.push(treeSize);
            expectedRoots.push(rootHash);
            expectedSourceHashes.push(sourceBlockHash);
        } catch (bytes memory reason) {
            assertTrue(treeSize <= previous, "rejected an increasing tree size");
            assertEq(
                reason,
                abi.encodeWithSelector(IAnchor.TreeSizeNotIncreasing.selector, previous, treeSize),
                "revert data"
            );
        }
    }

    /// @notice Tries to anchor from an address that is not the anchorer; must always fail with
    ///         {IAnchor.NotAnchorer}.
    /// @param caller Fuzzed caller.
    /// @param treeSize Fuzzed tree size.
    function anchorAsStranger(address caller, uint64 treeSize) external {
        if (caller == expectedAnchorer) return;
        vm.prank(caller);
        try anchor.anchorCheckpoint(treeSize, bytes32(0), 0, bytes32(0)) {
            fail("a stranger anchored");
        } catch (bytes memory reason) {
            assertEq(reason, abi.encodeWithSelector(IAnchor.NotAnchorer.selector, caller), "revert data");
        }
    }

    /// @notice Hands the anchorer role to the other of the two addresses.
    function transferAnchorer() external {
        address next = expectedAnchorer == first ? second : first;
        vm.prank(expectedAnchorer);
        anchor.transferAnchorer(next);
        expectedAnchorer = next;
    }
}

/// @title AnchorInvariantTest
/// @notice Whatever sequence of calls happens, the anchor is append-only with strictly increasing
///         tree sizes and holds exactly the successful anchors.
contract AnchorInvariantTest is Test {
    /// @notice The handler the fuzzer calls.
    AnchorHandler internal handler;

    /// @notice Deploys the handler and targets it.
    function setUp() public {
        handler = new AnchorHandler();
        targetContract(address(handler));
    }

    /// @notice The number of checkpoints is the number of successful anchors.
    function invariant_countEqualsSuccessfulAnchors() public view {
        assertEq(handler.anchor().checkpointCount(), handler.successfulAnchors(), "count");
    }

    /// @notice The anchor holds exactly the accepted checkpoints, in order, with strictly
    ///         increasing sizes.
    function invariant_checkpointsMatchAcceptedAnchors() public view {
        Anchor anchor = handler.anchor();
        uint256 count = anchor.checkpointCount();
        assertEq(count, handler.expectedCount(), "count");
        uint64 previous;
        for (uint256 i = 0; i < count; i++) {
            (uint64 treeSize, bytes32 rootHash,, bytes32 sourceBlockHash,,) = anchor.checkpointAt(i);
            assertGt(treeSize, previous, "tree sizes strictly increase");
            assertEq(treeSize, handler.expectedSizes(i), "treeSize");
            assertEq(rootHash, handler.expectedRoots(i), "rootHash");
            assertEq(sourceBlockHash, handler.expectedSourceHashes(i), "sourceBlockHash");
            previous = treeSize;
        }
    }

    /// @notice The anchorer changes only through transfers, and the source never changes.
    function invariant_anchorerAndSourceAsExpected() public view {
        Anchor anchor = handler.anchor();
        assertEq(anchor.anchorer(), handler.expectedAnchorer(), "anchorer");
        assertEq(anchor.sourceChainId(), handler.SOURCE_CHAIN_ID(), "sourceChainId");
        assertEq(anchor.sourceLog(), handler.sourceLog(), "sourceLog");
    }
}
