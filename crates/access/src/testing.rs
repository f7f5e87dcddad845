//! A policy for tests of the services that ask for decisions (feature `test-utils`).

use medledger_auth::Claims;

use crate::policy::{AccessError, AccessPolicy, AccessQuery, Decision, Interaction};
use crate::scopes::Scopes;

/// Scopes plus role: practitioners act within their scopes, every other role is denied. A
/// stand-in for the consent service where a test is about something else.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopePolicy;

impl ScopePolicy {
    /// The decision for verified `claims`.
    pub fn decide(claims: &Claims, interaction: Interaction, resource_type: &str) -> Decision {
        if !Scopes::parse(&claims.scope).allow(resource_type, interaction) {
            return Decision::Deny(format!(
                "token scopes do not permit '{}' on {}",
                interaction.letter(),
                resource_type
            ));
        }
        if claims.role != "practitioner" {
            return Decision::Deny(format!("role '{}' may not access records", claims.role));
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
    use medledger_auth::Caller;

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
