//! [`ConsentPolicy`]: the access decision on the consent store's facts (roles, practitioner
//! verification, the owner's consents).

use std::sync::Arc;

use medledger_storage_api::{ConsentStore, StoreError};

use super::consent::{ConsentRecord, parse_consent};
use super::decision::{Actor, Circumstances, Target, Verdict, decide};
use medledger_access::{AccessError, AccessPolicy, AccessQuery, Decision};

/// How accounts come to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolment {
    /// An account is created, unverified, with the role its first valid token names
    /// (`medledger dev`; the issuer is trusted to assign roles).
    FromTokens,
    /// Only accounts an admin created exist; any other caller is denied.
    AdminOnly,
}

impl Enrolment {
    /// The caller's account under this enrolment rule (`None`: unknown, not enrolled).
    pub async fn account(
        self,
        store: &dyn ConsentStore,
        claims: &medledger_auth::Claims,
    ) -> Result<Option<medledger_storage_api::AccountRow>, StoreError> {
        let me = claims.fhir_user.as_deref().unwrap_or(&claims.sub);
        // Every decision asks: read first, so a known account costs no write (the insert
        // would take SQLite's write lock on every read).
        match (store.account(me).await?, self) {
            (Some(a), _) => Ok(Some(a)),
            (None, Enrolment::FromTokens) => store.ensure_account(me, &claims.role).await.map(Some),
            (None, Enrolment::AdminOnly) => Ok(None),
        }
    }
}

/// Decides with the documented order ([`decide`]) on the store's facts. The store is
/// authoritative: the account's stored role, not the token's claim, is the role decided on, and
/// a consent change applies to every decision after it commits.
pub struct ConsentPolicy {
    store: Arc<dyn ConsentStore>,
    enrolment: Enrolment,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl std::fmt::Debug for ConsentPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentPolicy")
            .field("enrolment", &self.enrolment)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> AccessError {
    AccessError::Unavailable(e.to_string())
}

impl ConsentPolicy {
    /// A policy on `store`, telling time by the system clock.
    pub fn new(store: Arc<dyn ConsentStore>, enrolment: Enrolment) -> Self {
        Self::with_clock(store, enrolment, Arc::new(medledger_auth::unix_now))
    }

    /// A policy telling time by `clock` (Unix seconds), for tests of expiry.
    pub fn with_clock(
        store: Arc<dyn ConsentStore>,
        enrolment: Enrolment,
        clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            store,
            enrolment,
            clock,
        }
    }

    /// The owner's consents that parse; one that does not (it was stored by an older release,
    /// say) is skipped with a warning rather than blocking every decision about that patient.
    async fn consents_of(&self, owner: Option<&str>) -> Result<Vec<ConsentRecord>, AccessError> {
        let Some(patient) = owner.filter(|o| o.starts_with("Patient/")) else {
            return Ok(Vec::new());
        };
        let rows = self.store.consents_of(patient).await.map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let parsed = serde_json::from_slice(&row.resource)
                    .map_err(|e| e.to_string())
                    .and_then(|v| parse_consent(&row.id, &v).map_err(|e| e.to_string()));
                match parsed {
                    Ok(c) => Some(c),
                    Err(why) => {
                        tracing::warn!(consent = %row.id, %why, "stored consent does not parse; ignored");
                        None
                    }
                }
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl AccessPolicy for ConsentPolicy {
    async fn check(&self, q: AccessQuery<'_>) -> Result<Decision, AccessError> {
        let claims = &q.caller.claims;
        let account = self
            .enrolment
            .account(self.store.as_ref(), claims)
            .await
            .map_err(unavailable)?;
        let Some(account) = account else {
            return Ok(Decision::Deny(
                "this account has no role yet; an admin must assign one".into(),
            ));
        };
        // The stored role is the one decided on.
        let mut as_stored = claims.clone();
        as_stored.role = account.role.clone();
        let consents = self.consents_of(q.owner).await?;
        let verdict = decide(
            Actor {
                claims: &as_stored,
                verified_practitioner: account.role == "practitioner" && account.verified,
            },
            Target {
                interaction: q.interaction,
                resource_type: q.resource_type,
                owner: q.owner,
                custodian: q.custodian,
                categories: q.categories,
            },
            Circumstances {
                purpose: q.caller.purpose.as_deref(),
                break_glass_reason: q.caller.break_glass_reason.as_deref(),
                now: (self.clock)(),
            },
            &consents,
        );
        Ok(match verdict {
            Verdict::Permit(_) => Decision::Permit,
            Verdict::Deny(reason) => Decision::Deny(reason),
        })
    }
}
