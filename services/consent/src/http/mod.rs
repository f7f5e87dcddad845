//! HTTP routes of the consent service's FHIR API (mounted under `/fhir` by the caller, behind
//! bearer auth): `Consent` create, read, update, revoke (`DELETE`) and search by patient.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use medledger_audit::{Action, Entry, Outcome};
use medledger_auth::Caller;
use medledger_http::{ApiError, FhirBody, FhirPath, base_url, etag, fhir_json};

use crate::domain::api::{ConsentApi, ConsentVersion};

/// Routes: `POST /Consent`, `GET /Consent?patient=`, `GET|PUT|DELETE /Consent/{id}`, vread
/// `GET /Consent/{id}/_history/{vid}` and its chain proof `…/$verify`; the system
/// operations `POST /$set-role` (admin) and `POST /$verify-practitioner` (authority); and access
/// requests on a patient: `POST $request-access` (practitioner), `GET $access-requests` and
/// `POST $decide-access` (the patient).
pub fn routes(api: ConsentApi) -> Router {
    Router::new()
        .route("/Consent", post(create).get(search))
        .route("/Consent/{id}", get(read).put(update).delete(revoke))
        .route("/Consent/{id}/_history/{vid}", get(vread))
        .route("/Consent/{id}/_history/{vid}/$verify", get(verify))
        .route("/$set-role", post(set_role))
        .route("/$verify-practitioner", post(verify_practitioner))
        .route("/Patient/{id}/$request-access", post(request_access))
        .route("/Patient/{id}/$access-requests", get(access_requests))
        .route("/Patient/{id}/$decide-access", post(decide_access))
        .with_state(api)
}

/// What one request was, for its AuditEvent.
struct Audited<'a> {
    interaction: &'a str,
    action: Action,
    patient: Option<String>,
    target: String,
}

/// Records the AuditEvent of a request with its outcome, before the response goes out (503
/// instead if it cannot be stored).
async fn audited(
    api: &ConsentApi,
    caller: &Caller,
    what: Audited<'_>,
    result: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let mut entry = Entry::by(caller, "consent", what.interaction, what.action)
        .about(what.patient.as_deref())
        .touching(what.target);
    match &result {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => entry = entry.ended(Outcome::of_status(r.status().as_u16()), None),
        Err(e) => {
            entry = entry.ended(
                Outcome::of_status(e.status.as_u16()),
                Some(e.message.clone()),
            );
        }
    }
    if let Err(e) = api.auditor().record(&[entry]).await {
        tracing::warn!(error = %e, "could not record the audit event of a consent request");
        return Err(ApiError::unavailable("the audit trail is unavailable", 1));
    }
    result
}

fn patient_ref(id: &str) -> Option<String> {
    Some(format!("Patient/{id}"))
}

fn body_patient(body: &serde_json::Value) -> Option<String> {
    body["patient"]["reference"].as_str().map(str::to_owned)
}

fn string_param<'a>(body: &'a serde_json::Value, name: &str, kinds: &[&str]) -> Option<&'a str> {
    let p = parameter(body, name)?;
    kinds.iter().find_map(|k| p[*k].as_str())
}

async fn request_access_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    parameters(&body)?;
    let purpose = string_param(&body, "purpose", &["valueCode"])
        .ok_or_else(|| ApiError::bad_request("parameter `purpose` (valueCode) is required"))?;
    let start = string_param(&body, "start", &["valueDateTime", "valueInstant"]);
    let end = string_param(&body, "end", &["valueDateTime", "valueInstant"])
        .ok_or_else(|| ApiError::bad_request("parameter `end` (valueDateTime) is required"))?;
    let row = api
        .request_access(&caller, &patient, purpose, start, end)
        .await?;
    let mut resp = fhir_json(
        StatusCode::CREATED,
        &crate::domain::api::request_as_task(&row),
    );
    if let Ok(loc) = HeaderValue::from_str(&format!(
        "{}/Patient/{patient}/$access-requests",
        base_url(&headers)
    )) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn access_requests_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
) -> Result<Response, ApiError> {
    let bundle = api.access_requests(&caller, &patient).await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn decide_access_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    parameters(&body)?;
    let request = string_param(&body, "request", &["valueString", "valueId"])
        .ok_or_else(|| ApiError::bad_request("parameter `request` (valueString) is required"))?;
    let approve = match string_param(&body, "decision", &["valueCode"]) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Err(ApiError::bad_request(
                "parameter `decision` must be approve or deny",
            ));
        }
    };
    let row = api
        .decide_access(&caller, &patient, request, approve)
        .await?;
    Ok(fhir_json(
        StatusCode::OK,
        &crate::domain::api::request_as_task(&row),
    ))
}

/// A `Parameters` resource's `valueString`/`valueBoolean`/`valueReference` by name.
fn parameter<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    body["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn parameters(body: &serde_json::Value) -> Result<(), ApiError> {
    if body["resourceType"] == "Parameters" {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "the body must be a Parameters resource",
        ))
    }
}

async fn set_role_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    parameters(&body)?;
    let account = parameter(&body, "account")
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .ok_or_else(|| ApiError::bad_request("parameter `account` (valueReference) is required"))?;
    let role = parameter(&body, "role")
        .and_then(|p| p["valueCode"].as_str())
        .ok_or_else(|| ApiError::bad_request("parameter `role` (valueCode) is required"))?;
    api.set_role(&caller, account, role).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn verify_practitioner_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    parameters(&body)?;
    let account = parameter(&body, "practitioner")
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .ok_or_else(|| {
            ApiError::bad_request("parameter `practitioner` (valueReference) is required")
        })?;
    let verified = parameter(&body, "verified")
        .map_or(Some(true), |p| p["valueBoolean"].as_bool())
        .ok_or_else(|| ApiError::bad_request("parameter `verified` must be a valueBoolean"))?;
    api.set_verified(&caller, account, verified).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn answer(v: &ConsentVersion, status: StatusCode, base: Option<&str>) -> Response {
    let location = base.map(|b| format!("{b}/Consent/{}/_history/{}", v.id, v.version));
    medledger_http::version_response(
        status,
        v.body.clone(),
        v.version,
        &v.last_updated,
        location.as_deref(),
    )
}

async fn create_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let v = api.create(&caller, body).await?;
    Ok(answer(&v, StatusCode::CREATED, Some(&base_url(&headers))))
}

async fn update_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let if_match = medledger_http::if_match(&headers)?;
    let v = api.update(&caller, &id, body, if_match).await?;
    let status = if v.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(&v, status, Some(&base_url(&headers))))
}

async fn revoke_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let v = api.revoke(&caller, &id).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = v
        && let Ok(e) = HeaderValue::from_str(&etag(v.version))
    {
        resp.headers_mut().insert(header::ETAG, e);
    }
    Ok(resp)
}

async fn read_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let v = api.read(&caller, &id).await?;
    Ok(answer(&v, StatusCode::OK, None))
}

async fn search_inner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let patient = params.get("patient").ok_or_else(|| {
        ApiError::bad_request("search Consent by patient (?patient=Patient/{id})")
    })?;
    let bundle = api.search(&caller, patient).await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn request_access(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "operation",
        action: Action::Execute,
        patient: patient_ref(&patient),
        target: format!("Patient/{patient}/$request-access"),
    };
    let result = request_access_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirPath(patient),
        headers,
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn access_requests(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "operation",
        action: Action::Read,
        patient: patient_ref(&patient),
        target: format!("Patient/{patient}/$access-requests"),
    };
    let result = access_requests_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirPath(patient),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn decide_access(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "operation",
        action: Action::Execute,
        patient: patient_ref(&patient),
        target: format!("Patient/{patient}/$decide-access"),
    };
    let result = decide_access_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirPath(patient),
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn set_role(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let account = parameter(&body, "account")
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .map(str::to_owned);
    let what = Audited {
        interaction: "operation",
        action: Action::Execute,
        patient: account.clone().filter(|a| a.starts_with("Patient/")),
        target: account.unwrap_or_else(|| "$set-role".into()),
    };
    let result = set_role_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn verify_practitioner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let account = parameter(&body, "practitioner")
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .map(str::to_owned);
    let what = Audited {
        interaction: "operation",
        action: Action::Execute,
        patient: None,
        target: account.unwrap_or_else(|| "$verify-practitioner".into()),
    };
    let result = verify_practitioner_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn create(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "create",
        action: Action::Create,
        patient: body_patient(&body),
        target: "Consent".into(),
    };
    let result = create_inner(
        State(api.clone()),
        Extension(caller.clone()),
        headers,
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn update(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "update",
        action: Action::Update,
        patient: body_patient(&body),
        target: format!("Consent/{id}"),
    };
    let result = update_inner(
        State(api.clone()),
        Extension(caller.clone()),
        FhirPath(id),
        headers,
        FhirBody(body),
    )
    .await;
    audited(&api, &caller, what, result).await
}

async fn revoke(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "delete",
        action: Action::Delete,
        patient: api.patient_of(&id).await,
        target: format!("Consent/{id}"),
    };
    let result = revoke_inner(State(api.clone()), Extension(caller.clone()), FhirPath(id)).await;
    audited(&api, &caller, what, result).await
}

/// A version id from the path (FHIR version ids here are positive integers).
fn version_param(vid: &str) -> Result<u64, ApiError> {
    vid.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::not_found(format!("version {vid} is not known")))
}

async fn vread(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath((id, vid)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "vread",
        action: Action::Read,
        patient: api.patient_of(&id).await,
        target: format!("Consent/{id}/_history/{vid}"),
    };
    let result = async {
        let v = api.vread(&caller, &id, version_param(&vid)?).await?;
        Ok(answer(&v, StatusCode::OK, None))
    }
    .await;
    audited(&api, &caller, what, result).await
}

async fn verify(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath((id, vid)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "operation",
        action: Action::Read,
        patient: api.patient_of(&id).await,
        target: format!("Consent/{id}/_history/{vid}/$verify"),
    };
    let result = async {
        let proof = api.proof(&caller, &id, version_param(&vid)?).await?;
        let body = serde_json::to_value(&proof)
            .map_err(|_| ApiError::internal("the proof does not serialise"))?;
        Ok(fhir_json(StatusCode::OK, &body))
    }
    .await;
    audited(&api, &caller, what, result).await
}

async fn read(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let what = Audited {
        interaction: "read",
        action: Action::Read,
        patient: api.patient_of(&id).await,
        target: format!("Consent/{id}"),
    };
    let result = read_inner(State(api.clone()), Extension(caller.clone()), FhirPath(id)).await;
    audited(&api, &caller, what, result).await
}

async fn search(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let patient = params.get("patient").map(|p| {
        if p.starts_with("Patient/") {
            p.clone()
        } else {
            format!("Patient/{p}")
        }
    });
    let what = Audited {
        interaction: "search-type",
        action: Action::Read,
        patient,
        target: "Consent".into(),
    };
    let result = search_inner(State(api.clone()), Extension(caller.clone()), Query(params)).await;
    audited(&api, &caller, what, result).await
}
