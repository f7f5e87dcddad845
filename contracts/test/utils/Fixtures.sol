// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {RecordLog} from "../../src/RecordLog.sol";
import {Roles} from "../../src/Roles.sol";
import {ROLE_PRACTITIONER} from "../../src/IRoles.sol";

/// @title RecordLogFixture
/// @notice Deploys a fresh {RecordLog} with a named committer before each test.
abstract contract RecordLogFixture is Test {
    /// @notice The log under test.
    RecordLog internal log;
    /// @notice Address allowed to commit.
    address internal committer;
    /// @notice Some other address.
    address internal stranger;

    /// @notice Deploys the log.
    function setUp() public virtual {
        committer = makeAddr("committer");
        stranger = makeAddr("stranger");
        log = new RecordLog(committer);
    }

    /// @notice Commits a head as the committer.
    /// @param treeSize Tree size to commit.
    /// @param rootHash Root hash to commit.
    /// @return index Index returned by the contract.
    function commitAs(uint64 treeSize, bytes32 rootHash) internal returns (uint256 index) {
        vm.prank(committer);
        return log.commitTreeHead(treeSize, rootHash);
    }

    /// @notice A deterministic root hash for test commits.
    /// @param treeSize Tree size the root belongs to.
    /// @return The root hash.
    function rootFor(uint64 treeSize) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", treeSize));
    }
}

/// @title RolesFixture
/// @notice Deploys a fresh {Roles} with one admin and one authority operator before each test.
abstract contract RolesFixture is Test {
    /// @notice The registry under test.
    Roles internal roles;
    /// @notice The admin operator given to the constructor.
    address internal admin;
    /// @notice An authority operator set up by `admin`.
    address internal authority;
    /// @notice Some address with no operator rights.
    address internal stranger;
    /// @notice A salted account commitment used by the tests.
    bytes32 internal constant ALICE = keccak256("salt-1|patient-or-practitioner-alice");
    /// @notice Another salted account commitment.
    bytes32 internal constant BOB = keccak256("salt-2|practitioner-bob");

    /// @notice Deploys the registry and sets up the authority operator.
    function setUp() public virtual {
        admin = makeAddr("admin");
        authority = makeAddr("authority");
        stranger = makeAddr("stranger");
        roles = new Roles(admin);
        vm.prank(admin);
        roles.setAuthority(authority, true);
    }

    /// @notice Grants `role` to `account` as the admin.
    /// @param account Account commitment.
    /// @param role Role id.
    function grantAs(bytes32 account, uint8 role) internal {
        vm.prank(admin);
        roles.grantRole(account, role);
    }

    /// @notice Makes `account` a verified practitioner.
    /// @param account Account commitment.
    function makeVerifiedPractitioner(bytes32 account) internal {
        grantAs(account, ROLE_PRACTITIONER);
        vm.prank(authority);
        roles.setPractitionerVerified(account, true);
    }
}
