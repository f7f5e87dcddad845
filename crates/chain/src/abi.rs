//! Bindings for the RecordLog and Roles contracts, their compiled artifacts, and revert decoding.
//!
//! The bindings are declared by hand with `sol!` rather than generated from the artifacts, so the
//! Rust side states what it relies on; a unit test checks every declared function, event and error
//! against the artifacts' ABI so that a contract change that breaks this crate fails a test.

use crate::ChainError;
use alloy::primitives::Bytes;
use alloy::sol;
use alloy::sol_types::{SolCall, SolError, SolInterface, SolValue};
use std::fmt::Write as _;

/// RecordLog's compiled artifact (creation code, runtime code, ABI), committed in `contracts/`.
pub(crate) const RECORD_LOG_ARTIFACT: &str =
    include_str!("../../../contracts/artifacts/RecordLog.json");
/// Roles' compiled artifact.
pub(crate) const ROLES_ARTIFACT: &str = include_str!("../../../contracts/artifacts/Roles.json");

sol! {
    /// The RecordLog contract: an append-only log of Merkle tree heads with a single committer.
    #[derive(Debug, PartialEq, Eq)]
    interface RecordLog {
        /// A tree head was appended.
        event TreeHeadCommitted(uint256 indexed index, uint64 indexed treeSize, bytes32 rootHash);
        /// The committer role moved.
        event CommitterTransferred(address indexed previous, address indexed next);

        /// The caller is not the committer.
        error NotCommitter(address caller);
        /// The proposed tree size is not above the last one.
        error TreeSizeNotIncreasing(uint64 previous, uint64 proposed);
        /// No tree head at that index.
        error IndexOutOfRange(uint256 index, uint256 count);
        /// The zero address was given where an account is required.
        error ZeroAddress();

        /// Appends a tree head; only the committer may call it.
        function commitTreeHead(uint64 treeSize, bytes32 rootHash) external returns (uint256 index);
        /// Number of committed tree heads.
        function treeHeadCount() external view returns (uint256);
        /// One committed tree head.
        function treeHeadAt(uint256 index) external view returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp);
        /// The address allowed to commit.
        function committer() external view returns (address);
        /// Hands the committer role to another address.
        function transferCommitter(address next) external;
    }

    /// The Roles contract: roles of salted account commitments and practitioner verification.
    #[derive(Debug, PartialEq, Eq)]
    interface Roles {
        /// A role was granted.
        event RoleGranted(bytes32 indexed account, uint8 indexed role, address indexed by);
        /// A role was revoked.
        event RoleRevoked(bytes32 indexed account, uint8 indexed role, address indexed by);
        /// An admin operator was enabled or disabled.
        event AdminSet(address indexed operator, bool enabled);
        /// An authority operator was enabled or disabled.
        event AuthoritySet(address indexed operator, bool enabled);
        /// A practitioner's verification changed.
        event PractitionerVerified(bytes32 indexed account, bool verified, address indexed by);

        /// The caller is not an admin operator.
        error NotAdmin(address caller);
        /// The caller is not an authority operator.
        error NotAuthority(address caller);
        /// The role id is not 1 to 6.
        error InvalidRole(uint8 role);
        /// The account does not hold the practitioner role.
        error NotPractitioner(bytes32 account);
        /// The zero address was given where an operator is required.
        error ZeroAddress();
        /// The call would remove the last admin operator.
        error LastAdmin();

        /// Grants a role (admin operators only).
        function grantRole(bytes32 account, uint8 role) external;
        /// Revokes a role (admin operators only).
        function revokeRole(bytes32 account, uint8 role) external;
        /// Whether the account holds the role.
        function hasRole(bytes32 account, uint8 role) external view returns (bool);
        /// Enables or disables an admin operator.
        function setAdmin(address operator, bool enabled) external;
        /// Enables or disables an authority operator.
        function setAuthority(address operator, bool enabled) external;
        /// Sets a practitioner's verification (authority operators only).
        function setPractitionerVerified(bytes32 account, bool verified) external;
        /// Whether the account is a verified practitioner.
        function isVerified(bytes32 account) external view returns (bool);
    }
}

/// The RecordLog index `commitTreeHead` returned, from its ABI-encoded output.
pub(crate) fn commit_index(output: &[u8]) -> Result<u64, ChainError> {
    let index = RecordLog::commitTreeHeadCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    u64::try_from(index).map_err(|_| ChainError::Decode("tree head index overflows u64".to_owned()))
}

/// Creation code of a contract artifact, with the ABI-encoded constructor arguments appended.
pub(crate) fn creation_code(
    artifact: &str,
    constructor_args: impl SolValue,
) -> Result<Bytes, ChainError> {
    let mut code = artifact_bytes(artifact, "bytecode")?;
    code.extend_from_slice(&constructor_args.abi_encode());
    Ok(code.into())
}

/// Decodes one hex field (`bytecode`, `deployedBytecode`) of an artifact.
pub(crate) fn artifact_bytes(artifact: &str, field: &str) -> Result<Vec<u8>, ChainError> {
    let json: serde_json::Value = serde_json::from_str(artifact)
        .map_err(|e| ChainError::Artifact(format!("artifact is not JSON: {e}")))?;
    let name = json["contractName"].as_str().unwrap_or("?").to_owned();
    let hex_str = json[field]
        .as_str()
        .ok_or_else(|| ChainError::Artifact(format!("{name}: no `{field}` string")))?;
    let bytes = hex::decode(hex_str.trim_start_matches("0x"))
        .map_err(|e| ChainError::Artifact(format!("{name}.{field}: {e}")))?;
    if bytes.is_empty() {
        return Err(ChainError::Artifact(format!("{name}.{field} is empty")));
    }
    Ok(bytes)
}

/// Turns revert data into a readable reason that starts with the error's name: `Name(arg, …)`
/// for the contracts' custom errors, `Error("…")`, `Panic(0x…)`, or the raw hex.
pub(crate) fn decode_revert(data: &[u8]) -> String {
    if let Ok(error) = RecordLog::RecordLogErrors::abi_decode(data) {
        return match error {
            RecordLog::RecordLogErrors::NotCommitter(e) => format!("NotCommitter({})", e.caller),
            RecordLog::RecordLogErrors::TreeSizeNotIncreasing(e) => {
                format!(
                    "TreeSizeNotIncreasing(previous={}, proposed={})",
                    e.previous, e.proposed
                )
            }
            RecordLog::RecordLogErrors::IndexOutOfRange(e) => {
                format!("IndexOutOfRange(index={}, count={})", e.index, e.count)
            }
            RecordLog::RecordLogErrors::ZeroAddress(_) => "ZeroAddress()".to_owned(),
        };
    }
    if let Ok(error) = Roles::RolesErrors::abi_decode(data) {
        return match error {
            Roles::RolesErrors::NotAdmin(e) => format!("NotAdmin({})", e.caller),
            Roles::RolesErrors::NotAuthority(e) => format!("NotAuthority({})", e.caller),
            Roles::RolesErrors::InvalidRole(e) => format!("InvalidRole({})", e.role),
            Roles::RolesErrors::NotPractitioner(e) => format!("NotPractitioner({})", e.account),
            Roles::RolesErrors::ZeroAddress(_) => "ZeroAddress()".to_owned(),
            Roles::RolesErrors::LastAdmin(_) => "LastAdmin()".to_owned(),
        };
    }
    if let Ok(revert) = alloy::sol_types::Revert::abi_decode(data) {
        return format!("Error({:?})", revert.reason);
    }
    if let Ok(panic) = alloy::sol_types::Panic::abi_decode(data) {
        return format!("Panic({:#x})", panic.code);
    }
    let mut out = String::from("unknown revert data 0x");
    for byte in data {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::json_abi::JsonAbi;
    use alloy::primitives::Selector;
    use alloy::sol_types::{SolCall, SolError, SolEvent, SolType};

    fn abi_of(artifact: &str) -> JsonAbi {
        let json: serde_json::Value = serde_json::from_str(artifact).unwrap();
        serde_json::from_value(json["abi"].clone()).unwrap()
    }

    /// The declared call exists in the ABI with the same inputs (selector) and output types.
    fn check_call<C: SolCall>(abi: &JsonAbi) {
        let function = abi
            .functions()
            .find(|f| f.selector() == Selector::from(C::SELECTOR))
            .unwrap_or_else(|| panic!("{} is not in the artifact ABI", C::SIGNATURE));
        let outputs: Vec<String> = function
            .outputs
            .iter()
            .map(|p| p.selector_type().into_owned())
            .collect();
        let declared = <C::ReturnTuple<'_> as SolType>::SOL_NAME;
        assert_eq!(
            format!("({})", outputs.join(",")),
            declared,
            "outputs of {}",
            C::SIGNATURE
        );
    }

    /// The declared event exists with the same signature and the same indexed parameters.
    fn check_event<E: SolEvent>(abi: &JsonAbi) {
        let event = abi
            .events()
            .find(|e| e.selector() == E::SIGNATURE_HASH)
            .unwrap_or_else(|| panic!("{} is not in the artifact ABI", E::SIGNATURE));
        let indexed = event.inputs.iter().filter(|p| p.indexed).count();
        // The topic list starts with the signature hash for non-anonymous events.
        let declared = <E::TopicList as SolType>::SOL_NAME.matches(',').count();
        assert_eq!(indexed, declared, "indexed parameters of {}", E::SIGNATURE);
        assert!(!event.anonymous);
    }

    fn check_error<E: SolError>(abi: &JsonAbi) {
        assert!(
            abi.errors()
                .any(|e| e.selector() == Selector::from(E::SELECTOR)),
            "{} is not in the artifact ABI",
            E::SIGNATURE
        );
    }

    #[test]
    fn record_log_bindings_match_the_artifact() {
        use RecordLog::*;
        let abi = abi_of(RECORD_LOG_ARTIFACT);
        check_call::<commitTreeHeadCall>(&abi);
        check_call::<treeHeadCountCall>(&abi);
        check_call::<treeHeadAtCall>(&abi);
        check_call::<committerCall>(&abi);
        check_call::<transferCommitterCall>(&abi);
        check_event::<TreeHeadCommitted>(&abi);
        check_event::<CommitterTransferred>(&abi);
        check_error::<NotCommitter>(&abi);
        check_error::<TreeSizeNotIncreasing>(&abi);
        check_error::<IndexOutOfRange>(&abi);
        check_error::<ZeroAddress>(&abi);
        // Every declared item is checked above: the counts keep the list complete.
        assert_eq!(RecordLogCalls::SELECTORS.len(), 5);
        assert_eq!(RecordLogErrors::SELECTORS.len(), 4);
        let constructor = abi.constructor.as_ref().unwrap();
        assert_eq!(constructor.inputs.len(), 1);
        assert_eq!(constructor.inputs[0].ty, "address");
    }

    #[test]
    fn roles_bindings_match_the_artifact() {
        use Roles::*;
        let abi = abi_of(ROLES_ARTIFACT);
        check_call::<grantRoleCall>(&abi);
        check_call::<revokeRoleCall>(&abi);
        check_call::<hasRoleCall>(&abi);
        check_call::<setAdminCall>(&abi);
        check_call::<setAuthorityCall>(&abi);
        check_call::<setPractitionerVerifiedCall>(&abi);
        check_call::<isVerifiedCall>(&abi);
        check_event::<RoleGranted>(&abi);
        check_event::<RoleRevoked>(&abi);
        check_event::<AdminSet>(&abi);
        check_event::<AuthoritySet>(&abi);
        check_event::<PractitionerVerified>(&abi);
        check_error::<NotAdmin>(&abi);
        check_error::<NotAuthority>(&abi);
        check_error::<InvalidRole>(&abi);
        check_error::<NotPractitioner>(&abi);
        check_error::<ZeroAddress>(&abi);
        check_error::<LastAdmin>(&abi);
        assert_eq!(RolesCalls::SELECTORS.len(), 7);
        assert_eq!(RolesErrors::SELECTORS.len(), 6);
        let constructor = abi.constructor.as_ref().unwrap();
        assert_eq!(constructor.inputs.len(), 1);
        assert_eq!(constructor.inputs[0].ty, "address");
    }

    #[test]
    fn artifacts_carry_code() {
        for artifact in [RECORD_LOG_ARTIFACT, ROLES_ARTIFACT] {
            assert!(artifact_bytes(artifact, "bytecode").unwrap().len() > 100);
            assert!(artifact_bytes(artifact, "deployedBytecode").unwrap().len() > 100);
        }
    }

    #[test]
    fn reverts_decode_to_error_names() {
        let data = RecordLog::TreeSizeNotIncreasing {
            previous: 7,
            proposed: 5,
        }
        .abi_encode();
        assert_eq!(
            decode_revert(&data),
            "TreeSizeNotIncreasing(previous=7, proposed=5)"
        );
        let data = Roles::LastAdmin {}.abi_encode();
        assert_eq!(decode_revert(&data), "LastAdmin()");
        assert_eq!(decode_revert(&[1, 2]), "unknown revert data 0x0102");
        let data = alloy::sol_types::Revert::from("no").abi_encode();
        assert_eq!(decode_revert(&data), "Error(\"no\")");
    }
}
