//! CIDv1 with sha2-256 multihashes, written in multibase base32 (`b…`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Multicodec of raw binary blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-pb (UnixFS) blocks.
pub const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;

/// A CIDv1 whose multihash is sha2-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    codec: u64,
    digest: [u8; 32],
}

/// Why a string or byte sequence is not a supported CID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    /// Not multibase base32 lower (`b…`).
    #[error("only base32 CIDv1 strings are supported")]
    Multibase,
    /// Truncated or not CIDv1/sha2-256.
    #[error("malformed CID: {0}")]
    Malformed(&'static str),
}

impl Cid {
    /// The CID of a block of `codec` holding `bytes`.
    pub fn of(codec: u64, bytes: &[u8]) -> Self {
        Self {
            codec,
            digest: Sha256::digest(bytes).into(),
        }
    }

    /// The codec (raw or dag-pb).
    pub fn codec(&self) -> u64 {
        self.codec
    }

    /// The sha2-256 digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Binary form: `0x01 ‖ codec ‖ 0x12 0x20 ‖ digest` (varints).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36);
        put_varint(&mut out, 1);
        put_varint(&mut out, self.codec);
        put_varint(&mut out, SHA2_256);
        put_varint(&mut out, 32);
        out.extend_from_slice(&self.digest);
        out
    }

    /// Parses the binary form.
    pub fn from_bytes(mut b: &[u8]) -> Result<Self, CidError> {
        if get_varint(&mut b)? != 1 {
            return Err(CidError::Malformed("not CIDv1"));
        }
        let codec = get_varint(&mut b)?;
        if get_varint(&mut b)? != SHA2_256 || get_varint(&mut b)? != 32 {
            return Err(CidError::Malformed("multihash is not sha2-256"));
        }
        let digest: [u8; 32] = b
            .try_into()
            .map_err(|_| CidError::Malformed("digest length"))?;
        Ok(Self { codec, digest })
    }

    /// Whether `bytes` are the content this CID names.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let d: [u8; 32] = Sha256::digest(bytes).into();
        d == self.digest
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = data_encoding::BASE32_NOPAD
            .encode(&self.to_bytes())
            .to_ascii_lowercase();
        write!(f, "b{enc}")
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Cid {
    type Err = CidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix('b').ok_or(CidError::Multibase)?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| CidError::Malformed("bad base32"))?;
        Self::from_bytes(&bytes)
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &mut &[u8]) -> Result<u64, CidError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b
            .split_first()
            .ok_or(CidError::Malformed("truncated varint"))?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CidError::Malformed("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cid_matches_ipfs() {
        // `printf 'hello\n' | ipfs add --cid-version=1 --raw-leaves -Q`
        let cid = Cid::of(RAW, b"hello\n");
        assert_eq!(
            cid.to_string(),
            "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        );
        assert_eq!(
            "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am".parse::<Cid>(),
            Ok(cid)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("zb2rh".parse::<Cid>(), Err(CidError::Multibase));
        assert!("bafk".parse::<Cid>().is_err());
        assert!("b!!!!".parse::<Cid>().is_err());
    }
}
