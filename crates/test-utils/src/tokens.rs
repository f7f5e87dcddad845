//! Tokens and callers, as a test needs them.

use medledger_auth::{Caller, Claims, IssuerKey};

/// A bearer token from `issuer` for `subject` with `role` and `scope`, valid for 12 hours.
pub fn mint(issuer: &IssuerKey, subject: &str, role: &str, scope: &str) -> String {
    issuer.mint(subject, role, scope, medledger_auth::unix_now(), 12 * 3600)
}

/// An authenticated caller, as the bearer middleware would hand a domain (the token itself is
/// not checked again in process).
pub fn caller(subject: &str, role: &str, scope: &str) -> Caller {
    let claims = Claims {
        iss: medledger_auth::DEV_ISSUER.into(),
        sub: subject.into(),
        aud: medledger_auth::AUDIENCE.into(),
        exp: i64::MAX,
        iat: 0,
        scope: scope.into(),
        role: role.into(),
        fhir_user: None,
        jti: String::new(),
        patient: None,
    };
    Caller::new(claims, "unused: the in-process policy reads the claims")
}
