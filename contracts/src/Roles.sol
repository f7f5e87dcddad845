// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRoles, ROLE_PRACTITIONER, MAX_ROLE} from "./IRoles.sol";

/// @title Roles
/// @author MedLedger
/// @notice Role registry over salted account commitments, managed by admin operators, with
///         practitioner verification by authority operators.
/// @dev See {IRoles} for the semantics of every function, event and error. Each account's roles
///      are a bit set: bit `r` is set when the account holds role `r`.
contract Roles is IRoles {
    /// @dev Role bit set of each account.
    mapping(bytes32 account => uint256 roleBits) private _roles;

    /// @dev Verification flag of each practitioner; only meaningful while the role is held.
    mapping(bytes32 account => bool verified) private _verified;

    /// @dev Admin operators.
    mapping(address operator => bool enabled) private _admins;

    /// @dev Authority operators.
    mapping(address operator => bool enabled) private _authorities;

    /// @dev Number of enabled admin operators; never 0 after construction.
    uint256 private _adminCount;

    /// @notice Creates the registry with one admin operator.
    /// @dev Reverts with {ZeroAddress} when `admin` is the zero address. Emits {AdminSet}.
    /// @param admin Address that becomes the first admin operator.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _admins[admin] = true;
        _adminCount = 1;
        emit AdminSet(admin, true);
    }

    /// @dev Restricts a function to admin operators.
    modifier onlyAdmin() {
        if (!_admins[msg.sender]) revert NotAdmin(msg.sender);
        _;
    }

    /// @dev Restricts a function to authority operators.
    modifier onlyAuthority() {
        if (!_authorities[msg.sender]) revert NotAuthority(msg.sender);
        _;
    }

    /// @inheritdoc IRoles
    function grantRole(bytes32 account, uint8 role) external onlyAdmin {
        uint256 bit = _roleBit(role);
        uint256 bits = _roles[account];
        if (bits & bit != 0) return;
        _roles[account] = bits | bit;
        emit RoleGranted(account, role, msg.sender);
    }

    /// @inheritdoc IRoles
    function revokeRole(bytes32 account, uint8 role) external onlyAdmin {
        uint256 bit = _roleBit(role);
        uint256 bits = _roles[account];
        if (bits & bit == 0) return;
        _roles[account] = bits & ~bit;
        emit RoleRevoked(account, role, msg.sender);
        if (role == ROLE_PRACTITIONER && _verified[account]) {
            _verified[account] = false;
            emit PractitionerVerified(account, false, msg.sender);
        }
    }

    /// @inheritdoc IRoles
    function hasRole(bytes32 account, uint8 role) public view returns (bool) {
        if (role == 0 || role > MAX_ROLE) return false;
        return _roles[account] & (uint256(1) << role) != 0;
    }

    /// @inheritdoc IRoles
    function setAdmin(address operator, bool enabled) external onlyAdmin {
        if (operator == address(0)) revert ZeroAddress();
        if (_admins[operator] == enabled) return;
        if (enabled) {
            _adminCount += 1;
        } else {
            if (_adminCount == 1) revert LastAdmin();
            _adminCount -= 1;
        }
        _admins[operator] = enabled;
        emit AdminSet(operator, enabled);
    }

    /// @inheritdoc IRoles
    function setAuthority(address operator, bool enabled) external onlyAdmin {
        if (operator == address(0)) revert ZeroAddress();
        if (_authorities[operator] == enabled) return;
        _authorities[operator] = enabled;
        emit AuthoritySet(operator, enabled);
    }

    /// @inheritdoc IRoles
    function setPractitionerVerified(bytes32 account, bool verified) external onlyAuthority {
        if (!hasRole(account, ROLE_PRACTITIONER)) revert NotPractitioner(account);
        if (_verified[account] == verified) return;
        _verified[account] = verified;
        emit PractitionerVerified(account, verified, msg.sender);
    }

    /// @inheritdoc IRoles
    function isVerified(bytes32 account) external view returns (bool) {
        return _verified[account] && hasRole(account, ROLE_PRACTITIONER);
    }

    /// @dev Bit of `role` in an account's role set; reverts with {InvalidRole} for invalid ids.
    /// @param role Role id (1 to 6).
    /// @return The role's bit.
    function _roleBit(uint8 role) private pure returns (uint256) {
        if (role == 0 || role > MAX_ROLE) revert InvalidRole(role);
        return uint256(1) << role;
    }
}
