// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @dev Role id of a patient.
uint8 constant ROLE_PATIENT = 1;
/// @dev Role id of a practitioner (a clinician; may be verified by an authority).
uint8 constant ROLE_PRACTITIONER = 2;
/// @dev Role id of an organization (a hospital or another care provider).
uint8 constant ROLE_ORGANIZATION = 3;
/// @dev Role id of an auditor.
uint8 constant ROLE_AUDITOR = 4;
/// @dev Role id of an authority (e.g. a medical board).
uint8 constant ROLE_AUTHORITY = 5;
/// @dev Role id of an administrator.
uint8 constant ROLE_ADMIN = 6;
/// @dev Highest valid role id; 0 is never valid.
uint8 constant MAX_ROLE = ROLE_ADMIN;

/// @title IRoles
/// @author MedLedger
/// @notice Registry of the roles held by MedLedger accounts. Accounts are salted commitments
///         (e.g. a hash of an identifier and a secret salt), never identities in clear, so the
///         chain reveals which commitments hold which roles but not who they are.
/// @dev Roles are small integers: 1 patient, 2 practitioner, 3 organization, 4 auditor,
///      5 authority, 6 admin; 0 and anything above 6 are invalid. Two kinds of operators (EVM
///      addresses) act on the registry: admin operators grant and revoke roles and manage
///      operators, and authority operators verify practitioners. Calls that would not change
///      anything (granting a role already held, revoking one not held, setting a flag to its
///      current value) succeed without emitting an event.
interface IRoles {
    /// @notice An account was granted a role.
    /// @param account Salted commitment identifying the account.
    /// @param role Role id that was granted.
    /// @param by Admin operator that granted it.
    event RoleGranted(bytes32 indexed account, uint8 indexed role, address indexed by);

    /// @notice A role was taken away from an account.
    /// @param account Salted commitment identifying the account.
    /// @param role Role id that was revoked.
    /// @param by Admin operator that revoked it.
    event RoleRevoked(bytes32 indexed account, uint8 indexed role, address indexed by);

    /// @notice An address was made an admin operator, or stopped being one.
    /// @param operator Address whose admin status changed.
    /// @param enabled Whether it is an admin operator now.
    event AdminSet(address indexed operator, bool enabled);

    /// @notice An address was made an authority operator, or stopped being one.
    /// @param operator Address whose authority status changed.
    /// @param enabled Whether it is an authority operator now.
    event AuthoritySet(address indexed operator, bool enabled);

    /// @notice A practitioner's verification was set or cleared.
    /// @dev Also emitted with `verified == false` when revoking the practitioner role clears a
    ///      verification; `by` is then the admin operator that revoked the role.
    /// @param account Salted commitment identifying the practitioner.
    /// @param verified Whether the practitioner is verified now.
    /// @param by Operator whose call changed the verification.
    event PractitionerVerified(bytes32 indexed account, bool verified, address indexed by);

    /// @notice The caller is not an admin operator.
    /// @param caller Address that attempted the call.
    error NotAdmin(address caller);

    /// @notice The caller is not an authority operator.
    /// @param caller Address that attempted the call.
    error NotAuthority(address caller);

    /// @notice The role id is not one of the defined roles (1 to 6).
    /// @param role The rejected role id.
    error InvalidRole(uint8 role);

    /// @notice The account does not hold the practitioner role.
    /// @param account Salted commitment identifying the account.
    error NotPractitioner(bytes32 account);

    /// @notice The zero address was given where an operator is required.
    error ZeroAddress();

    /// @notice The call would leave the registry without any admin operator.
    error LastAdmin();

    /// @notice Grants a role to an account. Only admin operators may call it.
    /// @dev Reverts with {NotAdmin} or {InvalidRole}. Emits {RoleGranted} unless the account
    ///      already holds the role.
    /// @param account Salted commitment identifying the account.
    /// @param role Role id to grant (1 to 6).
    function grantRole(bytes32 account, uint8 role) external;

    /// @notice Takes a role away from an account. Only admin operators may call it.
    /// @dev Reverts with {NotAdmin} or {InvalidRole}. Emits {RoleRevoked} unless the account does
    ///      not hold the role. Revoking the practitioner role also clears the account's
    ///      verification (emitting {PractitionerVerified} with `verified == false` if it was
    ///      verified), so granting the role again does not restore it.
    /// @param account Salted commitment identifying the account.
    /// @param role Role id to revoke (1 to 6).
    function revokeRole(bytes32 account, uint8 role) external;

    /// @notice Tells whether an account holds a role.
    /// @dev Returns false for invalid role ids instead of reverting.
    /// @param account Salted commitment identifying the account.
    /// @param role Role id to check.
    /// @return Whether the account holds the role.
    function hasRole(bytes32 account, uint8 role) external view returns (bool);

    /// @notice Makes an address an admin operator, or stops it being one. Only admin operators
    ///         may call it.
    /// @dev Reverts with {NotAdmin}, with {ZeroAddress} for the zero address, and with
    ///      {LastAdmin} when it would disable the only admin operator. Emits {AdminSet} unless
    ///      the status is unchanged.
    /// @param operator Address whose admin status is set.
    /// @param enabled Whether it should be an admin operator.
    function setAdmin(address operator, bool enabled) external;

    /// @notice Makes an address an authority operator, or stops it being one. Only admin
    ///         operators may call it.
    /// @dev Reverts with {NotAdmin} and with {ZeroAddress} for the zero address. Emits
    ///      {AuthoritySet} unless the status is unchanged.
    /// @param operator Address whose authority status is set.
    /// @param enabled Whether it should be an authority operator.
    function setAuthority(address operator, bool enabled) external;

    /// @notice Marks a practitioner as verified, or clears the verification. Only authority
    ///         operators may call it.
    /// @dev Reverts with {NotAuthority}, and with {NotPractitioner} when the account does not hold
    ///      the practitioner role. Emits {PractitionerVerified} unless the verification is
    ///      unchanged.
    /// @param account Salted commitment identifying the practitioner.
    /// @param verified Whether the practitioner should be verified.
    function setPractitionerVerified(bytes32 account, bool verified) external;

    /// @notice Tells whether an account is a verified practitioner.
    /// @dev False for any account that does not hold the practitioner role, including one whose
    ///      role was revoked after verification.
    /// @param account Salted commitment identifying the account.
    /// @return Whether the account holds the practitioner role and is verified.
    function isVerified(bytes32 account) external view returns (bool);
}
