// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {Anchor} from "../../src/Anchor.sol";
import {ConsentRegistry} from "../../src/ConsentRegistry.sol";
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

/// @title AnchorFixture
/// @notice Deploys a fresh {Anchor} with a named anchorer before each test.
abstract contract AnchorFixture is Test {
    /// @notice Chain id of the private chain the anchor under test checkpoints.
    uint64 internal constant SOURCE_CHAIN_ID = 7_350_001;

    /// @notice The anchor under test.
    Anchor internal anchor;
    /// @notice Address allowed to anchor.
    address internal anchorer;
    /// @notice Address of the RecordLog on the private chain.
    address internal sourceLog;
    /// @notice Some other address.
    address internal stranger;

    /// @notice Deploys the anchor.
    function setUp() public virtual {
        anchorer = makeAddr("anchorer");
        sourceLog = makeAddr("source record log");
        stranger = makeAddr("stranger");
        anchor = new Anchor(anchorer, SOURCE_CHAIN_ID, sourceLog);
    }

    /// @notice Anchors a checkpoint of size `treeSize` as the anchorer, with deterministic root,
    ///         source block number and source block hash.
    /// @param treeSize Tree size to anchor.
    /// @return index Index returned by the contract.
    function anchorAs(uint64 treeSize) internal returns (uint256 index) {
        vm.prank(anchorer);
        return anchor.anchorCheckpoint(treeSize, rootFor(treeSize), sourceBlockFor(treeSize), blockHashFor(treeSize));
    }

    /// @notice A deterministic root hash for test checkpoints.
    /// @param treeSize Tree size the root belongs to.
    /// @return The root hash.
    function rootFor(uint64 treeSize) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", treeSize));
    }

    /// @notice A deterministic private-chain block number for test checkpoints.
    /// @param treeSize Tree size the block committed.
    /// @return The source block number.
    function sourceBlockFor(uint64 treeSize) internal pure returns (uint64) {
        return uint64(uint256(keccak256(abi.encode("source block", treeSize))));
    }

    /// @notice A deterministic private-chain block hash for test checkpoints.
    /// @param treeSize Tree size the block committed.
    /// @return The source block hash.
    function blockHashFor(uint64 treeSize) internal pure returns (bytes32) {
        return keccak256(abi.encode("source block hash", treeSize));
    }
}

/// @title ConsentRegistryFixture
/// @notice Deploys a fresh {ConsentRegistry} with a named registrar before each test.
abstract contract ConsentRegistryFixture is Test {
    /// @notice The registry under test.
    ConsentRegistry internal registry;
    /// @notice Address allowed to record changes.
    address internal registrar;
    /// @notice Some other address.
    address internal stranger;
    /// @notice A salted commitment of a FHIR Consent id.
    bytes32 internal constant CONSENT_1 = keccak256("salt-c1|Consent/consent-1");
    /// @notice A salted commitment of another FHIR Consent id.
    bytes32 internal constant CONSENT_2 = keccak256("salt-c2|Consent/consent-2");
    /// @notice A salted patient commitment.
    bytes32 internal constant ALICE = keccak256("salt-1|patient-alice");
    /// @notice Another salted patient commitment.
    bytes32 internal constant BOB = keccak256("salt-2|patient-bob");

    /// @notice Deploys the registry.
    function setUp() public virtual {
        registrar = makeAddr("registrar");
        stranger = makeAddr("stranger");
        registry = new ConsentRegistry(registrar);
    }

    /// @notice Records a grant as the registrar, with deterministic commitment and authorisation.
    /// @param consentId Consent id commitment.
    /// @param patient Patient commitment.
    /// @param n Distinguishes the granted Consent version (any number).
    /// @return version Version returned by the contract.
    function grantAs(bytes32 consentId, bytes32 patient, uint256 n) internal returns (uint64 version) {
        vm.prank(registrar);
        return registry.recordGrant(consentId, patient, commitmentFor(consentId, n), authorizationFor(consentId, n));
    }

    /// @notice Records a revocation as the registrar, with a deterministic authorisation.
    /// @param consentId Consent id commitment.
    /// @param patient Patient commitment.
    /// @param n Distinguishes the authorisation (any number).
    /// @return version Version returned by the contract.
    function revokeAs(bytes32 consentId, bytes32 patient, uint256 n) internal returns (uint64 version) {
        vm.prank(registrar);
        return registry.recordRevocation(consentId, patient, authorizationFor(consentId, n));
    }

    /// @notice A deterministic, non-zero commitment of a Consent version.
    /// @param consentId Consent id commitment.
    /// @param n Distinguishes the version.
    /// @return The commitment.
    function commitmentFor(bytes32 consentId, uint256 n) internal pure returns (bytes32) {
        return keccak256(abi.encode("consent version", consentId, n));
    }

    /// @notice A deterministic commitment of a patient authorisation.
    /// @param consentId Consent id commitment.
    /// @param n Distinguishes the authorisation.
    /// @return The authorisation commitment.
    function authorizationFor(bytes32 consentId, uint256 n) internal pure returns (bytes32) {
        return keccak256(abi.encode("authorization", consentId, n));
    }
}
