//! HTTP routes of the consent service's FHIR API (mounted under `/fhir` by the caller, behind
//! bearer auth): `Consent` create, read, update, revoke (`DELETE`) and search by patient.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{ApiError, FhirBody, FhirPath, base_url, etag, fhir_json};

use crate::domain::api::{ConsentApi, ConsentVersion};

/// Routes: `POST /Consent`, `GET /Consent?patient=`, `GET|PUT|DELETE /Consent/{id}`; the system
/// operations `POST /$set-role` (admin) and `POST /$verify-practitioner` (authority); and access
/// requests on a patient: `POST $request-access` (practitioner), `GET $access-requests` and
/// `POST $decide-access` (the patient).
pub fn routes(api: ConsentApi) -> Router {
    Router::new()
        .route("/Consent", post(create).get(search))
        .route("/Consent/{id}", get(read).put(update).delete(revoke))
        .route("/$set-role", post(set_role))
        .route("/$verify-practitioner", post(verify_practitioner))
        .route("/Patient/{id}/$request-access", post(request_access))
        .route("/Patient/{id}/$access-requests", get(access_requests))
        .route("/Patient/{id}/$decide-access", post(decide_access))
        .with_state(api)
}

fn string_param<'a>(body: &'a serde_json::Value, name: &str, kinds: &[&str]) -> Option<&'a str> {
    let p = parameter(body, name)?;
    kinds.iter().find_map(|k| p[*k].as_str())
}

async fn request_access(
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

async fn access_requests(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
) -> Result<Response, ApiError> {
    let bundle = api.access_requests(&caller, &patient).await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn decide_access(
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

async fn set_role(
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

async fn verify_practitioner(
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

async fn create(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let v = api.create(&caller, body).await?;
    Ok(answer(&v, StatusCode::CREATED, Some(&base_url(&headers))))
}

async fn update(
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

async fn revoke(
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

async fn read(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let v = api.read(&caller, &id).await?;
    Ok(answer(&v, StatusCode::OK, None))
}

async fn search(
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
