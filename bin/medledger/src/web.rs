//! HTTP pieces shared by `medledger dev` and the service processes: the FHIR application shell
//! (metadata, auth gate, timeouts, error fallbacks), health probes, and graceful shutdown.

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
        );
    router.layer(layer)
}

/// `/healthz` (the process runs) and `/readyz` (`ready` says whether it can do its work).
pub(crate) fn probes<F>(ready: F) -> Router
where
    F: Fn() -> Result<(), &'static str> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
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
