//! Consent service: decides whether an actor may perform an interaction on a resource.
//!
//! This release implements the first two steps of the decision order in `docs/architecture.md`:
//! the token's SMART scopes must cover the interaction and type, and the actor must hold a role
//! allowed to act. Practitioners may read and write; every other role is denied until patient
//! consents, access requests and break-glass arrive (issue 4).

pub mod domain;

pub use domain::policy::{AccessPolicy, AccessQuery, Decision, Interaction, ScopePolicy};
pub use domain::scopes::scope_allows;
