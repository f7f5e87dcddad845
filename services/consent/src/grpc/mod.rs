//! `medledger.v1.AccessControl` over gRPC (tonic): the consent service's server, and the
//! [`GrpcAccessPolicy`] client that ingest and query use in distributed mode.
//!
//! The end user's bearer token rides in the `authorization` metadata. The server verifies it
//! against its own trusted issuers and decides for the account it names; it never takes a
//! caller's word for who the user is.

mod client;
mod server;

pub use client::GrpcAccessPolicy;
pub use server::{AccessControlService, MAX_REQUEST_BYTES, status_of};

/// Metadata key carrying `Bearer <JWT>`.
const AUTHORIZATION: &str = "authorization";
