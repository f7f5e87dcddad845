//! Protobuf event payloads and the gRPC access-control API from proto/, compiled with prost and
//! tonic (client and server stubs for `medledger.v1.AccessControl`).

#![allow(missing_docs, unreachable_pub)] // generated code; the .proto files carry the docs

/// `medledger.v1`: record, consent and audit events; the `AccessControl` service.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/medledger.v1.rs"));
}

pub use prost::Message;

/// Topic carrying [`v1::RecordVersionStored`].
pub const RECORDS_TOPIC: &str = "medledger.records.v1";

/// Topic reserved for consent change events (issue 4 fills it).
pub const CONSENT_TOPIC: &str = "medledger.consent.v1";

/// Topic reserved for access audit events (issue 4 fills it).
pub const AUDIT_TOPIC: &str = "medledger.audit.v1";

/// Topic carrying [`v1::DeadLetter`]: events a consumer could not process.
pub const DEAD_LETTER_TOPIC: &str = "medledger.deadletter.v1";

/// Every topic MedLedger uses, for creating them up front.
pub const ALL_TOPICS: [&str; 4] = [RECORDS_TOPIC, CONSENT_TOPIC, AUDIT_TOPIC, DEAD_LETTER_TOPIC];
