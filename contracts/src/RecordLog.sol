// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordLog} from "./IRecordLog.sol";

/// @title RecordLog
/// @author MedLedger
/// @notice Append-only log of RFC 9162 Merkle tree heads, written by a single committer.
/// @dev See {IRecordLog} for the semantics of every function, event and error.
contract RecordLog is IRecordLog {
    /// @notice One committed tree head.
    /// @dev Packed into two storage slots: the three uint64 fields share the first one.
    /// @param treeSize Number of leaves in the tree.
    /// @param blockNumber Number of the block in which the head was committed.
    /// @param timestamp Timestamp of that block.
    /// @param rootHash RFC 9162 root hash of the tree.
    struct TreeHead {
        uint64 treeSize;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 rootHash;
    }

    /// @dev Address allowed to commit tree heads.
    address private _committer;

    /// @dev Committed tree heads, oldest first.
    TreeHead[] private _heads;

    /// @notice Creates an empty log.
    /// @dev Reverts with {ZeroAddress} when `committer` is the zero address. Emits
    ///      {CommitterTransferred} from the zero address, so the committer history is complete.
    /// @param committer Address allowed to commit tree heads.
    constructor(address committer) {
        if (committer == address(0)) revert ZeroAddress();
        _committer = committer;
        emit CommitterTransferred(address(0), committer);
    }

    /// @dev Restricts a function to the committer.
    modifier onlyCommitter() {
        if (msg.sender != _committer) revert NotCommitter(msg.sender);
        _;
    }

    /// @inheritdoc IRecordLog
    function commitTreeHead(uint64 treeSize, bytes32 rootHash) external onlyCommitter returns (uint256 index) {
        index = _heads.length;
        uint64 previous = index == 0 ? 0 : _heads[index - 1].treeSize;
        if (treeSize <= previous) revert TreeSizeNotIncreasing(previous, treeSize);
        _heads.push(
            TreeHead({
                treeSize: treeSize,
                blockNumber: uint64(block.number),
                timestamp: uint64(block.timestamp),
                rootHash: rootHash
            })
        );
        emit TreeHeadCommitted(index, treeSize, rootHash);
    }

    /// @inheritdoc IRecordLog
    function treeHeadCount() external view returns (uint256) {
        return _heads.length;
    }

    /// @inheritdoc IRecordLog
    function treeHeadAt(uint256 index)
        external
        view
        returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp)
    {
        uint256 count = _heads.length;
        if (index >= count) revert IndexOutOfRange(index, count);
        TreeHead storage head = _heads[index];
        return (head.treeSize, head.rootHash, head.blockNumber, head.timestamp);
    }

    /// @inheritdoc IRecordLog
    function committer() external view returns (address) {
        return _committer;
    }

    /// @inheritdoc IRecordLog
    function transferCommitter(address next) external onlyCommitter {
        if (next == address(0)) revert ZeroAddress();
        address previous = _committer;
        _committer = next;
        emit CommitterTransferred(previous, next);
    }
}
