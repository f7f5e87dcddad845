//! The append-only block log file: framing, checksums and torn-tail detection.
//!
//! ```text
//! file   = MAGIC record*
//! record = len: u32 BE | head_check: 4 bytes | payload: len bytes | check: 32 bytes
//! head_check = keccak256("MLREC" ‖ len)[..4]     check = keccak256(payload)
//! ```
//! `head_check` lets a reader tell a length that was written whole (so a short record after it
//! can only be an interrupted append) from a length that was altered afterwards.

use alloy::primitives::keccak256;
use std::io::{self, Read};

/// First bytes of a block log; the digit is the format version.
pub(crate) const MAGIC: &[u8; 8] = b"MLCHAIN1";

/// Bytes before a record's payload.
const HEAD_LEN: usize = 8;
/// Bytes after a record's payload.
const CHECK_LEN: usize = 32;
/// Upper bound on a payload, far above any block the miner builds; a larger length is corrupt.
const MAX_PAYLOAD: u32 = 64 << 20;

/// Frames one payload as a record.
pub(crate) fn encode_record(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEAD_LEN + payload.len() + CHECK_LEN);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&head_check(len));
    out.extend_from_slice(payload);
    out.extend_from_slice(keccak256(payload).as_slice());
    out
}

fn head_check(len: u32) -> [u8; 4] {
    let mut input = [0u8; 9];
    input[..5].copy_from_slice(b"MLREC");
    input[5..].copy_from_slice(&len.to_be_bytes());
    let hash = keccak256(input);
    [hash[0], hash[1], hash[2], hash[3]]
}

/// What the next bytes of the log hold.
#[derive(Debug)]
pub(crate) enum Next {
    /// A complete record whose checksums hold; `end` is the offset just past it.
    Record {
        payload: Vec<u8>,
        start: u64,
        end: u64,
    },
    /// The log ends exactly here.
    End,
    /// An append that never completed starts at `start`: the bytes end before the record does,
    /// or are all zero (a file extended but not yet written when the machine stopped).
    TornTail { start: u64 },
    /// Bytes that a completed append cannot have produced.
    Corrupt { start: u64, reason: String },
}

/// Reads records sequentially from `offset`.
#[derive(Debug)]
pub(crate) struct RecordReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// `inner` must be positioned at `offset`.
    pub(crate) fn new(inner: R, offset: u64) -> Self {
        Self { inner, offset }
    }

    /// The next record, or why there is none.
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        let start = self.offset;
        let mut head = [0u8; HEAD_LEN];
        let got = read_full(&mut self.inner, &mut head)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < HEAD_LEN {
            return Ok(Next::TornTail { start });
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if head[4..] != head_check(len) || len > MAX_PAYLOAD {
            let mut rest = Vec::new();
            self.inner.read_to_end(&mut rest)?;
            if head.iter().chain(rest.iter()).all(|b| *b == 0) {
                return Ok(Next::TornTail { start });
            }
            return Ok(Next::Corrupt {
                start,
                reason: "record length field is damaged".to_owned(),
            });
        }
        let body_len = len as usize + CHECK_LEN;
        let mut body = vec![0u8; body_len];
        if read_full(&mut self.inner, &mut body)? < body_len {
            return Ok(Next::TornTail { start });
        }
        let check = body.split_off(len as usize);
        if keccak256(&body).as_slice() != check.as_slice() {
            return Ok(Next::Corrupt {
                start,
                reason: "record checksum mismatch".to_owned(),
            });
        }
        self.offset = start + (HEAD_LEN + body_len) as u64;
        Ok(Next::Record {
            payload: body,
            start,
            end: self.offset,
        })
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn records(bytes: &[u8]) -> Vec<Next> {
        let mut reader = RecordReader::new(bytes, 0);
        let mut out = Vec::new();
        loop {
            let next = reader.next().unwrap();
            let stop = !matches!(next, Next::Record { .. });
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn reads_back_records_and_classifies_tails() {
        let mut log = encode_record(b"first");
        log.extend(encode_record(b"second"));
        let whole = records(&log);
        assert!(matches!(&whole[1], Next::Record { payload, .. } if payload == b"second"));
        assert!(matches!(whole[2], Next::End));

        // Every truncation inside the second record is an interrupted append.
        let first_len = encode_record(b"first").len();
        for cut in first_len + 1..log.len() {
            let got = records(&log[..cut]);
            assert!(
                matches!(got[1], Next::TornTail { start } if start == first_len as u64),
                "cut {cut}"
            );
        }

        let mut zeros = log.clone();
        zeros.extend([0u8; 100]);
        assert!(matches!(records(&zeros)[2], Next::TornTail { .. }));

        for position in 0..log.len() {
            let mut damaged = log.clone();
            damaged[position] ^= 0x01;
            let got = records(&damaged);
            assert!(
                got.iter().any(|n| matches!(n, Next::Corrupt { .. })),
                "flip at {position} went unnoticed: {got:?}"
            );
        }
    }
}
