// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRecordLog
/// @author MedLedger
/// @notice Append-only log of Merkle tree heads. The trees are RFC 9162 (Certificate Transparency
///         v2) Merkle trees over the hashes of exchanged FHIR records; they are computed off-chain,
///         and only their heads (size and root hash) are committed here.
/// @dev Tree heads are never changed or removed. Each committed tree must be strictly larger than
///      the previous one, so the log is a growing sequence of consistent snapshots; consistency
///      proofs between two heads are checked off-chain.
interface IRecordLog {
    /// @notice A tree head was appended to the log.
    /// @param index 0-based position of the new tree head in the log.
    /// @param treeSize Number of leaves in the committed tree.
    /// @param rootHash RFC 9162 root hash of the committed tree.
    event TreeHeadCommitted(uint256 indexed index, uint64 indexed treeSize, bytes32 rootHash);

    /// @notice The committer role passed from one address to another.
    /// @param previous Address that was the committer until now.
    /// @param next Address that is the committer from now on.
    event CommitterTransferred(address indexed previous, address indexed next);

    /// @notice The caller is not the committer.
    /// @param caller Address that attempted the call.
    error NotCommitter(address caller);

    /// @notice The proposed tree size is not strictly greater than the last committed one.
    /// @param previous Tree size of the last committed head (0 when the log is empty).
    /// @param proposed Tree size that was proposed.
    error TreeSizeNotIncreasing(uint64 previous, uint64 proposed);

    /// @notice No tree head exists at the requested index.
    /// @param index Requested 0-based index.
    /// @param count Number of tree heads in the log.
    error IndexOutOfRange(uint256 index, uint256 count);

    /// @notice The zero address was given where an account is required.
    error ZeroAddress();

    /// @notice Appends a tree head to the log. Only the committer may call it.
    /// @dev Stores the block number and timestamp of the committing block alongside the head.
    ///      Reverts with {NotCommitter} for any other caller and with {TreeSizeNotIncreasing}
    ///      unless `treeSize` is strictly greater than the previous committed size (so the first
    ///      head must have a size of at least 1). Emits {TreeHeadCommitted}.
    /// @param treeSize Number of leaves in the tree.
    /// @param rootHash RFC 9162 root hash of the tree.
    /// @return index 0-based position of the new tree head.
    function commitTreeHead(uint64 treeSize, bytes32 rootHash) external returns (uint256 index);

    /// @notice Number of tree heads committed so far.
    /// @return Number of tree heads in the log.
    function treeHeadCount() external view returns (uint256);

    /// @notice Reads one committed tree head.
    /// @dev Reverts with {IndexOutOfRange} when `index >= treeHeadCount()`.
    /// @param index 0-based position of the tree head.
    /// @return treeSize Number of leaves in the tree.
    /// @return rootHash RFC 9162 root hash of the tree.
    /// @return blockNumber Number of the block in which the head was committed.
    /// @return timestamp Timestamp (seconds since the Unix epoch) of that block.
    function treeHeadAt(uint256 index)
        external
        view
        returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp);

    /// @notice Address allowed to commit tree heads.
    /// @return The current committer.
    function committer() external view returns (address);

    /// @notice Hands the committer role to another address. Only the committer may call it.
    /// @dev Reverts with {NotCommitter} for any other caller and with {ZeroAddress} when `next` is
    ///      the zero address. Emits {CommitterTransferred}.
    /// @param next Address that becomes the committer.
    function transferCommitter(address next) external;
}
