//! The consent service's FHIR API: patients' `Consent`s (`consents.rs`), roles and practitioner
//! verification (`roles.rs`), and practitioners' access requests (`requests.rs`), each with the
//! rules of who may do what. The store is authoritative: a change applies to every access
//! decision after it commits. Every request, refused or not, is audited here, at the domain
//! boundary, before its answer goes out.

mod consents;
mod requests;
mod roles;

use std::sync::Arc;

use medledger_access::{Interaction, ScopeGrant, Scopes};
use medledger_auth::Caller;
use medledger_storage_api::{
    AccessRequestStore, ConsentRow, ConsentStore, RecordIndex, RegistryQueue,
};
use serde_json::Value;

use super::consent_policy::Enrolment;
use crate::ConsentError;

pub use requests::request_as_task;

/// A stored Consent version, as returned to clients.
#[derive(Debug, Clone)]
pub struct ConsentVersion {
    /// Logical id.
    pub id: String,
    /// Version id.
    pub version: u64,
    /// The resource with `id` and `meta`, RFC 8785 bytes.
    pub body: Vec<u8>,
    /// `meta.lastUpdated`.
    pub last_updated: String,
    /// Whether this call created the resource.
    pub created: bool,
}

/// The consent API over a consent store.
#[derive(Clone)]
pub struct ConsentApi {
    store: Arc<dyn ConsentStore>,
    requests: Arc<dyn AccessRequestStore>,
    enrolment: Enrolment,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    audit: medledger_audit::Auditor,
    /// Salts and chain registrations of Consent versions (vread and `$verify`); `None`: not
    /// served.
    registry: Option<Arc<dyn RegistryQueue>>,
    /// The record index, to refuse access requests for patients that do not exist; `None`:
    /// not checked.
    records: Option<Arc<dyn RecordIndex>>,
}

impl std::fmt::Debug for ConsentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentApi").finish_non_exhaustive()
    }
}

/// A stored row as returned to clients.
fn version_of(row: ConsentRow) -> Result<ConsentVersion, ConsentError> {
    let value: Value = serde_json::from_slice(&row.resource)
        .map_err(|_| ConsentError::Internal("a stored Consent does not parse".into()))?;
    Ok(ConsentVersion {
        id: row.id,
        version: row.version,
        last_updated: value["meta"]["lastUpdated"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body: row.resource,
        created: false,
    })
}

/// The `Parameters` resource an operation takes; anything else is refused.
fn parameters(body: &Value) -> Result<(), ConsentError> {
    if body["resourceType"] == "Parameters" {
        Ok(())
    } else {
        Err(ConsentError::Invalid(
            "the body must be a Parameters resource".into(),
        ))
    }
}

/// A `Parameters` resource's parameter by name.
fn parameter<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// A parameter's string value, of the first of `kinds` (`valueCode`, `valueString`, …) it has.
fn string_param<'a>(body: &'a Value, name: &str, kinds: &[&str]) -> Option<&'a str> {
    let p = parameter(body, name)?;
    kinds.iter().find_map(|k| p[*k].as_str())
}

/// A parameter's `valueReference.reference`.
fn reference_param<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    parameter(body, name).and_then(|p| p["valueReference"]["reference"].as_str())
}

/// `Type/id` with a FHIR type name and a valid id.
fn valid_reference(r: &str) -> bool {
    r.split_once('/').is_some_and(|(t, id)| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()) && medledger_fhir::valid_id(id)
    })
}

/// `Patient/{id}` for a path's patient id, refused when the id is not a FHIR id.
fn patient_ref(id: &str) -> Result<String, ConsentError> {
    if medledger_fhir::valid_id(id) {
        Ok(format!("Patient/{id}"))
    } else {
        Err(ConsentError::Invalid(format!(
            "'{id}' is not a valid FHIR id"
        )))
    }
}

impl ConsentApi {
    /// The API on `store` and `requests`; `enrolment` as for
    /// [`super::consent_policy::ConsentPolicy`]; `clock` tells Unix seconds (injectable).
    pub fn new(
        store: Arc<dyn ConsentStore>,
        requests: Arc<dyn AccessRequestStore>,
        enrolment: Enrolment,
        clock: Arc<dyn Fn() -> i64 + Send + Sync>,
        audit: medledger_audit::Auditor,
    ) -> Self {
        Self {
            store,
            requests,
            enrolment,
            clock,
            audit,
            registry: None,
            records: None,
        }
    }

    /// Serves vread and `$verify` from `registry` (the consent store's registry queue, which
    /// keeps every version's salts and where the chain recorded it).
    pub fn with_registry(mut self, registry: Arc<dyn RegistryQueue>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Refuses access requests for patients `records` does not hold.
    pub fn with_records(mut self, records: Arc<dyn RecordIndex>) -> Self {
        self.records = Some(records);
        self
    }

    /// The caller's stored role; `None` when the account does not exist (and is not enrolled).
    async fn role_of(&self, caller: &Caller) -> Result<Option<String>, ConsentError> {
        let account = self
            .enrolment
            .account(self.store.as_ref(), &caller.claims)
            .await?;
        Ok(account.map(|a| a.role))
    }

    /// Whether the caller's scopes cover `interaction` on the Consents of `patient`.
    fn scopes(
        caller: &Caller,
        scopes: &Scopes,
        interaction: Interaction,
        patient: &str,
    ) -> Result<(), ConsentError> {
        match scopes.grant(
            "Consent",
            interaction,
            Some(patient),
            caller.claims.patient_context().as_deref(),
            None,
        ) {
            ScopeGrant::Allowed => Ok(()),
            ScopeGrant::Refused(why) => Err(ConsentError::Forbidden(why)),
        }
    }

    /// The account the caller acts as (`fhirUser`, else the token subject).
    fn me(caller: &Caller) -> &str {
        caller
            .claims
            .fhir_user
            .as_deref()
            .unwrap_or(&caller.claims.sub)
    }

    /// Only the patient writes their consents.
    async fn may_write(
        &self,
        caller: &Caller,
        patient: &str,
        i: Interaction,
    ) -> Result<(), ConsentError> {
        Self::scopes(caller, &Scopes::parse(&caller.claims.scope), i, patient)?;
        if self.role_of(caller).await?.as_deref() == Some("patient") && Self::me(caller) == patient
        {
            Ok(())
        } else {
            Err(ConsentError::Forbidden(
                "only the patient may create, change or revoke their consents".into(),
            ))
        }
    }

    /// The patient reads their consents; an auditor reads all. Scopes that cannot reach Consent
    /// at all give 403; any other refusal looks like an unknown consent.
    async fn may_read(&self, caller: &Caller, patient: &str) -> Result<bool, ConsentError> {
        let scopes = Scopes::parse(&caller.claims.scope);
        medledger_access::require_reach(&scopes, "Consent", Interaction::Read)?;
        if Self::scopes(caller, &scopes, Interaction::Read, patient).is_err() {
            return Ok(false);
        }
        Ok(match self.role_of(caller).await?.as_deref() {
            Some("patient") => Self::me(caller) == patient,
            Some("auditor") => true,
            _ => false,
        })
    }
}
