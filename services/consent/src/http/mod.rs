//! HTTP routes of the consent service's FHIR API (mounted under `/fhir`, behind bearer auth):
//! `Consent` create, read, update, revoke (`DELETE`) and search by patient, roles, and access
//! requests. Handlers only read the request and render the answer; the domain decides and
//! audits.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{ApiError, Category, FhirBody, FhirPath, base_url, etag, fhir_json};

use crate::domain::api::{ConsentApi, ConsentVersion, request_as_task};

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

async fn vread(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath((id, vid)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    let v = api.vread(&caller, &id, &vid).await?;
    Ok(answer(&v, StatusCode::OK, None))
}

async fn verify(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath((id, vid)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    let proof = api.proof(&caller, &id, &vid).await?;
    let body = serde_json::to_value(&proof)
        .map_err(|_| ApiError::new(Category::Internal, "the proof does not serialise"))?;
    Ok(fhir_json(StatusCode::OK, &body))
}

async fn search(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bundle = api
        .search(&caller, params.get("patient").map(String::as_str))
        .await?;
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn set_role(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    api.set_role(&caller, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn verify_practitioner(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    api.set_verified(&caller, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn request_access(
    State(api): State<ConsentApi>,
    Extension(caller): Extension<Caller>,
    FhirPath(patient): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let row = api.request_access(&caller, &patient, &body).await?;
    let mut resp = fhir_json(StatusCode::CREATED, &request_as_task(&row));
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
    let row = api.decide_access(&caller, &patient, &body).await?;
    Ok(fhir_json(StatusCode::OK, &request_as_task(&row)))
}
