//! The access decision port and this release's policy.

use medledger_auth::{Caller, Claims};

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
    /// The interaction for a SMART v2 permission letter.
    pub fn from_letter(letter: &str) -> Option<Self> {
        Some(match letter {
            "c" => Interaction::Create,
            "r" => Interaction::Read,
            "u" => Interaction::Update,
            "d" => Interaction::Delete,
            "s" => Interaction::Search,
            _ => return None,
        })
    }

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
    pub caller: &'a Caller,
    /// The interaction.
    pub interaction: Interaction,
    /// Resource type acted on.
    pub resource_type: &'a str,
    /// Owner label of the record, when known.
    pub owner: Option<&'a str>,
    /// Who wrote the record's current version, when it exists.
    pub custodian: Option<&'a str>,
    /// The resource's category codes, when known.
    pub categories: Option<&'a [String]>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Permit,
    /// Denied, with a reason safe to show the caller.
    Deny(String),
}

/// Why an access did not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The policy decided: no. The reason is safe to show the caller.
    #[error("{0}")]
    Denied(String),
    /// No decision could be made (the consent service is unreachable or failed); the caller
    /// fails closed and tells its client to retry.
    #[error("access decision unavailable: {0}")]
    Unavailable(String),
}

/// "May this actor do this?" — answered in-process in dev mode, over gRPC in distributed mode.
#[async_trait::async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// Decides one access. `Err` means no decision was reached (never "allowed").
    async fn check(&self, query: AccessQuery<'_>) -> Result<Decision, AccessError>;

    /// [`AccessPolicy::check`] folded into one `Result`.
    async fn permit(&self, query: AccessQuery<'_>) -> Result<(), AccessError> {
        match self.check(query).await? {
            Decision::Permit => Ok(()),
            Decision::Deny(reason) => Err(AccessError::Denied(reason)),
        }
    }
}

/// Scope check plus role check: practitioners act within their scopes; every other role is
/// denied until consent rules exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopePolicy;

impl ScopePolicy {
    /// The decision for verified `claims`; pure, so the gRPC server and the in-process policy
    /// decide identically.
    pub fn decide(claims: &Claims, interaction: Interaction, resource_type: &str) -> Decision {
        if !super::scopes::scope_allows(&claims.scope, resource_type, interaction) {
            return Decision::Deny(format!(
                "token scopes do not permit '{}' on {}",
                interaction.letter(),
                resource_type
            ));
        }
        if claims.role != "practitioner" {
            return Decision::Deny(format!("role '{}' may not access records yet", claims.role));
        }
        Decision::Permit
    }
}

#[async_trait::async_trait]
impl AccessPolicy for ScopePolicy {
    async fn check(&self, q: AccessQuery<'_>) -> Result<Decision, AccessError> {
        Ok(Self::decide(
            &q.caller.claims,
            q.interaction,
            q.resource_type,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: &str, scope: &str) -> Caller {
        Caller::new(
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
                patient: None,
            },
            "token",
        )
    }

    #[tokio::test]
    async fn decisions() {
        let p = ScopePolicy;
        fn q(c: &Caller, i: Interaction) -> AccessQuery<'_> {
            AccessQuery {
                caller: c,
                interaction: i,
                resource_type: "Observation",
                owner: None,
                custodian: None,
                categories: None,
            }
        }
        let doc = claims("practitioner", "user/*.cruds");
        assert_eq!(
            p.check(q(&doc, Interaction::Create)).await,
            Ok(Decision::Permit)
        );
        let reader = claims("practitioner", "user/*.rs");
        assert!(matches!(
            p.check(q(&reader, Interaction::Create)).await,
            Ok(Decision::Deny(_))
        ));
        let patient = claims("patient", "user/*.cruds");
        assert!(matches!(
            p.check(q(&patient, Interaction::Read)).await,
            Ok(Decision::Deny(_))
        ));
    }
}
