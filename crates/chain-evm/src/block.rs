//! Blocks: their stored encoding, the sealer's signature, and the execution that produces (when
//! mining) or re-derives (when verifying) every header field.

use crate::evm::{BLOCK_GAS_LIMIT, Machine, Outcome, Touched};
use alloy::consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy::consensus::{
    EMPTY_OMMER_ROOT_HASH, Eip658Value, Header, Receipt, ReceiptEnvelope, TxEip1559, TxEnvelope,
};
use alloy::primitives::{Address, B64, B256, Bloom, Bytes, Log, Signature, U256};
use alloy::rlp::{Decodable, Encodable};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use medledger_chain::ChainError;

/// A block as stored: the header, the signed transactions and the sealer's signature over the
/// block hash (`keccak(rlp(header))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredBlock {
    pub(crate) header: Header,
    pub(crate) transactions: Vec<TxEnvelope>,
    pub(crate) seal: Signature,
}

impl StoredBlock {
    /// Signs `header` as the sealer.
    pub(crate) fn seal(
        header: Header,
        transactions: Vec<TxEnvelope>,
        sealer: &PrivateKeySigner,
    ) -> Result<Self, ChainError> {
        let seal = sealer
            .sign_hash_sync(&header.hash_slow())
            .map_err(|e| ChainError::Signing(e.to_string()))?;
        Ok(Self {
            header,
            transactions,
            seal,
        })
    }

    /// The block hash.
    pub(crate) fn hash(&self) -> B256 {
        self.header.hash_slow()
    }

    /// Who sealed the block. High-s signatures are rejected, as Ethereum does for transactions,
    /// so that a seal cannot be altered into a second valid encoding.
    pub(crate) fn seal_signer(&self) -> Result<Address, String> {
        alloy::consensus::crypto::secp256k1::recover_signer(&self.seal, self.hash())
            .map_err(|e| format!("invalid seal signature: {e}"))
    }

    /// `rlp([header, [tx…], seal])`, transactions in their network (EIP-2718) encoding and the
    /// seal as 65 bytes `r ‖ s ‖ v`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let seal = self.seal.as_bytes();
        let payload_length = self.header.length()
            + alloy::rlp::list_length(&self.transactions)
            + seal.as_slice().length();
        let mut out = Vec::with_capacity(payload_length + 4);
        alloy::rlp::Header {
            list: true,
            payload_length,
        }
        .encode(&mut out);
        self.header.encode(&mut out);
        alloy::rlp::encode_list(&self.transactions, &mut out);
        seal.as_slice().encode(&mut out);
        out
    }

    /// Decodes a stored block, accepting only the canonical encoding: re-encoding must give the
    /// same bytes, so that no byte of a stored block can change without changing what it means.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut buf = bytes;
        let list =
            alloy::rlp::Header::decode(&mut buf).map_err(|e| format!("bad block RLP: {e}"))?;
        if !list.list || list.payload_length != buf.len() {
            return Err("bad block RLP: not a single list".to_owned());
        }
        let header = Header::decode(&mut buf).map_err(|e| format!("bad header: {e}"))?;
        let transactions =
            Vec::<TxEnvelope>::decode(&mut buf).map_err(|e| format!("bad transactions: {e}"))?;
        let seal_bytes = alloy::rlp::Header::decode_bytes(&mut buf, false)
            .map_err(|e| format!("bad seal: {e}"))?;
        let seal = Signature::from_raw(seal_bytes).map_err(|e| format!("bad seal: {e}"))?;
        if !buf.is_empty() {
            return Err("trailing bytes after the seal".to_owned());
        }
        let block = Self {
            header,
            transactions,
            seal,
        };
        if block.encode() != bytes {
            return Err("non-canonical encoding".to_owned());
        }
        Ok(block)
    }
}

/// Signs a transaction to `to` (or a contract creation) as `signer`.
pub(crate) fn sign_transaction(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: alloy::primitives::TxKind,
    input: Bytes,
) -> Result<TxEnvelope, ChainError> {
    use alloy::consensus::SignableTransaction;
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: crate::evm::TX_GAS_LIMIT,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input,
    };
    let signature = signer
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| ChainError::Signing(e.to_string()))?;
    Ok(TxEnvelope::Eip1559(tx.into_signed(signature)))
}

/// What a successful transaction left behind, for the caller that submitted it.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) output: Bytes,
    pub(crate) logs: Vec<Log>,
}

/// One block being executed: collects transactions and receipts, then derives the header.
#[derive(Debug)]
pub(crate) struct BlockExecution {
    /// The chain's profile tag (`ChainProfile::extra_data`), carried by every header.
    extra_data: &'static [u8],
    parent_hash: B256,
    number: u64,
    timestamp: u64,
    sealer: Address,
    transactions: Vec<TxEnvelope>,
    receipts: Vec<ReceiptEnvelope>,
    gas_used: u64,
    touched: Touched,
}

impl BlockExecution {
    /// Starts block `number` on top of `parent_hash`.
    pub(crate) fn begin(
        machine: &mut Machine,
        extra_data: &'static [u8],
        parent_hash: B256,
        number: u64,
        timestamp: u64,
        sealer: Address,
    ) -> Self {
        machine.set_block(number, timestamp, sealer);
        Self {
            extra_data,
            parent_hash,
            number,
            timestamp,
            sealer,
            transactions: Vec::new(),
            receipts: Vec::new(),
            gas_used: 0,
            touched: Touched::default(),
        }
    }

    /// Executes `tx` (already checked to come from `sender`). A successful transaction joins
    /// the block; a failed one leaves no trace, and its reason is returned as `Err(reason)`.
    pub(crate) fn apply(
        &mut self,
        machine: &mut Machine,
        tx: TxEnvelope,
        sender: Address,
    ) -> Result<Result<Applied, String>, ChainError> {
        let TxEnvelope::Eip1559(signed) = &tx else {
            return Ok(Err("only EIP-1559 transactions are accepted".to_owned()));
        };
        match machine.apply(sender, signed.tx(), &mut self.touched)? {
            Outcome::Failed { reason } => Ok(Err(reason)),
            Outcome::Success {
                gas_used,
                output,
                logs,
            } => {
                self.gas_used += gas_used;
                let receipt = Receipt {
                    status: Eip658Value::Eip658(true),
                    cumulative_gas_used: self.gas_used,
                    logs: logs.clone(),
                };
                self.receipts
                    .push(ReceiptEnvelope::Eip1559(receipt.with_bloom()));
                self.transactions.push(tx);
                Ok(Ok(Applied { output, logs }))
            }
        }
    }

    /// Number of transactions in the block so far.
    pub(crate) fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Derives the header from what was executed; the state root comes from `machine`.
    pub(crate) fn finish(self, machine: &mut Machine) -> (Header, Vec<TxEnvelope>) {
        let state_root = machine.update_state_root(self.touched);
        let mut logs_bloom = Bloom::ZERO;
        for receipt in &self.receipts {
            logs_bloom |= receipt.logs_bloom();
        }
        let header = Header {
            parent_hash: self.parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: self.sealer,
            state_root,
            transactions_root: calculate_transaction_root(&self.transactions),
            receipts_root: calculate_receipt_root(&self.receipts),
            logs_bloom,
            difficulty: U256::ZERO,
            number: self.number,
            gas_limit: BLOCK_GAS_LIMIT,
            gas_used: self.gas_used,
            timestamp: self.timestamp,
            extra_data: Bytes::from_static(self.extra_data),
            mix_hash: B256::ZERO,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(0),
            ..Header::default()
        };
        (header, self.transactions)
    }
}

/// Names the first header field where a stored header differs from the re-derived one.
pub(crate) fn header_difference(stored: &Header, derived: &Header) -> String {
    let fields: [(&str, bool); 10] = [
        ("parent_hash", stored.parent_hash == derived.parent_hash),
        ("beneficiary", stored.beneficiary == derived.beneficiary),
        ("state_root", stored.state_root == derived.state_root),
        (
            "transactions_root",
            stored.transactions_root == derived.transactions_root,
        ),
        (
            "receipts_root",
            stored.receipts_root == derived.receipts_root,
        ),
        ("logs_bloom", stored.logs_bloom == derived.logs_bloom),
        ("gas_used", stored.gas_used == derived.gas_used),
        ("number", stored.number == derived.number),
        ("timestamp", stored.timestamp == derived.timestamp),
        ("extra_data", stored.extra_data == derived.extra_data),
    ];
    match fields.iter().find(|(_, same)| !same) {
        Some((name, _)) => format!("header field `{name}` does not match re-execution"),
        None => "header fields do not match the chain's fixed values".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::primitives::TxKind;

    #[test]
    fn stored_block_round_trips_and_rejects_trailing_bytes() {
        let signer = PrivateKeySigner::random();
        let tx = sign_transaction(
            &signer,
            1337,
            0,
            TxKind::Create,
            Bytes::from_static(&[0x60]),
        )
        .unwrap();
        let header = Header {
            number: 3,
            ..Header::default()
        };
        let block = StoredBlock::seal(header, vec![tx], &signer).unwrap();
        let bytes = block.encode();
        assert_eq!(StoredBlock::decode(&bytes).unwrap(), block);
        assert_eq!(block.seal_signer().unwrap(), signer.address());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StoredBlock::decode(&longer).is_err());
    }
}
