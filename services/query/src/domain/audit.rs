//! Reading the audit trail: `GET /fhir/AuditEvent?patient=…` and `GET /fhir/AuditEvent/{id}`.
//!
//! Who reads what is the consent decision's, like any other read: a patient reaches the events
//! about them (their own records), an auditor every event, anyone else only what a patient's
//! consent grants. A patient who asks for another patient's trail gets an empty Bundle, as a
//! search over records they may not see would. Reading the trail is itself audited.

use std::collections::HashMap;

use medledger_access::{AccessError, AccessQuery, Interaction, Scopes};
use medledger_audit::{Action, Entry};
use medledger_auth::Caller;
use medledger_storage_api::{AuditFilter, AuditRow};
use serde_json::Value;

use super::Query;
use crate::QueryError;

/// Most events one search returns.
pub const MAX_COUNT: u32 = 1000;
/// Events a search returns without `_count`.
pub const DEFAULT_COUNT: u32 = 100;

/// The search parameters understood on `AuditEvent`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSearch {
    /// `patient`: `Patient/{id}` or a bare id.
    pub patient: Option<String>,
    /// `agent`: who acted (`Practitioner/dr-1`).
    pub agent: Option<String>,
    /// `_count`.
    pub count: Option<u32>,
}

impl AuditSearch {
    /// Parses the query string; unknown parameters are refused (400) rather than ignored, so a
    /// caller never mistakes an unfiltered answer for a filtered one.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, QueryError> {
        let mut out = Self::default();
        for (k, v) in params {
            let v = v.clone();
            match k.as_str() {
                "patient" => {
                    let p = if v.starts_with("Patient/") {
                        v
                    } else {
                        format!("Patient/{v}")
                    };
                    if !medledger_fhir::valid_id(&p["Patient/".len()..]) {
                        return Err(QueryError::Invalid("patient must be Patient/{id}".into()));
                    }
                    out.patient = Some(p);
                }
                "agent" => out.agent = Some(v),
                "_count" => {
                    let n: u32 = v
                        .parse()
                        .map_err(|_| QueryError::Invalid("_count must be a number".into()))?;
                    out.count = Some(n.clamp(1, MAX_COUNT));
                }
                other => {
                    return Err(QueryError::Invalid(format!(
                        "unsupported AuditEvent search parameter '{other}' (patient, agent, _count)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl Query {
    /// Whether the consent decision lets `caller` read AuditEvents about `patient` (`None`:
    /// the whole trail). 503 when no decision can be had.
    async fn may_read_audit(
        &self,
        caller: &Caller,
        interaction: Interaction,
        patient: Option<&str>,
    ) -> Result<bool, QueryError> {
        let query = AccessQuery {
            caller,
            interaction,
            resource_type: "AuditEvent",
            owner: patient,
            custodian: None,
            categories: None,
        };
        match self.policy.permit(query).await {
            Ok(()) => Ok(true),
            Err(AccessError::Denied(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /AuditEvent`: the events `caller` may see that match `search`, newest first. A
    /// patient asking without `patient=` gets their own.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        mut search: AuditSearch,
    ) -> Result<Vec<AuditRow>, QueryError> {
        medledger_access::require_reach(
            &Scopes::parse(&caller.claims.scope),
            "AuditEvent",
            Interaction::Search,
        )?;
        if search.patient.is_none() && caller.claims.role == "patient" {
            search.patient = caller.claims.patient_context();
        }
        let mut audit = self.audit.begin(
            Entry::by(caller, "query", "search-type", Action::Read)
                .about(search.patient.as_deref())
                .touching("AuditEvent"),
        );
        let result = async {
            if !self
                .may_read_audit(caller, Interaction::Search, search.patient.as_deref())
                .await?
            {
                // A search over records one may not see finds none; the trail says why.
                audit.refused("access denied by the consent decision");
                return Ok(Vec::new());
            }
            Ok(self
                .audit
                .list(&AuditFilter {
                    patient: search.patient.clone(),
                    actor: search.agent.clone(),
                    since_ms: None,
                    limit: search.count.unwrap_or(DEFAULT_COUNT),
                })
                .await?)
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /AuditEvent/{id}`: one event, if `caller` may see it (else 404, like an unknown
    /// one).
    pub async fn audit_event(&self, caller: &Caller, id: &str) -> Result<AuditRow, QueryError> {
        medledger_access::require_reach(
            &Scopes::parse(&caller.claims.scope),
            "AuditEvent",
            Interaction::Read,
        )?;
        let mut audit = self.audit.begin(
            Entry::by(caller, "query", "read", Action::Read).touching(format!("AuditEvent/{id}")),
        );
        let unknown = || QueryError::NotFound(format!("AuditEvent/{id} is not known"));
        let result = async {
            let row = self.audit.get(id).await?.ok_or_else(unknown)?;
            audit.about(row.patient.as_deref());
            if self
                .may_read_audit(caller, Interaction::Read, row.patient.as_deref())
                .await?
            {
                Ok(row)
            } else {
                audit.refused("access denied by the consent decision");
                Err(unknown())
            }
        }
        .await;
        audit.finish(result).await
    }
}

/// A stored AuditEvent as JSON.
pub fn resource_of(row: &AuditRow) -> Result<Value, QueryError> {
    serde_json::from_slice(&row.resource)
        .map_err(|_| QueryError::Integrity(format!("AuditEvent/{} is unreadable", row.id)))
}
