//! The application shell every service's routes sit in, written once: FHIR under `/fhir` behind
//! bearer authentication and the per-caller rate limit, `/fhir/metadata` open, the body limit,
//! a request timeout, OperationOutcomes for unknown URLs and methods, one span per request and
//! the request counter; and at the root `/healthz`, `/readyz` and `/metrics`.
//!
//! A service's `app(state, shell)` is `shell.app(routes)`; `medledger dev` puts the routes of
//! every service into one shell; tests drive the result with `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use medledger_error::Category;
pub use medledger_telemetry::metrics::{Gauge, Gauges};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ApiError, BodyLimit, Gate, RateLimiter, fhir_json};

/// Longest time one request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The FHIR listener and its limits (the `http` section of a service's configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to serve FHIR on.
    pub listen: SocketAddr,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Requests per second each caller (token subject) may make on average.
    pub rate_limit: u32,
    /// Burst above the average rate.
    pub rate_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 16 << 20,
            rate_limit: 1000,
            rate_burst: 2000,
        }
    }
}

impl HttpConfig {
    /// The gate admitting callers whose tokens `verifier` accepts, at this rate.
    pub fn gate(&self, verifier: medledger_auth::TokenVerifier) -> Gate {
        Gate {
            verifier,
            limiter: Arc::new(RateLimiter::new(self.rate_limit, self.rate_burst)),
        }
    }
}

/// Whether each part of a process can do its work, for `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<Vec<Ready>>>);

/// One part's readiness; ready from the moment it is registered.
#[derive(Debug, Clone)]
pub struct Ready {
    name: &'static str,
    ready: Arc<AtomicBool>,
}

impl Ready {
    /// The part can no longer do its work.
    pub fn fail(&self) {
        self.ready.store(false, Ordering::Release);
    }
}

impl Readiness {
    /// Registers a part named `name`.
    pub fn part(&self, name: &'static str) -> Ready {
        let part = Ready {
            name,
            ready: Arc::new(AtomicBool::new(true)),
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(part.clone());
        part
    }

    /// `Ok` when every part is ready, else the names of those that are not.
    pub fn check(&self) -> Result<(), String> {
        let parts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let failed: Vec<&str> = parts
            .iter()
            .filter(|p| !p.ready.load(Ordering::Acquire))
            .map(|p| p.name)
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("{} stopped", failed.join(", ")))
        }
    }
}

/// What wraps a process's routes: who may call, how much they may send, what the server says
/// about itself, and how it reports its health.
#[derive(Clone)]
pub struct Shell {
    gate: Gate,
    max_body: usize,
    capability: Arc<Value>,
    /// The SMART App Launch discovery document, when an authorization server is named.
    smart: Option<Arc<Value>>,
    readiness: Readiness,
    gauges: Gauges,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Shell {
    /// A shell admitting through `gate`, reading bodies up to `max_body` bytes, answering
    /// `/fhir/metadata` with `capability` (the deployment's CapabilityStatement) and `/readyz`
    /// from `readiness`.
    pub fn new(gate: Gate, max_body: usize, capability: Value, readiness: Readiness) -> Self {
        Self {
            gate,
            max_body,
            capability: Arc::new(capability),
            smart: None,
            readiness,
            gauges: no_gauges(),
        }
    }

    /// Answers `/fhir/.well-known/smart-configuration` (open, like `/metadata`) with `smart`;
    /// without one it is a 404 OperationOutcome that says no authorization server is named.
    pub fn with_smart_configuration(mut self, smart: Option<Value>) -> Self {
        self.smart = smart.map(Arc::new);
        self
    }

    /// Reports `gauges` on `/metrics` as well as the request counter.
    pub fn with_gauges(mut self, gauges: Gauges) -> Self {
        self.gauges = gauges;
        self
    }

    /// The readiness `/readyz` reports.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The complete application: `routes` under `/fhir` in the shell, and the probes.
    pub fn app(&self, routes: Router) -> Router {
        self.fhir(routes).merge(self.probes())
    }

    /// `routes` under `/fhir`: behind bearer auth and the rate limit, `/metadata` open,
    /// OperationOutcomes for unknown URLs and methods, the body limit and a request timeout,
    /// with spans and counts.
    pub fn fhir(&self, routes: Router) -> Router {
        let capability = self.capability.clone();
        let smart = self.smart.clone();
        let protected = routes.layer(axum::middleware::from_fn_with_state(
            self.gate.clone(),
            crate::require_bearer,
        ));
        let fhir = Router::new()
            .route(
                "/metadata",
                get(move || async move { fhir_json(StatusCode::OK, &capability) }),
            )
            .route(
                "/.well-known/smart-configuration",
                get(move || async move {
                    match smart.as_deref() {
                        Some(doc) => Ok(axum::Json(doc.clone())),
                        None => Err(ApiError::new(
                            Category::NotFound,
                            "no SMART authorization server is configured (auth.token_endpoint)",
                        )),
                    }
                }),
            )
            .merge(protected)
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    Category::NotAllowed,
                    "this interaction is not supported on this URL",
                )
            })
            .fallback(|| async { ApiError::new(Category::NotFound, "no such FHIR endpoint") });
        let timeout = tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                ApiError::new(Category::UNAVAILABLE, "the request timed out")
            }))
            .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT));
        with_request_spans(
            Router::new()
                .nest("/fhir", fhir)
                .layer(axum::Extension(BodyLimit(self.max_body)))
                .layer(timeout),
        )
    }

    /// The probes of this shell's process ([`probes`]).
    pub fn probes(&self) -> Router {
        probes(self.readiness.clone(), self.gauges.clone())
    }
}

/// No gauges beyond the request counter.
pub fn no_gauges() -> Gauges {
    Arc::new(|| Box::pin(async { Vec::new() }))
}

/// `/healthz` (the process runs), `/readyz` (every part of it can do its work) and `/metrics`
/// (Prometheus text: requests by route and status, and `gauges`).
pub fn probes(readiness: Readiness, gauges: Gauges) -> Router {
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
                    match readiness.check() {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }),
            )
    }
}

/// One span per request, named by the route template (`/fhir/{type}/{id}`), never by the URI:
/// ids and search parameters stay out of logs and traces. Exported over OTLP when configured.
pub fn with_request_spans(router: Router) -> Router {
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
