//! Bindings for the four contracts, generated at compile time from their committed artifacts
//! (`contracts/artifacts/*.json`: ABI, creation code, runtime code), and revert decoding.
//!
//! `sol!` reads each artifact, so the Rust types and the bytecode the chains run are the
//! artifact's: a contract change that breaks this crate fails to compile, and CI's drift check
//! (`scripts/check-contracts`) keeps the artifacts equal to what the Solidity sources build to.

use crate::ChainError;
use alloy::primitives::Bytes;
use alloy::sol;
use alloy::sol_types::{SolError, SolInterface};
use std::fmt::Write as _;

sol!(
    /// RecordLog: the private chain's append-only log of Merkle tree heads (single committer).
    #[derive(Debug, PartialEq, Eq)]
    RecordLog,
    "../../contracts/artifacts/RecordLog.json"
);

sol!(
    /// Roles: roles of salted account commitments and practitioner verification.
    #[derive(Debug, PartialEq, Eq)]
    Roles,
    "../../contracts/artifacts/Roles.json"
);

sol!(
    /// ConsentRegistry: the private chain's history of consent grants and revocations, as
    /// salted commitments.
    #[derive(Debug, PartialEq, Eq)]
    ConsentRegistry,
    "../../contracts/artifacts/ConsentRegistry.json"
);

sol!(
    /// Anchor: checkpoints of one private RecordLog, kept on a public chain.
    #[derive(Debug, PartialEq, Eq)]
    Anchor,
    "../../contracts/artifacts/Anchor.json"
);

/// The RecordLog index `commitTreeHead` returned, from its ABI-encoded output.
pub fn commit_index(output: &[u8]) -> Result<u64, ChainError> {
    use alloy::sol_types::SolCall;
    let index = RecordLog::commitTreeHeadCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    u64::try_from(index).map_err(|_| ChainError::Decode("tree head index overflows u64".to_owned()))
}

/// The Anchor index `anchorCheckpoint` returned, from its ABI-encoded output.
pub fn anchor_index(output: &[u8]) -> Result<u64, ChainError> {
    use alloy::sol_types::SolCall;
    let index = Anchor::anchorCheckpointCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    u64::try_from(index)
        .map_err(|_| ChainError::Decode("checkpoint index overflows u64".to_owned()))
}

/// A tree head from `RecordLog.treeHeadAt`'s ABI-encoded output.
pub fn tree_head_of(output: &[u8]) -> Result<crate::OnChainTreeHead, ChainError> {
    use alloy::sol_types::SolCall;
    let h = RecordLog::treeHeadAtCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    Ok(crate::OnChainTreeHead {
        tree_size: h.treeSize,
        root: h.rootHash.0,
        block_number: h.blockNumber,
        timestamp: h.timestamp,
    })
}

/// A checkpoint from `Anchor.checkpointAt`'s ABI-encoded output.
pub fn checkpoint_of(output: &[u8]) -> Result<crate::OnChainCheckpoint, ChainError> {
    use alloy::sol_types::SolCall;
    let c = Anchor::checkpointAtCall::abi_decode_returns(output)
        .map_err(|e| ChainError::Decode(e.to_string()))?;
    Ok(crate::OnChainCheckpoint {
        checkpoint: crate::Checkpoint {
            tree_size: c.treeSize,
            root: c.rootHash.0,
            source_block_number: c.sourceBlockNumber,
            source_block_hash: c.sourceBlockHash.0,
        },
        block_number: c.blockNumber,
        timestamp: c.timestamp,
    })
}

/// Creation code with the constructor arguments appended, already ABI-encoded as parameters
/// (`(a, b).abi_encode_params()`).
pub fn creation_code(bytecode: &Bytes, encoded_args: &[u8]) -> Bytes {
    let mut code = bytecode.to_vec();
    code.extend_from_slice(encoded_args);
    code.into()
}

/// Turns revert data into a readable reason that starts with the error's name: `Name(arg, …)`
/// for the contracts' custom errors, `Error("…")`, `Panic(0x…)`, or the raw hex.
pub fn decode_revert(data: &[u8]) -> String {
    if let Ok(error) = RecordLog::RecordLogErrors::abi_decode(data) {
        use RecordLog::RecordLogErrors as E;
        return match error {
            E::NotCommitter(e) => format!("NotCommitter({})", e.caller),
            E::TreeSizeNotIncreasing(e) => format!(
                "TreeSizeNotIncreasing(previous={}, proposed={})",
                e.previous, e.proposed
            ),
            E::IndexOutOfRange(e) => {
                format!("IndexOutOfRange(index={}, count={})", e.index, e.count)
            }
            E::ZeroAddress(_) => "ZeroAddress()".to_owned(),
        };
    }
    if let Ok(error) = Roles::RolesErrors::abi_decode(data) {
        use Roles::RolesErrors as E;
        return match error {
            E::NotAdmin(e) => format!("NotAdmin({})", e.caller),
            E::NotAuthority(e) => format!("NotAuthority({})", e.caller),
            E::InvalidRole(e) => format!("InvalidRole({})", e.role),
            E::NotPractitioner(e) => format!("NotPractitioner({})", e.account),
            E::ZeroAddress(_) => "ZeroAddress()".to_owned(),
            E::LastAdmin(_) => "LastAdmin()".to_owned(),
        };
    }
    // Anchor shares RecordLog's IndexOutOfRange, TreeSizeNotIncreasing and ZeroAddress
    // selectors (same signatures), which decoded above; only its own error is left.
    if let Ok(Anchor::AnchorErrors::NotAnchorer(e)) = Anchor::AnchorErrors::abi_decode(data) {
        return format!("NotAnchorer({})", e.caller);
    }
    if let Ok(error) = ConsentRegistry::ConsentRegistryErrors::abi_decode(data) {
        use ConsentRegistry::ConsentRegistryErrors as E;
        return match error {
            E::NotRegistrar(e) => format!("NotRegistrar({})", e.caller),
            E::ZeroId(_) => "ZeroId()".to_owned(),
            E::PatientMismatch(e) => format!("PatientMismatch(consentId={})", e.consentId),
            E::ConsentNotActive(e) => format!("ConsentNotActive({})", e.consentId),
            E::ZeroAddress(_) => "ZeroAddress()".to_owned(),
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

    /// The bytecode `sol!` embedded is the artifact's, byte for byte.
    #[test]
    fn bindings_carry_the_artifacts_code() {
        let artifacts = [
            (
                include_str!("../../../contracts/artifacts/RecordLog.json"),
                &RecordLog::BYTECODE,
                &RecordLog::DEPLOYED_BYTECODE,
            ),
            (
                include_str!("../../../contracts/artifacts/Roles.json"),
                &Roles::BYTECODE,
                &Roles::DEPLOYED_BYTECODE,
            ),
            (
                include_str!("../../../contracts/artifacts/ConsentRegistry.json"),
                &ConsentRegistry::BYTECODE,
                &ConsentRegistry::DEPLOYED_BYTECODE,
            ),
            (
                include_str!("../../../contracts/artifacts/Anchor.json"),
                &Anchor::BYTECODE,
                &Anchor::DEPLOYED_BYTECODE,
            ),
        ];
        for (artifact, creation, runtime) in artifacts {
            let json: serde_json::Value = serde_json::from_str(artifact).unwrap();
            let hex_of = |field: &str| {
                hex::decode(json[field].as_str().unwrap().trim_start_matches("0x")).unwrap()
            };
            assert!(creation.len() > 100, "{}", json["contractName"]);
            assert_eq!(creation.to_vec(), hex_of("bytecode"));
            assert_eq!(runtime.to_vec(), hex_of("deployedBytecode"));
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
        let caller = alloy::primitives::Address::repeat_byte(7);
        let data = Anchor::NotAnchorer { caller }.abi_encode();
        assert_eq!(decode_revert(&data), format!("NotAnchorer({caller})"));
        let data = ConsentRegistry::ConsentNotActive {
            consentId: [1u8; 32].into(),
        }
        .abi_encode();
        assert!(decode_revert(&data).starts_with("ConsentNotActive(0x0101"));
        assert_eq!(decode_revert(&[1, 2]), "unknown revert data 0x0102");
        let data = alloy::sol_types::Revert::from("no").abi_encode();
        assert_eq!(decode_revert(&data), "Error(\"no\")");
    }
}
