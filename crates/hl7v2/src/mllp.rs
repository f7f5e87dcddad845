//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2): a message travels as
//! `0x0B` · payload · `0x1C 0x0D` over TCP.

/// Start block.
pub const START: u8 = 0x0B;
/// End block (followed by a carriage return).
pub const END: u8 = 0x1C;
const CR: u8 = 0x0D;

/// `payload` framed for the wire.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(START);
    out.extend_from_slice(payload);
    out.extend_from_slice(&[END, CR]);
    out
}

/// Why the byte stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame grew beyond the limit before its end block arrived.
    #[error("a message exceeded {0} bytes")]
    TooLarge(usize),
    /// Something other than whitespace arrived between frames.
    #[error("data outside an MLLP frame (a message must start with 0x0B)")]
    OutsideFrame,
}

/// Splits a byte stream into frame payloads, whatever the TCP segmentation.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses payloads over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete payload, `None` until one has fully arrived.
    ///
    /// Whitespace between frames is skipped (some senders end a frame with an extra line feed).
    /// An end block without its carriage return is accepted once the next byte shows it is
    /// missing, since `0x1C` cannot occur inside an HL7 message.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let lead = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        self.buf.drain(..lead);
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if first != START {
            return Err(FrameError::OutsideFrame);
        }
        let Some(end) = self.buf.iter().position(|&b| b == END) else {
            if self.buf.len() - 1 > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
            return Ok(None);
        };
        if end - 1 > self.max {
            return Err(FrameError::TooLarge(self.max));
        }
        let consumed = match self.buf.get(end + 1) {
            Some(&CR) => end + 2,
            Some(_) => end + 1,
            // The carriage return may still be on its way.
            None => return Ok(None),
        };
        let payload = self.buf[1..end].to_vec();
        self.buf.drain(..consumed);
        Ok(Some(payload))
    }

    /// Everything buffered, taken out (what to keep when the stream is refused).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_segmentation() {
        let mut wire = frame(b"MSH|one");
        wire.extend(frame(b"MSH|two"));
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new(100);
            let mut got = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                d.push(chunk);
                while let Some(f) = d.next_frame().expect("frame") {
                    got.push(f);
                }
            }
            assert_eq!(
                got,
                vec![b"MSH|one".to_vec(), b"MSH|two".to_vec()],
                "split {split}"
            );
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn a_frame_waits_for_its_carriage_return_and_accepts_a_missing_one() {
        let mut d = FrameDecoder::new(100);
        d.push(&[START, b'a', END]);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[b'\n', START, b'b', END, CR]);
        assert_eq!(d.next_frame(), Ok(Some(b"a".to_vec())));
        assert_eq!(d.next_frame(), Ok(Some(b"b".to_vec())));
    }

    #[test]
    fn oversized_and_unframed_input_is_refused() {
        let mut d = FrameDecoder::new(4);
        d.push(&[START, 1, 2, 3, 4, 5]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(4)));
        let mut d = FrameDecoder::new(4);
        d.push(&frame(b"12345"));
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(4)));
        let mut d = FrameDecoder::new(4);
        d.push(&frame(b"1234"));
        assert_eq!(d.next_frame(), Ok(Some(b"1234".to_vec())));
        let mut d = FrameDecoder::new(100);
        d.push(b"\r\nMSH|");
        assert_eq!(d.next_frame(), Err(FrameError::OutsideFrame));
    }
}
