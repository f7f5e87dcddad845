//! Consent service: decides whether an actor may perform an interaction on a resource, in
//! process (`medledger dev`) or over gRPC (`medledger consent`, [`grpc`]).
//!
//! This release implements the first two steps of the decision order in `docs/architecture.md`:
//! the token's SMART scopes must cover the interaction and type, and the actor must hold a role
//! allowed to act. Practitioners may read and write; every other role is denied until patient
//! consents, access requests and break-glass arrive (issue 4).

pub mod domain;
pub mod grpc;
pub mod http;

pub use domain::api::ConsentApi;
pub use domain::consent_policy::{ConsentPolicy, Enrolment};
pub use domain::policy::{
    AccessError, AccessPolicy, AccessQuery, Decision, Interaction, ScopePolicy,
};
pub use domain::scopes::{scope_allows, scopes_may_cover};
pub use grpc::{AccessControlService, GrpcAccessPolicy};

/// 403 unless some scope of `caller` could reach `interaction` on `resource_type` at all: the
/// check made before any lookup, so a refusal says nothing about which records exist.
pub fn require_scope_reach(
    caller: &medledger_auth::Caller,
    resource_type: &str,
    interaction: Interaction,
) -> Result<(), medledger_http::ApiError> {
    if scopes_may_cover(&caller.claims.scope, resource_type, interaction) {
        Ok(())
    } else {
        Err(medledger_http::ApiError::forbidden(format!(
            "token scopes do not permit '{}' on {resource_type}",
            interaction.letter()
        )))
    }
}

impl From<AccessError> for medledger_http::ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied(reason) => Self::forbidden(reason),
            AccessError::Unavailable(why) => Self::unavailable(why, 1),
        }
    }
}
