// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IAnchor
/// @author MedLedger
/// @notice Public-chain record of checkpoints of one private chain's RecordLog. A checkpoint is
///         a RecordLog tree head (tree size and RFC 9162 root hash) of the private chain
///         identified by {sourceChainId} and {sourceLog}, together with the private block
///         (number and hash) that committed it. Auditors check RFC 9162 inclusion and consistency
///         proofs off-chain against these checkpoints, using nothing but a public-chain RPC
///         endpoint: they need no access to the private chain.
/// @dev Deployed on a public chain. Checkpoints are never changed or removed, and each one must
///      describe a strictly larger tree than the previous one, so consecutive checkpoints can be
///      linked by consistency proofs. The contract cannot see the private chain: it stores the
///      source block number and hash as the anchorer states them, without checking them. With
///      each checkpoint it also stores the number and timestamp of the public block that anchored
///      it.
interface IAnchor {
    /// @notice A checkpoint was anchored.
    /// @param index 0-based position of the new checkpoint.
    /// @param treeSize Number of leaves in the anchored RecordLog tree.
    /// @param rootHash RFC 9162 root hash of that tree.
    /// @param sourceBlockNumber Number of the private-chain block that committed the tree head.
    /// @param sourceBlockHash Hash of that private-chain block.
    event CheckpointAnchored(
        uint256 indexed index,
        uint64 indexed treeSize,
        bytes32 rootHash,
        uint64 sourceBlockNumber,
        bytes32 sourceBlockHash
    );

    /// @notice The anchorer role passed from one address to another.
    /// @param previous Address that was the anchorer until now (the zero address at deployment).
    /// @param next Address that is the anchorer from now on.
    event AnchorerTransferred(address indexed previous, address indexed next);

    /// @notice The caller is not the anchorer.
    /// @param caller Address that attempted the call.
    error NotAnchorer(address caller);

    /// @notice The proposed tree size is not strictly greater than the last anchored one.
    /// @param previous Tree size of the last checkpoint (0 when there is none).
    /// @param proposed Tree size that was proposed.
    error TreeSizeNotIncreasing(uint64 previous, uint64 proposed);

    /// @notice No checkpoint exists at the requested index.
    /// @param index Requested 0-based index.
    /// @param count Number of checkpoints anchored.
    error IndexOutOfRange(uint256 index, uint256 count);

    /// @notice The zero address was given where an account or contract is required.
    error ZeroAddress();

    /// @notice Anchors a checkpoint of the source RecordLog. Only the anchorer may call it.
    /// @dev Stores the number and timestamp of the anchoring (public) block alongside the
    ///      checkpoint. Reverts with {NotAnchorer} for any other caller and with
    ///      {TreeSizeNotIncreasing} unless `treeSize` is strictly greater than the previous
    ///      checkpoint's (so the first checkpoint must have a size of at least 1). The source
    ///      block is not checked. Emits {CheckpointAnchored}.
    /// @param treeSize Number of leaves in the RecordLog tree.
    /// @param rootHash RFC 9162 root hash of the tree.
    /// @param sourceBlockNumber Number of the private-chain block that committed the tree head.
    /// @param sourceBlockHash Hash of that private-chain block.
    /// @return index 0-based position of the new checkpoint.
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash, uint64 sourceBlockNumber, bytes32 sourceBlockHash)
        external
        returns (uint256 index);

    /// @notice Number of checkpoints anchored so far.
    /// @return Number of checkpoints.
    function checkpointCount() external view returns (uint256);

    /// @notice Reads one checkpoint.
    /// @dev Reverts with {IndexOutOfRange} when `index >= checkpointCount()`.
    /// @param index 0-based position of the checkpoint.
    /// @return treeSize Number of leaves in the RecordLog tree.
    /// @return rootHash RFC 9162 root hash of the tree.
    /// @return sourceBlockNumber Number of the private-chain block that committed the tree head.
    /// @return sourceBlockHash Hash of that private-chain block.
    /// @return blockNumber Number of the public-chain block in which the checkpoint was anchored.
    /// @return timestamp Timestamp (seconds since the Unix epoch) of that public block.
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
        );

    /// @notice Address allowed to anchor checkpoints.
    /// @return The current anchorer.
    function anchorer() external view returns (address);

    /// @notice Chain id of the private chain whose RecordLog is anchored.
    /// @return The source chain id, fixed at deployment.
    function sourceChainId() external view returns (uint64);

    /// @notice Address of the anchored RecordLog on the private chain.
    /// @return The source RecordLog address, fixed at deployment.
    function sourceLog() external view returns (address);

    /// @notice Hands the anchorer role to another address. Only the anchorer may call it.
    /// @dev Reverts with {NotAnchorer} for any other caller and with {ZeroAddress} when `next` is
    ///      the zero address. Emits {AnchorerTransferred}.
    /// @param next Address that becomes the anchorer.
    function transferAnchorer(address next) external;
}
