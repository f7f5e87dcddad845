//! HL7 v2 for legacy EHRs and lab systems: message parsing (segments, fields, repetitions,
//! components, escapes), MLLP framing, ACK/NAK acknowledgements, and the translation of ADT and
//! ORU messages into one FHIR R4 transaction Bundle, so an HL7 feed enters through the same
//! validated, encrypted, ledgered write path as FHIR REST.
//!
//! Nothing here does I/O or logs: the listener lives in the ingest service. Parsed values are
//! PHI; error messages name segments and fields, never their contents.

pub mod ack;
pub mod message;
pub mod mllp;
pub mod translate;

pub use ack::{AckCode, ErrorCondition, ack_wanted, acknowledge, reject_unparsed};
pub use message::{Delimiters, Field, Message, ParseError, Segment, decode_text};
pub use mllp::{FrameDecoder, FrameError, frame};
pub use translate::{IdScheme, TranslateError, Translation, translate};
