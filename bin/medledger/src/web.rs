//! HTTP pieces shared by `medledger dev` and the service processes: the FHIR application shell
//! (metadata, auth gate, timeouts, error fallbacks), per-request spans and counts, health probes
//! and metrics, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use medledger_fhir::IssueCode;
use medledger_http::{ApiError, BodyLimit, Gate, fhir_json};

/// The whole deployment's CapabilityStatement: with a gateway in front, ingest and query form
/// one FHIR server, so each describes all of it.
fn capability() -> serde_json::Value {
    let mut type_interactions: Vec<&str> = medledger_query::http::INTERACTIONS.to_vec();
    type_interactions.extend_from_slice(medledger_ingest::http::INTERACTIONS);
    medledger_query::capability_statement(
        &type_interactions,
        medledger_ingest::http::SYSTEM_INTERACTIONS,
        medledger_query::http::OPERATIONS,
    )
}

/// FHIR under `/fhir`: `routes` behind bearer auth and the rate limit, `/metadata` open,
/// OperationOutcomes for unknown URLs and methods, a 60 s request timeout.
pub(crate) fn fhir_app(routes: Router, gate: Gate, max_body: usize) -> Router {
    let capability = Arc::new(capability());
    let protected = routes.layer(axum::middleware::from_fn_with_state(
        gate,
        medledger_http::require_bearer,
    ));
    let fhir = Router::new()
        .route(
            "/metadata",
            get(move || async move { fhir_json(StatusCode::OK, &capability) }),
        )
        .merge(protected)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                IssueCode::NotSupported,
                "this interaction is not supported on this URL",
            )
        })
        .fallback(|| async { ApiError::not_found("no such FHIR endpoint") });
    let timeout = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ApiError::unavailable("the request timed out", 1)
        }))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(60)));
    with_request_spans(
        Router::new()
            .nest("/fhir", fhir)
            .layer(axum::Extension(BodyLimit(max_body)))
            .layer(timeout),
    )
}

/// One span per request, named by the route template (`/fhir/{type}/{id}`), never by the URI:
/// ids and search parameters stay out of logs and traces. Exported over OTLP when configured.
pub(crate) fn with_request_spans(router: Router) -> Router {
    let layer = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or("unmatched", |p| p.as_str());
            tracing::info_span!(
                "http.request",
                http.method = %req.method(),
                http.route = %route,
                http.status = tracing::field::Empty,
            )
        })
        .on_response(
            |resp: &axum::http::Response<axum::body::Body>, _: Duration, span: &tracing::Span| {
                span.record("http.status", resp.status().as_u16());
            },
        )
        // 5xx answers are logged once, by `ApiError`, with their diagnostics.
        .on_failure(());
    router
        .layer(axum::middleware::from_fn(count_request))
        .layer(layer)
}

/// Counts each answer by route template and status for `/metrics`.
async fn count_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    medledger_telemetry::metrics::record_request(&route, resp.status().as_u16());
    resp
}

/// Gauges a process reports at scrape time (queried then, so they are never stale).
pub(crate) type Gauges = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Vec<medledger_telemetry::metrics::Gauge>>
        + Send
        + Sync,
>;

/// No gauges beyond the request counter.
pub(crate) fn no_gauges() -> Gauges {
    Arc::new(|| Box::pin(async { Vec::new() }))
}

/// The ledger's progress from its store: leaves logged, tree size committed on the private
/// chain, tree size anchored on the public chain. A store that does not answer reports nothing.
pub(crate) fn ledger_gauges(store: Arc<dyn medledger_storage_api::LedgerStore>) -> Gauges {
    use medledger_telemetry::metrics::Gauge;
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            if let Ok(head) = store.latest_tree_head().await {
                out.push(Gauge {
                    name: "medledger_ledger_committed_tree_size",
                    help: "Leaves covered by the latest tree head committed on the private chain.",
                    value: head.map_or(0.0, |h| h.tree_size as f64),
                });
            }
            if let Ok(anchor) = store.latest_anchor().await {
                out.push(Gauge {
                    name: "medledger_ledger_anchored_tree_size",
                    help: "Leaves covered by the latest checkpoint anchored on the public chain.",
                    value: anchor.map_or(0.0, |a| a.tree_size as f64),
                });
            }
            out
        })
    })
}

/// `/healthz` (the process runs), `/readyz` (`ready` says whether it can do its work) and
/// `/metrics` (Prometheus text: requests by route and status, and `gauges`).
pub(crate) fn probes<F>(ready: F, gauges: Gauges) -> Router
where
    F: Fn() -> Result<(), &'static str> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let gauges = gauges.clone();
                async move {
                    let text = medledger_telemetry::metrics::render(&gauges().await);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                match ready() {
                    Ok(()) => (StatusCode::OK, "ready"),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }),
        )
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
