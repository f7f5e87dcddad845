//! HTTP routes of the query service (mounted under `/fhir` by the caller, behind bearer auth),
//! and the CapabilityStatement.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{ApiError, Category, FhirPath, fhir_json};
use serde_json::{Value, json};

use crate::domain::audit::{AuditSearch, resource_of};
use crate::domain::{Query, VerifiedVersion};

/// The type-level interactions this router serves, for the CapabilityStatement.
pub const INTERACTIONS: &[&str] = &["read", "vread"];
/// Instance operations this router serves.
pub const OPERATIONS: &[&str] = &["verify"];

/// Routes: read, vread and `$verify`.
pub fn routes(query: Query) -> Router {
    Router::new()
        .route("/AuditEvent", get(audit_search))
        .route("/AuditEvent/{id}", get(audit_read))
        .route("/{rt}/{id}", get(read))
        .route("/{rt}/{id}/_history/{vid}", get(vread))
        .route("/{rt}/{id}/_history/{vid}/$verify", get(verify))
        .with_state(query)
}

fn version_response(v: VerifiedVersion) -> Response {
    medledger_http::version_response(
        StatusCode::OK,
        v.body.to_vec(),
        v.row.version,
        &v.row.last_updated,
        None,
    )
}

async fn audit_search(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let search = AuditSearch::parse(&params)?;
    let rows = q.audit_events(&caller, search).await?;
    let base = medledger_http::base_url(&headers);
    let entries = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "fullUrl": format!("{base}/AuditEvent/{}", r.id),
                "resource": resource_of(r)?,
                "search": {"mode": "match"}
            }))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    ))
}

async fn audit_read(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    FhirPath(id): FhirPath<String>,
) -> Result<Response, ApiError> {
    let row = q.audit_event(&caller, &id).await?;
    Ok(fhir_json(StatusCode::OK, &resource_of(&row)?))
}

fn parse_vid(vid: &str) -> Result<u64, ApiError> {
    vid.parse()
        .map_err(|_| ApiError::new(Category::NotFound, format!("'{vid}' is not a version id")))
}

async fn read(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(version_response(
        q.read(&caller, "read", &rt, &id, None).await?,
    ))
}

async fn vread(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id, vid)): FhirPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    Ok(version_response(
        q.read(&caller, "vread", &rt, &id, Some(parse_vid(&vid)?))
            .await?,
    ))
}

async fn verify(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    FhirPath((rt, id, vid)): FhirPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let bundle = q.proof(&caller, &rt, &id, parse_vid(&vid)?).await?;
    let body = serde_json::to_value(&bundle)
        .map_err(|e| ApiError::new(Category::Internal, e.to_string()))?;
    let mut resp = fhir_json(StatusCode::OK, &body);
    // A proof bundle is plain JSON, not a FHIR resource.
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The CapabilityStatement of a deployment serving `type_interactions` on every accepted type,
/// `system_interactions` at the base and `operations` on instances.
pub fn capability_statement(
    type_interactions: &[&str],
    system_interactions: &[&str],
    operations: &[&str],
) -> Value {
    let resources: Vec<Value> = medledger_fhir::all_accepted_types()
        .into_iter()
        .map(|t| {
            if t == "AuditEvent" {
                // The audit trail: written by MedLedger itself, read and searched by patients
                // (their own) and auditors.
                return json!({
                    "type": t,
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [
                        {"name": "patient", "type": "reference"},
                        {"name": "agent", "type": "reference"},
                        {"name": "_count", "type": "number"}
                    ],
                });
            }
            if t == "Consent" {
                // Patients' consents, kept by the consent service (ingest refuses them as
                // records); each version's `$verify` is its proof in ConsentRegistry.
                let interactions: Vec<Value> =
                    ["create", "read", "vread", "update", "delete", "search-type"]
                        .iter()
                        .map(|i| json!({"code": i}))
                        .collect();
                return json!({
                    "type": t,
                    "interaction": interactions,
                    "versioning": "versioned",
                    "readHistory": true,
                    "updateCreate": true,
                    "searchParam": [{"name": "patient", "type": "reference"}],
                    "operation": [{
                        "name": "verify",
                        "definition": "https://medledger.example/OperationDefinition/verify"
                    }],
                });
            }
            json!({
                "type": t,
                "interaction": type_interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": type_interactions.contains(&"vread"),
                "updateCreate": type_interactions.contains(&"update"),
                "conditionalCreate": false,
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
                "operation": operations.iter().map(|o| json!({
                    "name": o,
                    "definition": format!("https://medledger.example/OperationDefinition/{o}")
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-21",
        "kind": "instance",
        "software": {"name": "MedLedger", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "MedLedger FHIR R4 endpoint: encrypted, content-addressed, ledger-verified records"},
        "fhirVersion": medledger_fhir::FHIR_VERSION,
        "format": ["application/fhir+json", "application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "description": "Every interaction except metadata requires Authorization: Bearer <JWT> (ES256 or RS256)."
            },
            "resource": resources,
            "interaction": system_interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
        }]
    })
}
