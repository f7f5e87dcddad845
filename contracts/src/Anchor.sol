// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAnchor} from "./IAnchor.sol";

/// @title Anchor
/// @author MedLedger
/// @notice Public-chain record of checkpoints of one private-chain RecordLog, written by a single
///         anchorer.
/// @dev See {IAnchor} for the semantics of every function, event and error.
contract Anchor is IAnchor {
    /// @notice One anchored checkpoint.
    /// @dev Packed into three storage slots: the four uint64 fields share the first one.
    /// @param treeSize Number of leaves in the RecordLog tree.
    /// @param sourceBlockNumber Number of the private-chain block that committed the tree head.
    /// @param blockNumber Number of the public-chain block in which the checkpoint was anchored.
    /// @param timestamp Timestamp of that public block.
    /// @param rootHash RFC 9162 root hash of the tree.
    /// @param sourceBlockHash Hash of the private-chain block.
    struct Checkpoint {
        uint64 treeSize;
        uint64 sourceBlockNumber;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 rootHash;
        bytes32 sourceBlockHash;
    }

    /// @dev Chain id of the private chain whose RecordLog is anchored.
    uint64 private immutable _sourceChainId;

    /// @dev Address of the anchored RecordLog on the private chain.
    address private immutable _sourceLog;

    /// @dev Address allowed to anchor checkpoints.
    address private _anchorer;

    /// @dev Anchored checkpoints, oldest first.
    Checkpoint[] private _checkpoints;

    /// @notice Creates an empty anchor for the RecordLog at `sourceLog` on chain `sourceChainId`.
    /// @dev Reverts with {ZeroAddress} when `anchorer` or `sourceLog` is the zero address. Emits
    ///      {AnchorerTransferred} from the zero address, so the anchorer history is complete.
    /// @param anchorer Address allowed to anchor checkpoints.
    /// @param sourceChainId Chain id of the private chain.
    /// @param sourceLog Address of the RecordLog on the private chain.
    constructor(address anchorer, uint64 sourceChainId, address sourceLog) {
        if (anchorer == address(0) || sourceLog == address(0)) revert ZeroAddress();
        _sourceChainId = sourceChainId;
        _sourceLog = sourceLog;
        _anchorer = anchorer;
        emit AnchorerTransferred(address(0), anchorer);
    }

    /// @dev Restricts a function to the anchorer.
    modifier onlyAnchorer() {
        if (msg.sender != _anchorer) revert NotAnchorer(msg.sender);
        _;
    }

    /// @inheritdoc IAnchor
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash, uint64 sourceBlockNumber, bytes32 sourceBlockHash)
        external
        onlyAnchorer
        returns (uint256 index)
    {
        index = _checkpoints.length;
        uint64 previous = index == 0 ? 0 : _checkpoints[index - 1].treeSize;
        if (treeSize <= previous) revert TreeSizeNotIncreasing(previous, treeSize);
        _checkpoints.push(
            Checkpoint({
                treeSize: treeSize,
                sourceBlockNumber: sourceBlockNumber,
                blockNumber: uint64(block.number),
                timestamp: uint64(block.timestamp),
                rootHash: rootHash,
                sourceBlockHash: sourceBlockHash
            })
        );
        emit CheckpointAnchored(index, treeSize, rootHash, sourceBlockNumber, sourceBlockHash);
    }

    /// @inheritdoc IAnchor
    function checkpointCount() external view returns (uint256) {
        return _checkpoints.length;
    }

    /// @inheritdoc IAnchor
    function checkpointAt(uint256 index)
        external
        view
        returns (
            uint64 treeSize,
            bytes32 rootHash,
            uint64 sourceBlockNumber,
            bytes32 sourceBlockHash,
            uint64 blockNumber,
            uint64 timestamp
        )
    {
        uint256 count = _checkpoints.length;
        if (index >= count) revert IndexOutOfRange(index, count);
        Checkpoint storage checkpoint = _checkpoints[index];
        return (
            checkpoint.treeSize,
            checkpoint.rootHash,
            checkpoint.sourceBlockNumber,
            checkpoint.sourceBlockHash,
            checkpoint.blockNumber,
            checkpoint.timestamp
        );
    }

    /// @inheritdoc IAnchor
    function anchorer() external view returns (address) {
        return _anchorer;
    }

    /// @inheritdoc IAnchor
    function sourceChainId() external view returns (uint64) {
        return _sourceChainId;
    }

    /// @inheritdoc IAnchor
    function sourceLog() external view returns (address) {
        return _sourceLog;
    }

    /// @inheritdoc IAnchor
    function transferAnchorer(address next) external onlyAnchorer {
        if (next == address(0)) revert ZeroAddress();
        address previous = _anchorer;
        _anchorer = next;
        emit AnchorerTransferred(previous, next);
    }
}
