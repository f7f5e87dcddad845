// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {RecordLog} from "../src/RecordLog.sol";

/// @title RecordLogHandler
/// @notice Drives a {RecordLog} with random commits from the committer and from strangers for
///         the invariant fuzzer, and keeps a shadow copy of what should be in the log.
contract RecordLogHandler is Test {
    /// @notice The log under test.
    RecordLog public immutable log;
    /// @notice The log's committer.
    address public immutable committer;
    /// @notice Tree sizes the log should hold, oldest first.
    uint64[] public expectedSizes;
    /// @notice Root hashes the log should hold, oldest first.
    bytes32[] public expectedRoots;

    /// @notice Creates the handler and the log it drives.
    constructor() {
        committer = makeAddr("committer");
        log = new RecordLog(committer);
    }

    /// @notice Number of heads the log should hold.
    /// @return The expected count.
    function expectedCount() external view returns (uint256) {
        return expectedSizes.length;
    }

    /// @notice Commits any tree size as the committer; only increasing sizes may be accepted.
    /// @param treeSize Fuzzed tree size.
    /// @param rootHash Fuzzed root hash.
    function commit(uint64 treeSize, bytes32 rootHash) external {
        uint256 count = expectedSizes.length;
        uint64 previous = count == 0 ? 0 : expectedSizes[count - 1];
        // Keep most proposals near the end of the log so that sequences grow.
        if (treeSize % 4 != 0 && previous < type(uint64).max - 1_000) {
            treeSize = uint64(bound(treeSize, previous, previous + 1_000));
        }
        vm.prank(committer);
        try log.commitTreeHead(treeSize, rootHash) returns (uint256 index) {
            assertTrue(treeSize > previous, "accepted a tree size that does not increase");
            assertEq(index, count, "index");
            expectedSizes.push(treeSize);
            expectedRoots.push(rootHash);
        } catch {
            assertTrue(treeSize <= previous, "rejected an increasing tree size");
        }
    }

    /// @notice Tries to commit from an address that is not the committer; must always fail.
    /// @param caller Fuzzed caller.
    /// @param treeSize Fuzzed tree size.
    function commitAsStranger(address caller, uint64 treeSize) external {
        if (caller == committer) return;
        vm.prank(caller);
        try log.commitTreeHead(treeSize, bytes32(0)) {
            fail("a stranger committed");
        } catch {}
    }
}

/// @title RecordLogInvariantTest
/// @notice Whatever sequence of calls happens, the log is append-only with strictly increasing
///         tree sizes and holds exactly the accepted commits.
contract RecordLogInvariantTest is Test {
    /// @notice The handler the fuzzer calls.
    RecordLogHandler internal handler;

    /// @notice Deploys the handler and targets it.
    function setUp() public {
        handler = new RecordLogHandler();
        targetContract(address(handler));
    }

    /// @notice The log holds exactly the accepted heads, in order, with strictly increasing sizes.
    function invariant_logMatchesAcceptedCommits() public view {
        RecordLog log = handler.log();
        uint256 count = log.treeHeadCount();
        assertEq(count, handler.expectedCount(), "count");
        uint64 previous;
        for (uint256 i = 0; i < count; i++) {
            (uint64 treeSize, bytes32 rootHash,,) = log.treeHeadAt(i);
            assertGt(treeSize, previous, "tree sizes strictly increase");
            assertEq(treeSize, handler.expectedSizes(i), "treeSize");
            assertEq(rootHash, handler.expectedRoots(i), "rootHash");
            previous = treeSize;
        }
    }

    /// @notice The committer never changes without a transfer.
    function invariant_committerUnchanged() public view {
        assertEq(handler.log().committer(), handler.committer(), "committer");
    }
}
