//! Patients' `Consent` resources: create, read, vread, update, revoke (`DELETE`), search by
//! patient, and each version's chain proof (`$verify`).

use medledger_audit::{Action, Audit, Entry};
use medledger_auth::Caller;
use medledger_storage_api::{ConsentRegistration, ConsentRow};
use serde_json::{Value, json};

use super::{ConsentApi, ConsentVersion, version_of};
use crate::ConsentError;
use crate::domain::consent::parse_consent;
use medledger_access::Interaction;

/// The patient a Consent body names, for the audit trail of a request about it.
fn body_patient(body: &Value) -> Option<&str> {
    body["patient"]["reference"].as_str()
}

/// A version id from the path (FHIR version ids here are positive integers).
fn version_param(vid: &str) -> Result<u64, ConsentError> {
    vid.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ConsentError::NotFound(format!("version {vid} is not known")))
}

impl ConsentApi {
    fn audit_of(&self, caller: &Caller, interaction: &str, action: Action) -> Audit {
        self.audit
            .begin(Entry::by(caller, "consent", interaction, action))
    }

    /// One stored version with its registration, if the caller may read it.
    async fn registration(
        &self,
        caller: &Caller,
        id: &str,
        version: u64,
        audit: &mut Audit,
    ) -> Result<ConsentRegistration, ConsentError> {
        let unknown =
            || ConsentError::NotFound(format!("Consent/{id}/_history/{version} is not known"));
        let registry = self.registry.as_ref().ok_or_else(unknown)?;
        let found = registry
            .consent_registration(id, version)
            .await?
            .ok_or_else(unknown)?;
        audit.about(Some(&found.consent.patient));
        if !self.may_read(caller, &found.consent.patient).await? {
            return Err(unknown());
        }
        Ok(found)
    }

    /// `GET /fhir/Consent/{id}/_history/{vid}`.
    pub async fn vread(
        &self,
        caller: &Caller,
        id: &str,
        vid: &str,
    ) -> Result<ConsentVersion, ConsentError> {
        let mut audit = self.audit_of(caller, "vread", Action::Read);
        audit.touching(format!("Consent/{id}/_history/{vid}"));
        let result = async {
            let found = self
                .registration(caller, id, version_param(vid)?, &mut audit)
                .await?;
            version_of(found.consent)
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /fhir/Consent/{id}/_history/{vid}/$verify`: the consent proof of that version
    /// (`docs/proof-format.md`), once the registrar has committed it to the chain (503 with
    /// `Retry-After` until then).
    pub async fn proof(
        &self,
        caller: &Caller,
        id: &str,
        vid: &str,
    ) -> Result<medledger_ledger::registry::ConsentProof, ConsentError> {
        use medledger_ledger::registry::{Authorization, CONSENT_PROOF_FORMAT, ConsentProof};
        let mut audit = self.audit_of(caller, "operation", Action::Read);
        audit.touching(format!("Consent/{id}/_history/{vid}/$verify"));
        let result = async {
            let found = self
                .registration(caller, id, version_param(vid)?, &mut audit)
                .await?;
            let Some(registration) = &found.registration else {
                return Err(ConsentError::NotYet {
                    message: "this Consent version is not committed to the chain yet".into(),
                    retry_after_secs: 1,
                });
            };
            let recorded = serde_json::from_slice(registration).map_err(|_| {
                ConsentError::Internal("a stored registration does not parse".into())
            })?;
            let row = found.consent;
            Ok(ConsentProof {
                format: CONSENT_PROOF_FORMAT.to_owned(),
                consent: format!("Consent/{}", row.id),
                version: row.version,
                patient: row.patient.clone(),
                status: row.status.clone(),
                authorization: Authorization::for_version(
                    &row.id,
                    row.version,
                    &row.actor,
                    row.recorded_at_ms,
                    &found.salt,
                    &row.resource,
                ),
                salt: hex::encode(found.salt),
                subject_salt: hex::encode(found.subject_salt),
                recorded,
            })
        }
        .await;
        audit.finish(result).await
    }

    /// Validates, stamps and stores one version.
    pub(super) async fn put(
        &self,
        caller: &Caller,
        id: &str,
        mut value: Value,
        expected: Option<u64>,
    ) -> Result<ConsentVersion, ConsentError> {
        let rt = medledger_fhir::validate_resource(&value)?;
        if rt != "Consent" {
            return Err(ConsentError::Invalid("the body is not a Consent".into()));
        }
        let parsed = parse_consent(id, &value).map_err(|e| ConsentError::Unprocessable(e.0))?;
        let interaction = if expected.is_some() {
            Interaction::Update
        } else {
            Interaction::Create
        };
        self.may_write(caller, &parsed.patient, interaction).await?;
        if expected.is_some() {
            let stored = self.store.consent(id).await?;
            if stored.as_ref().is_some_and(|s| s.patient != parsed.patient) {
                return Err(ConsentError::Unprocessable(
                    "a Consent cannot move to another patient".into(),
                ));
            }
        }
        let version = expected.map_or(1, |v| v + 1);
        let (last_updated, now_ms) = medledger_fhir::now_instant();
        value["id"] = json!(id);
        value["meta"] = json!({"versionId": version.to_string(), "lastUpdated": last_updated});
        let body = medledger_fhir::canonical_json(&value);
        self.store
            .put_consent(
                &ConsentRow {
                    id: id.to_owned(),
                    version,
                    patient: parsed.patient,
                    status: value["status"].as_str().unwrap_or_default().to_owned(),
                    resource: body.clone(),
                    actor: Self::me(caller).to_owned(),
                    recorded_at_ms: now_ms,
                },
                expected,
            )
            .await?;
        Ok(ConsentVersion {
            id: id.to_owned(),
            version,
            body,
            last_updated,
            created: expected.is_none(),
        })
    }

    /// `POST /fhir/Consent`.
    pub async fn create(
        &self,
        caller: &Caller,
        value: Value,
    ) -> Result<ConsentVersion, ConsentError> {
        let mut audit = self.audit_of(caller, "create", Action::Create);
        audit.about(body_patient(&value)).touching("Consent");
        let id = uuid::Uuid::new_v4().to_string();
        let result = self.put(caller, &id, value, None).await;
        audit.finish(result).await
    }

    /// `PUT /fhir/Consent/{id}`: a new version (creating it when unknown).
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        value: Value,
        if_match: Option<u64>,
    ) -> Result<ConsentVersion, ConsentError> {
        let mut audit = self.audit_of(caller, "update", Action::Update);
        audit
            .about(body_patient(&value))
            .touching(format!("Consent/{id}"));
        let result = async {
            if !medledger_fhir::valid_id(id) {
                return Err(ConsentError::Invalid(format!(
                    "'{id}' is not a valid FHIR id"
                )));
            }
            if value["id"].as_str() != Some(id) {
                return Err(ConsentError::Invalid(
                    "the resource id does not match the id in the URL".into(),
                ));
            }
            let current = self.store.consent(id).await?.map(|c| c.version);
            if let Some(want) = if_match
                && current != Some(want)
            {
                return Err(ConsentError::PreconditionFailed(
                    "If-Match does not name the current version".into(),
                ));
            }
            self.put(caller, id, value, current).await
        }
        .await;
        audit.finish(result).await
    }

    /// `DELETE /fhir/Consent/{id}`: revocation, kept as a new version with status `inactive`
    /// (the history stays; a revoked consent applies to no decision after this commits).
    pub async fn revoke(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<ConsentVersion>, ConsentError> {
        let mut audit = self.audit_of(caller, "delete", Action::Delete);
        audit.touching(format!("Consent/{id}"));
        let result = async {
            let Some(current) = self.store.consent(id).await? else {
                return Ok(None);
            };
            audit.about(Some(&current.patient));
            let mut value: Value = serde_json::from_slice(&current.resource)
                .map_err(|_| ConsentError::Internal("a stored Consent does not parse".into()))?;
            if value["status"] == "inactive" {
                self.may_write(caller, &current.patient, Interaction::Delete)
                    .await?;
                return Ok(None);
            }
            value["status"] = json!("inactive");
            let mut v = self.put(caller, id, value, Some(current.version)).await?;
            v.created = false;
            Ok(Some(v))
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /fhir/Consent/{id}`. A consent the caller may not read answers like an unknown one.
    pub async fn read(&self, caller: &Caller, id: &str) -> Result<ConsentVersion, ConsentError> {
        let mut audit = self.audit_of(caller, "read", Action::Read);
        audit.touching(format!("Consent/{id}"));
        let result = async {
            let unknown = || ConsentError::NotFound(format!("Consent/{id} is not known"));
            let row = self.store.consent(id).await?.ok_or_else(unknown)?;
            audit.about(Some(&row.patient));
            if !self.may_read(caller, &row.patient).await? {
                return Err(unknown());
            }
            version_of(row)
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /fhir/Consent?patient=…`: the patient's current consents, as a searchset Bundle.
    pub async fn search(
        &self,
        caller: &Caller,
        patient: Option<&str>,
    ) -> Result<Value, ConsentError> {
        let patient = patient.map(|p| {
            if p.contains('/') {
                p.to_owned()
            } else {
                format!("Patient/{p}")
            }
        });
        let mut audit = self.audit_of(caller, "search-type", Action::Read);
        audit.about(patient.as_deref()).touching("Consent");
        let result = async {
            let patient = patient.ok_or_else(|| {
                ConsentError::Invalid("search Consent by patient (?patient=Patient/{id})".into())
            })?;
            let rows = if self.may_read(caller, &patient).await? {
                self.store.consents_of(&patient).await?
            } else {
                Vec::new()
            };
            let entries: Vec<Value> = rows
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(&r.resource).ok())
                .map(|resource| json!({"fullUrl": format!("Consent/{}", resource["id"].as_str().unwrap_or_default()), "resource": resource, "search": {"mode": "match"}}))
                .collect();
            Ok(json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}))
        }
        .await;
        audit.finish(result).await
    }
}
