//! The access decision port and this release's policy.

use medledger_auth::Claims;

/// FHIR interactions, by their SMART v2 permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// `c`
    Create,
    /// `r` (read, vread, history, `$verify`)
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `s`
    Search,
}

impl Interaction {
    /// SMART v2 permission letter.
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// What is being asked.
#[derive(Debug, Clone, Copy)]
pub struct AccessQuery<'a> {
    /// The authenticated caller.
    pub claims: &'a Claims,
    /// The interaction.
    pub interaction: Interaction,
    /// Resource type acted on.
    pub resource_type: &'a str,
    /// Owner label of the record, when known.
    pub owner: Option<&'a str>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Permit,
    /// Denied, with a reason safe to show the caller.
    Deny(String),
}

/// "May this actor do this?" — answered in-process in dev mode, over gRPC in distributed mode.
#[async_trait::async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// Decides one access.
    async fn check(&self, query: AccessQuery<'_>) -> Decision;

    /// [`AccessPolicy::check`] as a `Result`: `Err` carries the reason for the caller.
    async fn permit(&self, query: AccessQuery<'_>) -> Result<(), String> {
        match self.check(query).await {
            Decision::Permit => Ok(()),
            Decision::Deny(reason) => Err(reason),
        }
    }
}

/// Scope check plus role check: practitioners act within their scopes; every other role is
/// denied until consent rules exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopePolicy;

#[async_trait::async_trait]
impl AccessPolicy for ScopePolicy {
    async fn check(&self, q: AccessQuery<'_>) -> Decision {
        if !super::scopes::scope_allows(&q.claims.scope, q.resource_type, q.interaction) {
            return Decision::Deny(format!(
                "token scopes do not permit '{}' on {}",
                q.interaction.letter(),
                q.resource_type
            ));
        }
        if q.claims.role != "practitioner" {
            return Decision::Deny(format!(
                "role '{}' may not access records yet",
                q.claims.role
            ));
        }
        Decision::Permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: &str, scope: &str) -> Claims {
        Claims {
            iss: "x".into(),
            sub: "Practitioner/dr-1".into(),
            aud: "medledger".into(),
            exp: 0,
            iat: 0,
            scope: scope.into(),
            role: role.into(),
            fhir_user: None,
            jti: String::new(),
        }
    }

    #[tokio::test]
    async fn decisions() {
        let p = ScopePolicy;
        fn q(c: &Claims, i: Interaction) -> AccessQuery<'_> {
            AccessQuery {
                claims: c,
                interaction: i,
                resource_type: "Observation",
                owner: None,
            }
        }
        let doc = claims("practitioner", "user/*.cruds");
        assert_eq!(
            p.check(q(&doc, Interaction::Create)).await,
            Decision::Permit
        );
        let reader = claims("practitioner", "user/*.rs");
        assert!(matches!(
            p.check(q(&reader, Interaction::Create)).await,
            Decision::Deny(_)
        ));
        let patient = claims("patient", "user/*.cruds");
        assert!(matches!(
            p.check(q(&patient, Interaction::Read)).await,
            Decision::Deny(_)
        ));
    }
}
