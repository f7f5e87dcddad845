//! Protobuf event payloads from proto/, compiled with prost.

#![allow(missing_docs, unreachable_pub)] // generated code; the .proto files carry the docs

/// `medledger.v1`: record, consent and audit events.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/medledger.v1.rs"));
}

pub use prost::Message;

/// Topic carrying [`v1::RecordVersionStored`].
pub const RECORDS_TOPIC: &str = "medledger.records.v1";
