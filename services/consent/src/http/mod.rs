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

/// Routes: `POST /Consent`, `GET /Consent?patient=`, `GET|PUT|DELETE /Consent/{id}`, and the
/// system operations `POST /$set-role` (admin) and `POST /$verify-practitioner` (authority).
pub fn routes(api: ConsentApi) -> Router {
    Router::new()
        .route("/Consent", post(create).get(search))
        .route("/Consent/{id}", get(read).put(update).delete(revoke))
        .route("/$set-role", post(set_role))
        .route("/$verify-practitioner", post(verify_practitioner))
        .with_state(api)
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
