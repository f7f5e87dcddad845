//! HTTP routes of the ingest service (mounted under `/fhir` by the caller, behind bearer auth).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{ApiError, FhirBody, FhirPath, base_url, etag, fhir_json};

use medledger_audit::Action;

use crate::domain::write::owner_label;
use crate::domain::{Ingest, WriteOutcome};

/// The interactions this router serves, for the CapabilityStatement.
pub const INTERACTIONS: &[&str] = &["create", "update", "delete"];
/// System-level interactions this router serves.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch"];

/// Routes: `POST /`, `POST /{type}`, `PUT /{type}/{id}`, `DELETE /{type}/{id}`.
pub fn routes(ingest: Ingest) -> Router {
    Router::new()
        .route("/", post(bundle))
        .route("/{rt}", post(create))
        .route("/{rt}/{id}", put(update).delete(delete))
        .with_state(ingest)
}

fn written(o: &WriteOutcome, base: &str) -> Response {
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
    if headers.contains_key("if-none-exist") {
        return Err(ApiError::bad_request(
            "conditional create (If-None-Exist) is not supported yet",
        ));
    }
    // The owner named by the body, for the audit trail if the create is refused (a new
    // Patient has no owner to tell yet).
    let owner = (rt != "Patient").then(|| owner_label(&rt, "", &body));
    match ingest.create(&caller, &rt, body).await {
        Ok(o) => Ok(written(&o, &base_url(&headers))),
        Err(e) => Err(ingest
            .audit_failure(&caller, "create", Action::Create, &rt, owner, e)
            .await),
    }
}

async fn update(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id)): FhirPath<(String, String)>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let target = format!("{rt}/{id}");
    let result = match medledger_http::if_match(&headers) {
        Ok(if_match) => ingest.update(&caller, &rt, &id, body, if_match).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(o) => Ok(written(&o, &base_url(&headers))),
        Err(e) => Err(ingest
            .audit_failure(&caller, "update", Action::Update, &target, None, e)
            .await),
    }
}

async fn delete(
    State(ingest): State<Ingest>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    let o = match ingest.delete(&caller, &rt, &id).await {
        Ok(o) => o,
        Err(e) => {
            let target = format!("{rt}/{id}");
            return Err(ingest
                .audit_failure(&caller, "delete", Action::Delete, &target, None, e)
                .await);
        }
    };
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
    match ingest.bundle(&caller, body).await {
        Ok(out) => Ok(fhir_json(StatusCode::OK, &out)),
        // A refused Bundle stored nothing; its entries' accepted writes (batch) were audited
        // as they committed.
        Err(e) => Err(ingest
            .audit_failure(&caller, "transaction", Action::Execute, "Bundle", None, e)
            .await),
    }
}
