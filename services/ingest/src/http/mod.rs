//! HTTP routes of the ingest service (mounted under `/fhir`, behind bearer auth): the FHIR
//! create, update, delete and Bundle interactions, and how their outcomes are rendered.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{
    ApiError, Failure, FhirBody, FhirPath, base_url, etag, fhir_json, outcome_of, status_line,
    status_of,
};
use serde_json::{Value, json};

use crate::domain::bundle::{BundleKind, BundleOutcome};
use crate::domain::{Ingest, WriteOutcome};

/// The interactions this router serves, for the CapabilityStatement.
pub const INTERACTIONS: &[&str] = &["create", "update", "delete"];
/// System-level interactions this router serves.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch"];

/// Routes: `POST /`, `POST /{type}`, `PUT /{type}/{id}`, `DELETE /{type}/{id}`.
pub fn routes(ingest: Ingest) -> Router {
    Router::new()
        .route("/", post(bundle))
        .route("/{rt}", post(create).put(conditional_update))
        .route("/{rt}/{id}", put(update).delete(delete))
        .with_state(ingest)
}

fn written(o: &WriteOutcome, base: &str) -> Response {
    if o.matched {
        // A conditional create that found its record: 200 with where it is, and no body (the
        // caller may be allowed to create but not to read it).
        let location = format!("{base}/{}/{}/_history/{}", o.resource_type, o.id, o.version);
        return medledger_http::version_response(
            StatusCode::OK,
            Vec::new(),
            o.version,
            &o.last_updated,
            Some(&location),
        );
    }
    let status = if o.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // The same RFC 8785 bytes that were stored and that a read returns.
    let body = o
        .resource
        .as_ref()
        .map(medledger_fhir::canonical_json)
        .unwrap_or_default();
    let location = format!("{base}/{}/{}/_history/{}", o.resource_type, o.id, o.version);
    medledger_http::version_response(status, body, o.version, &o.last_updated, Some(&location))
}

async fn create(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath(rt): FhirPath<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let o = match headers.get("if-none-exist") {
        Some(criteria) => {
            let criteria = criteria.to_str().map_err(|_| {
                ApiError::new(
                    medledger_http::Category::Invalid,
                    "If-None-Exist is not text",
                )
            })?;
            ingest
                .create_if_none_exist(&caller, &rt, body, criteria)
                .await?
        }
        None => ingest.create(&caller, &rt, body).await?,
    };
    Ok(written(&o, &base_url(&headers)))
}

/// `PUT /{type}?criteria`: conditional update.
async fn conditional_update(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath(rt): FhirPath<String>,
    RawQuery(criteria): RawQuery,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let criteria = criteria.filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::new(
            medledger_http::Category::Invalid,
            "PUT to a type needs search criteria (conditional update)",
        )
    })?;
    let if_match = medledger_http::if_match(&headers)?;
    let o = ingest
        .conditional_update(&caller, &rt, body, &criteria, if_match)
        .await?;
    Ok(written(&o, &base_url(&headers)))
}

async fn update(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id)): FhirPath<(String, String)>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let if_match = medledger_http::if_match(&headers)?;
    let o = ingest.update(&caller, &rt, &id, body, if_match).await?;
    Ok(written(&o, &base_url(&headers)))
}

async fn delete(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id)): FhirPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let if_match = medledger_http::if_match(&headers)?;
    let o = ingest.delete(&caller, &rt, &id, if_match).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(o) = o
        && let Ok(v) = HeaderValue::from_str(&etag(o.version))
    {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn bundle(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let outcome = ingest.bundle(&caller, body).await?;
    Ok(fhir_json(StatusCode::OK, &response_bundle(&outcome)))
}

/// The `transaction-response` or `batch-response` Bundle (FHIR R4 §3.1.0.11.4).
pub fn response_bundle(outcome: &BundleOutcome) -> Value {
    let response_type = match outcome.kind {
        BundleKind::Transaction => "transaction-response",
        BundleKind::Batch => "batch-response",
    };
    let entries: Vec<Value> = outcome
        .entries
        .iter()
        .map(|r| match r {
            Ok(Some(o)) if o.resource.is_some() || o.matched => json!({"response": {
                "status": status_line(if o.created { StatusCode::CREATED } else { StatusCode::OK }),
                "location": format!("{}/{}/_history/{}", o.resource_type, o.id, o.version),
                "etag": etag(o.version),
                "lastModified": o.last_updated,
            }}),
            Ok(Some(o)) => json!({"response": {
                "status": status_line(StatusCode::NO_CONTENT),
                "etag": etag(o.version),
            }}),
            Ok(None) => json!({"response": {"status": status_line(StatusCode::NO_CONTENT)}}),
            Err(e) => {
                let failure = Failure::of(e);
                json!({"response": {
                    "status": status_line(status_of(failure.category).0),
                    "outcome": outcome_of(&failure),
                }})
            }
        })
        .collect();
    let (now, _) = medledger_fhir::now_instant();
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": response_type,
        "timestamp": now,
        "entry": entries,
    })
}
