//! HTTP routes of the query service (mounted under `/fhir` by the caller, behind bearer auth),
//! and the CapabilityStatement.

use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use medledger_auth::Caller;
use medledger_http::{ApiError, Category, FhirPath, fhir_json};
use serde_json::{Value, json};

use crate::domain::audit::{AuditSearch, resource_of};
use crate::domain::{HistoryOf, Page, Query, SearchRequest, VerifiedVersion};

/// The type-level interactions this router serves, for the CapabilityStatement.
pub const INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "search-type",
    "history-instance",
    "history-type",
];
/// The system-level interactions this router serves.
pub const SYSTEM_INTERACTIONS: &[&str] = &["history-system"];
/// Instance operations this router serves.
pub const OPERATIONS: &[&str] = &["verify"];
/// Type operations on Patient.
pub const PATIENT_OPERATIONS: &[&str] = &["everything"];

/// Routes: read, vread and `$verify`.
pub fn routes(query: Query) -> Router {
    Router::new()
        .route("/AuditEvent", get(audit_search))
        .route("/AuditEvent/{id}", get(audit_read))
        .route("/_history", get(system_history))
        .route("/{rt}/_history", get(type_history))
        .route("/{rt}/{id}/_history", get(instance_history))
        .route("/{rt}", get(search_get))
        .route("/{rt}/_search", axum::routing::post(search_post))
        .route("/Patient/{id}/{rt}", get(compartment_search))
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

/// The query string's parameters, in order.
fn pairs_of(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `Prefer: handling=lenient`: unknown parameters are ignored (and named) instead of refused.
fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=lenient"))
}

async fn search_get(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirPath(rt): FhirPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    run_search(&q, &caller, &headers, rt, None, pairs_of(raw.as_deref())).await
}

async fn compartment_search(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirPath((id, rt)): FhirPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    // `/Patient/{id}/$everything` and `/Patient/{id}/_history` are this route's shape too.
    if rt == "$everything" {
        let pairs = pairs_of(raw.as_deref());
        let page = q.everything(&caller, &id, &pairs).await?;
        let base = medledger_http::base_url(&headers);
        let path = format!("{base}/Patient/{id}/$everything");
        return Ok(fhir_json(
            StatusCode::OK,
            &searchset(&base, &path, &pairs, page),
        ));
    }
    if rt == "_history" {
        let of = HistoryOf::Instance("Patient".into(), id);
        return run_history(&q, &caller, &headers, of, raw.as_deref()).await;
    }
    run_search(
        &q,
        &caller,
        &headers,
        rt,
        Some(id),
        pairs_of(raw.as_deref()),
    )
    .await
}

async fn system_history(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    run_history(&q, &caller, &headers, HistoryOf::System, raw.as_deref()).await
}

async fn type_history(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirPath(rt): FhirPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    run_history(&q, &caller, &headers, HistoryOf::Type(rt), raw.as_deref()).await
}

async fn instance_history(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirPath((rt, id)): FhirPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    run_history(
        &q,
        &caller,
        &headers,
        HistoryOf::Instance(rt, id),
        raw.as_deref(),
    )
    .await
}

async fn run_history(
    q: &Query,
    caller: &Caller,
    headers: &HeaderMap,
    of: HistoryOf,
    raw: Option<&str>,
) -> Result<Response, ApiError> {
    let pairs = pairs_of(raw);
    let page = q.history(caller, of.clone(), &pairs).await?;
    let base = medledger_http::base_url(headers);
    let path = match &of {
        HistoryOf::System => format!("{base}/_history"),
        HistoryOf::Type(rt) => format!("{base}/{rt}/_history"),
        HistoryOf::Instance(rt, id) => format!("{base}/{rt}/{id}/_history"),
    };
    let mut links = vec![json!({"relation": "self", "url": with_page(&path, &pairs, None)})];
    if let Some(n) = &page.next {
        links.push(json!({"relation": "next", "url": with_page(&path, &pairs, Some(n))}));
    }
    let entries: Vec<Value> = page
        .entries
        .into_iter()
        .map(|e| {
            let key = e.row.key();
            let (method, url, status) = if e.row.deleted {
                ("DELETE", key.clone(), "204 No Content")
            } else if e.created {
                ("POST", e.row.resource_type.clone(), "201 Created")
            } else {
                ("PUT", key.clone(), "200 OK")
            };
            let mut entry = json!({
                "fullUrl": format!("{base}/{key}"),
                "request": {"method": method, "url": url},
                "response": {
                    "status": status,
                    "etag": medledger_fhir::etag(e.row.version),
                    "lastModified": e.row.last_updated,
                },
            });
            if let Some(r) = e.resource {
                entry["resource"] = r;
            }
            entry
        })
        .collect();
    Ok(fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "history", "link": links, "entry": entries}),
    ))
}

/// `path?pairs` with `_page` replaced by `cursor` (kept as it was when `None`).
fn with_page(path: &str, pairs: &[(String, String)], cursor: Option<&str>) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs
        .iter()
        .filter(|(k, _)| k != "_page" || cursor.is_none())
    {
        ser.append_pair(k, v);
    }
    if let Some(c) = cursor {
        ser.append_pair("_page", c);
    }
    let query = ser.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// `POST /{type}/_search`: the parameters in an `application/x-www-form-urlencoded` body
/// (after any in the URL), so that PHI in search values stays out of URLs and their logs.
async fn search_post(
    State(q): State<Query>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    FhirPath(rt): FhirPath<String>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form && !body.is_empty() {
        return Err(ApiError::new(
            Category::UnsupportedMedia,
            "_search takes its parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut pairs = pairs_of(raw.as_deref());
    pairs.extend(form_urlencoded::parse(&body).into_owned());
    run_search(&q, &caller, &headers, rt, None, pairs).await
}

async fn run_search(
    q: &Query,
    caller: &Caller,
    headers: &HeaderMap,
    rt: String,
    compartment: Option<String>,
    pairs: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let req = SearchRequest {
        resource_type: rt.clone(),
        compartment: compartment.clone(),
        pairs: pairs.clone(),
        lenient: lenient(headers),
    };
    let page = q.search(caller, req).await?;
    let base = medledger_http::base_url(headers);
    let path = match &compartment {
        Some(id) => format!("{base}/Patient/{id}/{rt}"),
        None => format!("{base}/{rt}"),
    };
    Ok(fhir_json(
        StatusCode::OK,
        &searchset(&base, &path, &pairs, page),
    ))
}

/// The searchset Bundle of a page, with `self`, `next` and `previous` links (GET URLs, whatever
/// the request's method).
fn searchset(base: &str, path: &str, pairs: &[(String, String)], page: Page) -> Value {
    let link = |relation: &str, cursor: Option<&str>| json!({"relation": relation, "url": with_page(path, pairs, cursor)});
    let mut links = vec![link("self", None)];
    if let Some(n) = &page.next {
        links.push(link("next", Some(n)));
    }
    if let Some(p) = &page.previous {
        links.push(link("previous", Some(p)));
    }
    let entry_of = |r: Value, mode: &str| {
        let url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        json!({"fullUrl": url, "resource": r, "search": {"mode": mode}})
    };
    let mut entries: Vec<Value> = Vec::new();
    if !page.ignored.is_empty() {
        entries.push(json!({
            "resource": medledger_fhir::operation_outcome(
                medledger_fhir::IssueCode::NotSupported,
                &format!("ignored under handling=lenient: {}", page.ignored.join(", ")),
            ),
            "search": {"mode": "outcome"}
        }));
    }
    if !page.summary_count {
        entries.extend(page.matches.into_iter().map(|r| entry_of(r, "match")));
        entries.extend(page.included.into_iter().map(|r| entry_of(r, "include")));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    if let Some(t) = page.total {
        bundle["total"] = json!(t);
    }
    if page.subsetted {
        bundle["meta"] = json!({"tag": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "SUBSETTED"
        }]});
    }
    bundle
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

/// The search parameters served on `resource_type`: `_id` and `_lastUpdated` on every type,
/// then the type's own, exactly as the request parser accepts them.
fn search_params(resource_type: &str) -> Vec<Value> {
    let common = [("_id", "token"), ("_lastUpdated", "date")];
    common
        .iter()
        .map(|(n, k)| json!({"name": n, "type": k}))
        .chain(
            medledger_search::params_of(resource_type)
                .iter()
                .map(|p| json!({"name": p.name, "type": p.kind.code()})),
        )
        .collect()
}

/// The CapabilityStatement of a deployment serving `type_interactions` on every accepted type,
/// `system_interactions` at the base and `operations` on instances, secured as `security` says
/// (`medledger_auth::capability_security`).
pub fn capability_statement(
    type_interactions: &[&str],
    system_interactions: &[&str],
    operations: &[&str],

    security: Value,
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
                "searchParam": search_params(t),
                "searchInclude": medledger_search::params::includes_of(t).collect::<Vec<_>>(),
                "searchRevInclude": medledger_search::params::revincludes_of(t),
                "versioning": "versioned-update",
                "readHistory": type_interactions.contains(&"vread"),
                "updateCreate": type_interactions.contains(&"update"),
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "not-supported",
                "operation": operations.iter().map(|o| json!({
                    "name": o,
                    "definition": format!("https://medledger.example/OperationDefinition/{o}")
                })).chain((t == "Patient").then(|| json!({
                    "name": PATIENT_OPERATIONS[0],
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                }))).collect::<Vec<_>>(),
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
            "security": security,
            "resource": resources,
            "interaction": system_interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
        }]
    })
}
