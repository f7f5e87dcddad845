//! The access-decision port: "may this caller do this interaction on this record?", asked by
//! ingest, query and the consent API, answered by the consent service in process
//! (`medledger dev`) or over gRPC (distributed mode), and the SMART scopes every decision
//! starts from.
//!
//! Feature `test-utils`: [`testing::ScopePolicy`], a scopes-and-role policy for tests of the
//! services that ask.

pub mod policy;
pub mod scopes;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use policy::{AccessError, AccessPolicy, AccessQuery, Decision, Interaction};
pub use scopes::{ScopeGrant, Scopes};

/// [`AccessError::Denied`] unless some scope in `scopes` could reach `interaction` on
/// `resource_type` at all: the check made before any lookup, so a refusal says nothing about
/// which records exist.
pub fn require_reach(
    scopes: &Scopes,
    resource_type: &str,
    interaction: Interaction,
) -> Result<(), AccessError> {
    if scopes.may_cover(resource_type, interaction) {
        Ok(())
    } else {
        Err(AccessError::Denied(format!(
            "token scopes do not permit '{}' on {resource_type}",
            interaction.letter()
        )))
    }
}

/// Where a service asks for decisions when the consent service runs apart (the `consent`
/// section of ingest's and query's configuration); the gRPC client is built from it where the
/// backends are chosen.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentEndpoint {
    /// gRPC endpoint, `http://host:port`.
    pub endpoint: String,
    /// Longest wait for a decision, milliseconds; without one the request fails with 503.
    pub timeout_ms: u64,
}

impl Default for ConsentEndpoint {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50051".to_owned(),
            timeout_ms: 2_000,
        }
    }
}
