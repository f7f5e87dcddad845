//! Patients' consents as FHIR resources: create, read, update, revoke and search, with the rules
//! of who may do what. The store is authoritative: a change applies to every access decision
//! after it commits.

use std::sync::Arc;

use medledger_auth::Caller;
use medledger_http::ApiError;
use medledger_storage_api::{
    AccessRequestRow, AccessRequestStore, ConsentRow, ConsentStore, RegistryQueue, StoreError,
};
use serde_json::{Value, json};

use super::consent::parse_consent;
use super::consent_policy::Enrolment;
use super::policy::Interaction;
use super::scopes::scope_grant;

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

/// The Consent API over a consent store.
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
}

/// A stored row as returned to clients.
fn version_of(row: ConsentRow) -> Result<ConsentVersion, ApiError> {
    let value: Value = serde_json::from_slice(&row.resource)
        .map_err(|_| ApiError::internal("a stored Consent does not parse"))?;
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

/// Longest access a request may ask for.
const MAX_REQUEST_SECS: i64 = 366 * 86_400;

impl std::fmt::Debug for ConsentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentApi").finish_non_exhaustive()
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => {
            ApiError::conflict("another change to this Consent came first; read it and retry")
        }
        StoreError::Unavailable(_) => ApiError::unavailable("the consent store is unavailable", 1),
        StoreError::Corrupt(_) => ApiError::integrity(e.to_string()),
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
        }
    }

    /// Serves vread and `$verify` from `registry` (the consent store's registry queue, which
    /// keeps every version's salts and where the chain recorded it).
    pub fn with_registry(mut self, registry: Arc<dyn RegistryQueue>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// One stored version with its registration, if the caller may read it.
    async fn registration(
        &self,
        caller: &Caller,
        id: &str,
        version: u64,
    ) -> Result<medledger_storage_api::ConsentRegistration, ApiError> {
        let unknown =
            || ApiError::not_found(format!("Consent/{id}/_history/{version} is not known"));
        let registry = self.registry.as_ref().ok_or_else(unknown)?;
        let found = registry
            .consent_registration(id, version)
            .await
            .map_err(store_error)?
            .ok_or_else(unknown)?;
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
        version: u64,
    ) -> Result<ConsentVersion, ApiError> {
        let row = self.registration(caller, id, version).await?.consent;
        version_of(row)
    }

    /// `GET /fhir/Consent/{id}/_history/{vid}/$verify`: the consent proof of that version
    /// (`docs/proof-format.md`), once the registrar has committed it to the chain (503 with
    /// `Retry-After` until then).
    pub async fn proof(
        &self,
        caller: &Caller,
        id: &str,
        version: u64,
    ) -> Result<medledger_ledger::registry::ConsentProof, ApiError> {
        use medledger_ledger::registry::{Authorization, CONSENT_PROOF_FORMAT, ConsentProof};
        let found = self.registration(caller, id, version).await?;
        let Some(registration) = &found.registration else {
            return Err(ApiError::unavailable(
                "this Consent version is not committed to the chain yet",
                1,
            ));
        };
        let recorded = serde_json::from_slice(registration)
            .map_err(|_| ApiError::internal("a stored registration does not parse"))?;
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

    /// The audit trail every change and refusal here is recorded in.
    pub fn auditor(&self) -> &medledger_audit::Auditor {
        &self.audit
    }

    /// The patient consent `id` is about, for the audit trail (`None` if unknown).
    pub async fn patient_of(&self, id: &str) -> Option<String> {
        self.store
            .consent(id)
            .await
            .ok()
            .flatten()
            .map(|r| r.patient)
    }

    /// The caller's stored role; `None` when the account does not exist (and is not enrolled).
    async fn role_of(&self, caller: &Caller) -> Result<Option<String>, ApiError> {
        let account = self
            .enrolment
            .account(self.store.as_ref(), &caller.claims)
            .await
            .map_err(store_error)?;
        Ok(account.map(|a| a.role))
    }

    fn scopes(caller: &Caller, interaction: Interaction, patient: &str) -> Result<(), ApiError> {
        match scope_grant(
            &caller.claims.scope,
            "Consent",
            interaction,
            Some(patient),
            caller.claims.patient_context(),
            None,
        ) {
            super::scopes::ScopeGrant::Allowed => Ok(()),
            super::scopes::ScopeGrant::Refused(why) => Err(ApiError::forbidden(why)),
        }
    }

    /// Only the patient writes their consents.
    async fn may_write(
        &self,
        caller: &Caller,
        patient: &str,
        i: Interaction,
    ) -> Result<(), ApiError> {
        Self::scopes(caller, i, patient)?;
        let me = caller
            .claims
            .fhir_user
            .as_deref()
            .unwrap_or(&caller.claims.sub);
        if self.role_of(caller).await?.as_deref() == Some("patient") && me == patient {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only the patient may create, change or revoke their consents",
            ))
        }
    }

    /// The patient reads their consents; an auditor reads all. Scopes that cannot reach Consent
    /// at all give 403; any other refusal looks like an unknown consent.
    async fn may_read(&self, caller: &Caller, patient: &str) -> Result<bool, ApiError> {
        crate::require_scope_reach(caller, "Consent", Interaction::Read)?;
        if Self::scopes(caller, Interaction::Read, patient).is_err() {
            return Ok(false);
        }
        let me = caller
            .claims
            .fhir_user
            .as_deref()
            .unwrap_or(&caller.claims.sub);
        Ok(match self.role_of(caller).await?.as_deref() {
            Some("patient") => me == patient,
            Some("auditor") => true,
            _ => false,
        })
    }

    /// Validates, stamps and stores one version.
    async fn put(
        &self,
        caller: &Caller,
        id: &str,
        mut value: Value,
        expected: Option<u64>,
    ) -> Result<ConsentVersion, ApiError> {
        let rt = medledger_fhir::validate_resource(&value).map_err(|e| ApiError::from_fhir(&e))?;
        if rt != "Consent" {
            return Err(ApiError::bad_request("the body is not a Consent"));
        }
        let parsed = parse_consent(id, &value).map_err(|e| ApiError::unprocessable(e.0))?;
        let interaction = if expected.is_some() {
            Interaction::Update
        } else {
            Interaction::Create
        };
        self.may_write(caller, &parsed.patient, interaction).await?;
        if expected.is_some() {
            let stored = self.store.consent(id).await.map_err(store_error)?;
            if stored.as_ref().is_some_and(|s| s.patient != parsed.patient) {
                return Err(ApiError::unprocessable(
                    "a Consent cannot move to another patient",
                ));
            }
        }
        let version = expected.map_or(1, |v| v + 1);
        let (last_updated, now_ms) = medledger_fhir::now_instant();
        value["id"] = json!(id);
        value["meta"] = json!({"versionId": version.to_string(), "lastUpdated": last_updated});
        let body = medledger_fhir::canonical_json(&value);
        let me = caller
            .claims
            .fhir_user
            .clone()
            .unwrap_or_else(|| caller.claims.sub.clone());
        self.store
            .put_consent(
                &ConsentRow {
                    id: id.to_owned(),
                    version,
                    patient: parsed.patient,
                    status: value["status"].as_str().unwrap_or_default().to_owned(),
                    resource: body.clone(),
                    actor: me,
                    recorded_at_ms: now_ms,
                },
                expected,
            )
            .await
            .map_err(store_error)?;
        Ok(ConsentVersion {
            id: id.to_owned(),
            version,
            body,
            last_updated,
            created: expected.is_none(),
        })
    }

    /// `POST /fhir/Consent`.
    pub async fn create(&self, caller: &Caller, value: Value) -> Result<ConsentVersion, ApiError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.put(caller, &id, value, None).await
    }

    /// `PUT /fhir/Consent/{id}`: a new version (creating it when unknown).
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        value: Value,
        if_match: Option<u64>,
    ) -> Result<ConsentVersion, ApiError> {
        if value["id"].as_str() != Some(id) {
            return Err(ApiError::bad_request(
                "the resource id does not match the id in the URL",
            ));
        }
        let current = self
            .store
            .consent(id)
            .await
            .map_err(store_error)?
            .map(|c| c.version);
        if let Some(want) = if_match
            && current != Some(want)
        {
            return Err(ApiError::precondition_failed(
                "If-Match does not name the current version",
            ));
        }
        self.put(caller, id, value, current).await
    }

    /// `DELETE /fhir/Consent/{id}`: revocation, kept as a new version with status `inactive`
    /// (the history stays; a revoked consent applies to no decision after this commits).
    pub async fn revoke(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<ConsentVersion>, ApiError> {
        let Some(current) = self.store.consent(id).await.map_err(store_error)? else {
            return Ok(None);
        };
        let mut value: Value = serde_json::from_slice(&current.resource)
            .map_err(|_| ApiError::internal("a stored Consent does not parse"))?;
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

    /// `GET /fhir/Consent/{id}`. A consent the caller may not read answers like an unknown one.
    pub async fn read(&self, caller: &Caller, id: &str) -> Result<ConsentVersion, ApiError> {
        let unknown = || ApiError::not_found(format!("Consent/{id} is not known"));
        let row = self
            .store
            .consent(id)
            .await
            .map_err(store_error)?
            .ok_or_else(unknown)?;
        if !self.may_read(caller, &row.patient).await? {
            return Err(unknown());
        }
        version_of(row)
    }

    /// `POST /fhir/$set-role`: an admin gives `account` a role. A role other than practitioner
    /// clears verification.
    pub async fn set_role(
        &self,
        caller: &Caller,
        account: &str,
        role: &str,
    ) -> Result<(), ApiError> {
        const ROLES: [&str; 6] = [
            "patient",
            "practitioner",
            "organization",
            "auditor",
            "authority",
            "admin",
        ];
        if self.role_of(caller).await?.as_deref() != Some("admin") {
            return Err(ApiError::forbidden("only an admin assigns roles"));
        }
        if !ROLES.contains(&role) {
            return Err(ApiError::unprocessable(format!(
                "role must be one of {}",
                ROLES.join(", ")
            )));
        }
        if !valid_reference(account) {
            return Err(ApiError::unprocessable(
                "account must be a reference Type/id",
            ));
        }
        let verified = role == "practitioner"
            && self
                .store
                .account(account)
                .await
                .map_err(store_error)?
                .is_some_and(|a| a.role == "practitioner" && a.verified);
        self.store
            .put_account(&medledger_storage_api::AccountRow {
                account: account.to_owned(),
                role: role.to_owned(),
                verified,
            })
            .await
            .map_err(store_error)
    }

    /// `POST /fhir/$verify-practitioner`: an authority marks a practitioner as verified (or
    /// not). Only verified practitioners may be granted access by consent or use break-glass.
    pub async fn set_verified(
        &self,
        caller: &Caller,
        account: &str,
        verified: bool,
    ) -> Result<(), ApiError> {
        if self.role_of(caller).await?.as_deref() != Some("authority") {
            return Err(ApiError::forbidden(
                "only an authority verifies practitioners",
            ));
        }
        let Some(current) = self.store.account(account).await.map_err(store_error)? else {
            return Err(ApiError::unprocessable(format!(
                "{account} is not a known account"
            )));
        };
        if current.role != "practitioner" {
            return Err(ApiError::unprocessable(format!(
                "{account} is not a practitioner"
            )));
        }
        self.store
            .put_account(&medledger_storage_api::AccountRow {
                verified,
                ..current
            })
            .await
            .map_err(store_error)
    }

    /// `GET /fhir/Consent?patient=…`: the patient's current consents, as a searchset Bundle.
    pub async fn search(&self, caller: &Caller, patient: &str) -> Result<Value, ApiError> {
        let patient = if patient.contains('/') {
            patient.to_owned()
        } else {
            format!("Patient/{patient}")
        };
        let rows = if self.may_read(caller, &patient).await? {
            self.store
                .consents_of(&patient)
                .await
                .map_err(store_error)?
        } else {
            Vec::new()
        };
        let entries: Vec<Value> = rows
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.resource).ok())
            .map(|resource| json!({"fullUrl": format!("Consent/{}", resource["id"].as_str().unwrap_or_default()), "resource": resource, "search": {"mode": "match"}}))
            .collect();
        Ok(
            json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
        )
    }
}

fn iso(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn parse_time(s: &str, what: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ApiError::bad_request(format!("`{what}` must be a dateTime with a time zone")))
}

/// An access request as a FHIR `Task` (intent `proposal`): who asks, for whose records, why and
/// for how long; once approved, its output names the Consent it became.
pub fn request_as_task(r: &AccessRequestRow) -> Value {
    let status = match r.status.as_str() {
        "approved" => "accepted",
        "denied" => "rejected",
        _ => "requested",
    };
    let mut task = json!({
        "resourceType": "Task",
        "id": r.id,
        "status": status,
        "intent": "proposal",
        "code": {"coding": [{"system": "https://medledger.example/CodeSystem/task", "code": "access-request"}], "text": "access request"},
        "for": {"reference": r.patient},
        "requester": {"reference": r.requester},
        "authoredOn": iso(r.requested_at_ms / 1000),
        "reasonCode": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": r.purpose}]},
        "restriction": {"period": {"start": iso(r.start), "end": iso(r.end)}}
    });
    if let Some(c) = &r.consent {
        task["output"] = json!([{"type": {"text": "consent"}, "valueReference": {"reference": c}}]);
    }
    task
}

impl ConsentApi {
    /// `POST /fhir/Patient/{id}/$request-access`: a practitioner asks for access to a patient's
    /// records, for a purpose and a period (at most a year).
    pub async fn request_access(
        &self,
        caller: &Caller,
        patient: &str,
        purpose: &str,
        start: Option<&str>,
        end: &str,
    ) -> Result<AccessRequestRow, ApiError> {
        crate::require_scope_reach(caller, "Patient", Interaction::Read)?;
        if self.role_of(caller).await?.as_deref() != Some("practitioner") {
            return Err(ApiError::forbidden("only practitioners request access"));
        }
        if purpose.is_empty()
            || purpose.len() > 32
            || !purpose.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ApiError::bad_request(
                "`purpose` must be a PurposeOfUse code such as TREAT",
            ));
        }
        let now = (self.clock)();
        let start = start.map_or(Ok(now), |s| parse_time(s, "start"))?;
        let end = parse_time(end, "end")?;
        if end <= start.max(now) || end - start > MAX_REQUEST_SECS {
            return Err(ApiError::unprocessable(
                "the period must end in the future and last at most a year",
            ));
        }
        let row = AccessRequestRow {
            id: uuid::Uuid::new_v4().to_string(),
            requester: caller
                .claims
                .fhir_user
                .clone()
                .unwrap_or_else(|| caller.claims.sub.clone()),
            patient: format!("Patient/{patient}"),
            purpose: purpose.to_owned(),
            start,
            end,
            status: "pending".into(),
            consent: None,
            requested_at_ms: now.saturating_mul(1000),
        };
        self.requests.put_request(&row).await.map_err(store_error)?;
        Ok(row)
    }

    /// `GET /fhir/Patient/{id}/$access-requests`: the patient's requests (the patient, or an
    /// auditor); anyone else sees none.
    pub async fn access_requests(&self, caller: &Caller, patient: &str) -> Result<Value, ApiError> {
        let patient = format!("Patient/{patient}");
        let rows = if self.may_read(caller, &patient).await? {
            self.requests
                .requests_for(&patient)
                .await
                .map_err(store_error)?
        } else {
            Vec::new()
        };
        let entries: Vec<Value> = rows
            .iter()
            .map(|r| json!({"fullUrl": format!("Task/{}", r.id), "resource": request_as_task(r)}))
            .collect();
        Ok(
            json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
        )
    }

    /// `POST /fhir/Patient/{id}/$decide-access`: the patient approves (a time-boxed Consent
    /// permitting the requester, for the purpose and period asked) or denies a pending request.
    pub async fn decide_access(
        &self,
        caller: &Caller,
        patient: &str,
        request: &str,
        approve: bool,
    ) -> Result<AccessRequestRow, ApiError> {
        let patient = format!("Patient/{patient}");
        let unknown = || ApiError::not_found(format!("access request {request} is not known"));
        let row = self
            .requests
            .request(request)
            .await
            .map_err(store_error)?
            .ok_or_else(unknown)?;
        if row.patient != patient {
            return Err(unknown());
        }
        self.may_write(caller, &patient, Interaction::Update)
            .await?;
        if row.status != "pending" {
            return Err(ApiError::conflict(format!(
                "access request {request} was already {}",
                row.status
            )));
        }
        let consent = if approve {
            // One Consent per request, with an id derived from it: a second approval (a retry
            // after a crash, or a race) finds it instead of granting twice.
            let id = format!("access-{}", row.id);
            let value = json!({
                "resourceType": "Consent",
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": patient},
                "dateTime": iso((self.clock)()),
                "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
                "provision": {
                    "type": "permit",
                    "period": {"start": iso(row.start), "end": iso(row.end)},
                    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": row.requester}}],
                    "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": row.purpose}]
                }
            });
            match self.put(caller, &id, value, None).await {
                Ok(_) => {}
                Err(e) if e.status == axum::http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
            Some(format!("Consent/{id}"))
        } else {
            None
        };
        let status = if approve { "approved" } else { "denied" };
        self.requests
            .decide_request(request, status, consent.as_deref())
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    ApiError::conflict(format!("access request {request} was decided meanwhile"))
                }
                other => store_error(other),
            })?;
        Ok(AccessRequestRow {
            status: status.to_owned(),
            consent,
            ..row
        })
    }
}

/// `Type/id` with a FHIR type name and a valid id.
fn valid_reference(r: &str) -> bool {
    r.split_once('/').is_some_and(|(t, id)| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()) && medledger_fhir::valid_id(id)
    })
}
