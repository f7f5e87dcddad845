//! Practitioners' access requests on a patient: `$request-access` (the practitioner),
//! `$access-requests` and `$decide-access` (the patient). An approval becomes a time-boxed
//! Consent.

use medledger_access::{Interaction, Scopes};
use medledger_audit::{Action, Entry};
use medledger_auth::Caller;
use medledger_storage_api::{AccessRequestRow, StoreError};
use serde_json::{Value, json};

use super::{ConsentApi, parameters, patient_ref, string_param};
use crate::ConsentError;

/// Longest access a request may ask for.
const MAX_REQUEST_SECS: i64 = 366 * 86_400;

fn iso(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn parse_time(s: &str, what: &str) -> Result<i64, ConsentError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ConsentError::Invalid(format!("`{what}` must be a dateTime with a time zone")))
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
    fn audit_on(
        &self,
        caller: &Caller,
        patient_id: &str,
        operation: &str,
        action: Action,
    ) -> medledger_audit::Audit {
        self.audit.begin(
            Entry::by(caller, "consent", "operation", action)
                .about(Some(&format!("Patient/{patient_id}")))
                .touching(format!("Patient/{patient_id}/{operation}")),
        )
    }

    /// `POST /fhir/Patient/{id}/$request-access` (`purpose` valueCode, optional `start` and
    /// `end` dateTimes): a practitioner asks for access to a patient's records, for a purpose
    /// and a period (at most a year). The patient must exist.
    pub async fn request_access(
        &self,
        caller: &Caller,
        patient_id: &str,
        body: &Value,
    ) -> Result<AccessRequestRow, ConsentError> {
        let audit = self.audit_on(caller, patient_id, "$request-access", Action::Execute);
        let result = async {
            parameters(body)?;
            let purpose = string_param(body, "purpose", &["valueCode"]).ok_or_else(|| {
                ConsentError::Invalid("parameter `purpose` (valueCode) is required".into())
            })?;
            let start = string_param(body, "start", &["valueDateTime", "valueInstant"]);
            let end =
                string_param(body, "end", &["valueDateTime", "valueInstant"]).ok_or_else(|| {
                    ConsentError::Invalid("parameter `end` (valueDateTime) is required".into())
                })?;
            let patient = patient_ref(patient_id)?;
            medledger_access::require_reach(
                &Scopes::parse(&caller.claims.scope),
                "Patient",
                Interaction::Read,
            )?;
            if self.role_of(caller).await?.as_deref() != Some("practitioner") {
                return Err(ConsentError::Forbidden(
                    "only practitioners request access".into(),
                ));
            }
            if purpose.is_empty()
                || purpose.len() > 32
                || !purpose.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(ConsentError::Invalid(
                    "`purpose` must be a PurposeOfUse code such as TREAT".into(),
                ));
            }
            let now = (self.clock)();
            let start = start.map_or(Ok(now), |s| parse_time(s, "start"))?;
            let end = parse_time(end, "end")?;
            if end <= start.max(now) || end - start > MAX_REQUEST_SECS {
                return Err(ConsentError::Unprocessable(
                    "the period must end in the future and last at most a year".into(),
                ));
            }
            if let Some(records) = &self.records {
                // A request nobody can ever decide is refused rather than kept.
                let known = records
                    .head("Patient", patient_id)
                    .await?
                    .is_some_and(|h| !h.deleted);
                if !known {
                    return Err(ConsentError::NotFound(format!("{patient} is not known")));
                }
            }
            let row = AccessRequestRow {
                id: uuid::Uuid::new_v4().to_string(),
                requester: Self::me(caller).to_owned(),
                patient,
                purpose: purpose.to_owned(),
                start,
                end,
                status: "pending".into(),
                consent: None,
                requested_at_ms: now.saturating_mul(1000),
            };
            self.requests.put_request(&row).await?;
            Ok(row)
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /fhir/Patient/{id}/$access-requests`: the patient's requests (the patient, or an
    /// auditor); anyone else sees none.
    pub async fn access_requests(
        &self,
        caller: &Caller,
        patient_id: &str,
    ) -> Result<Value, ConsentError> {
        let audit = self.audit_on(caller, patient_id, "$access-requests", Action::Read);
        let result = async {
            let patient = patient_ref(patient_id)?;
            let rows = if self.may_read(caller, &patient).await? {
                self.requests.requests_for(&patient).await?
            } else {
                Vec::new()
            };
            let entries: Vec<Value> = rows
                .iter()
                .map(|r| json!({"fullUrl": format!("Task/{}", r.id), "resource": request_as_task(r)}))
                .collect();
            Ok(json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}))
        }
        .await;
        audit.finish(result).await
    }

    /// `POST /fhir/Patient/{id}/$decide-access` (`request` valueString, `decision` valueCode
    /// `approve` or `deny`): the patient approves (a time-boxed Consent permitting the
    /// requester, for the purpose and period asked) or denies a pending request.
    pub async fn decide_access(
        &self,
        caller: &Caller,
        patient_id: &str,
        body: &Value,
    ) -> Result<AccessRequestRow, ConsentError> {
        let audit = self.audit_on(caller, patient_id, "$decide-access", Action::Execute);
        let result = async {
            parameters(body)?;
            let request =
                string_param(body, "request", &["valueString", "valueId"]).ok_or_else(|| {
                    ConsentError::Invalid("parameter `request` (valueString) is required".into())
                })?;
            let approve = match string_param(body, "decision", &["valueCode"]) {
                Some("approve") => true,
                Some("deny") => false,
                _ => {
                    return Err(ConsentError::Invalid(
                        "parameter `decision` must be approve or deny".into(),
                    ));
                }
            };
            let patient = patient_ref(patient_id)?;
            self.decide(caller, &patient, request, approve).await
        }
        .await;
        audit.finish(result).await
    }

    async fn decide(
        &self,
        caller: &Caller,
        patient: &str,
        request: &str,
        approve: bool,
    ) -> Result<AccessRequestRow, ConsentError> {
        let unknown = || ConsentError::NotFound(format!("access request {request} is not known"));
        let row = self.requests.request(request).await?.ok_or_else(unknown)?;
        if row.patient != patient {
            return Err(unknown());
        }
        self.may_write(caller, patient, Interaction::Update).await?;
        if row.status != "pending" {
            return Err(ConsentError::Conflict(format!(
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
                Err(ConsentError::Store(StoreError::Conflict { .. })) => {}
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
                StoreError::Conflict { .. } => ConsentError::Conflict(format!(
                    "access request {request} was decided meanwhile"
                )),
                other => other.into(),
            })?;
        Ok(AccessRequestRow {
            status: status.to_owned(),
            consent,
            ..row
        })
    }
}
