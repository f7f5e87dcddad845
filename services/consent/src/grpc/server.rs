//! The gRPC server side of `CheckAccess`.

use std::sync::Arc;

use medledger_auth::{Caller, TokenVerifier};
use medledger_proto::v1::access_control_server::{AccessControl, AccessControlServer};
use medledger_proto::v1::{CheckAccessRequest, CheckAccessResponse};
use tonic::{Request, Response, Status};

use medledger_access::{AccessError, AccessPolicy, AccessQuery, Decision, Interaction};
use medledger_error::{Categorized, Category, Failure};

/// Largest accepted request message. A `CheckAccess` request is a few hundred bytes; anything
/// near this is not a real request.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Serves `CheckAccess` with a policy, authenticating every request by its bearer token.
#[derive(Clone)]
pub struct AccessControlService {
    verifier: TokenVerifier,
    policy: Arc<dyn AccessPolicy>,
}

impl std::fmt::Debug for AccessControlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControlService")
            .finish_non_exhaustive()
    }
}

impl AccessControlService {
    /// Decides with `policy` for callers whose tokens `verifier` accepts.
    pub fn new(verifier: TokenVerifier, policy: Arc<dyn AccessPolicy>) -> Self {
        Self { verifier, policy }
    }

    /// The tonic service, with the request size limit applied.
    pub fn into_server(self) -> AccessControlServer<Self> {
        AccessControlServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }
}

/// The one mapping from an error category to a gRPC status.
pub fn status_of(e: &impl Categorized) -> Status {
    let message = e.diagnostics();
    match e.category() {
        Category::NotFound | Category::Gone => Status::not_found(message),
        Category::Malformed
        | Category::Invalid
        | Category::NotSupported
        | Category::UnsupportedMedia
        | Category::Unprocessable => Status::invalid_argument(message),
        Category::NotAllowed | Category::Forbidden => Status::permission_denied(message),
        Category::Conflict => Status::aborted(message),
        Category::PreconditionFailed => Status::failed_precondition(message),
        Category::Unauthenticated => Status::unauthenticated(message),
        Category::TooLarge | Category::Throttled { .. } => Status::resource_exhausted(message),
        Category::Unavailable { .. } => Status::unavailable(message),
        Category::Integrity => Status::data_loss(message),
        Category::Internal => Status::internal(message),
    }
}

fn refused(category: Category, message: impl Into<String>) -> Status {
    status_of(&Failure::new(category, message))
}

fn bearer<T>(req: &Request<T>) -> Result<&str, Status> {
    req.metadata()
        .get(super::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| refused(Category::Unauthenticated, "a bearer token is required"))
}

/// FHIR type names are ASCII letters; anything else is not a type and is refused before it
/// reaches the policy (or a log line).
fn valid_type(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphabetic())
}

#[tonic::async_trait]
impl AccessControl for AccessControlService {
    async fn check_access(
        &self,
        req: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        let token = bearer(&req)?;
        let claims = self
            .verifier
            .verify(token)
            .map_err(|e| refused(Category::Unauthenticated, e.to_string()))?;
        let mut caller = Caller::new(claims, token);
        let r = req.into_inner();
        let stated = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        caller.purpose = stated(&r.purpose_of_use);
        caller.break_glass_reason = stated(&r.break_glass_reason);
        let interaction = Interaction::from_letter(&r.interaction).ok_or_else(|| {
            refused(
                Category::Invalid,
                "interaction must be one of c, r, u, d, s",
            )
        })?;
        if !valid_type(&r.resource_type) {
            return Err(refused(
                Category::Invalid,
                "resource_type is not a FHIR type",
            ));
        }
        let query = AccessQuery {
            caller: &caller,
            interaction,
            resource_type: &r.resource_type,
            owner: (!r.owner.is_empty()).then_some(r.owner.as_str()),
            custodian: (!r.custodian.is_empty()).then_some(r.custodian.as_str()),
            categories: r.categories_known.then_some(r.categories.as_slice()),
        };
        let answer = match self.policy.check(query).await {
            Ok(Decision::Permit) => CheckAccessResponse {
                permitted: true,
                ..Default::default()
            },
            Ok(Decision::Deny(reason)) | Err(AccessError::Denied(reason)) => CheckAccessResponse {
                permitted: false,
                reason,
            },
            Err(e @ AccessError::Unavailable(_)) => return Err(status_of(&e)),
        };
        Ok(Response::new(answer))
    }
}
