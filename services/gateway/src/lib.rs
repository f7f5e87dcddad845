//! Gateway: one FHIR base URL for a distributed deployment, routing each request by interaction
//! (writes and transactions to ingest, reads and searches to query, `Consent` to consent).
//!
//! The gateway holds no state and no keys and does not authenticate: each service checks the
//! bearer token itself, so a request that bypasses the gateway gains nothing. It streams bodies
//! both ways, keeps the client's `Host` (so `Location` headers point at the gateway), strips
//! hop-by-hop headers, caps request bodies and bounds every upstream call with a timeout.
//! Failures of its own are FHIR `OperationOutcome`s, like the services'.

pub mod config;
pub mod route;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use medledger_http::{ApiError, Category};

pub use config::Config;
pub use route::{Upstream, route};

/// Where each kind of request goes, and the limits applied on the way.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URL of ingest (`http://ingest:8080`), without a path.
    pub ingest: Uri,
    /// Base URL of query.
    pub query: Uri,
    /// Base URL of consent's FHIR API; `None` sends `Consent` requests like any other type.
    pub consent: Option<Uri>,
    /// Largest request body passed on, bytes (larger ones get 413 here).
    pub max_body_bytes: usize,
    /// Longest wait for an upstream's response headers.
    pub timeout: Duration,
}

struct Inner {
    config: GatewayConfig,
    client: Client<HttpConnector, Body>,
}

/// The gateway's router: every path goes through [`route`].
pub fn app(config: GatewayConfig) -> Router {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.timeout));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    Router::new()
        .fallback(forward)
        .with_state(Arc::new(Inner { config, client }))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(n);
    }
    // The body is re-framed by hyper on each hop.
    headers.remove(header::TRANSFER_ENCODING);
}

fn target(base: &Uri, original: &Uri) -> Result<Uri, ApiError> {
    let path = original.path_and_query().map_or("/", |p| p.as_str());
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base
        .authority()
        .ok_or_else(|| ApiError::new(Category::Internal, "gateway upstream has no host"))?;
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|_| ApiError::new(Category::Invalid, "malformed URL path"))
}

/// Whether a failed upstream request failed because the client's body passed the limit.
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

async fn forward(State(gw): State<Arc<Inner>>, req: Request) -> Response {
    match proxy(&gw, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn proxy(gw: &Inner, req: Request) -> Result<Response, ApiError> {
    let config = &gw.config;
    let Some(upstream) = route(req.method(), req.uri().path(), config.consent.is_some()) else {
        return Ok((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let base = match (upstream, &config.consent) {
        (Upstream::Ingest, _) => &config.ingest,
        (Upstream::Query, _) => &config.query,
        (Upstream::Consent, Some(consent)) => consent,
        // `route` only answers Consent when a consent upstream is configured.
        (Upstream::Consent, None) => {
            return Err(ApiError::new(Category::Internal, "no consent upstream"));
        }
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(ApiError::new(
            Category::TooLarge,
            format!(
                "request body is larger than {} bytes",
                config.max_body_bytes
            ),
        ));
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = target(base, &parts.uri)?;
    strip_hop_by_hop(&mut parts.headers);
    // A body without a declared length is cut off at the limit; the upstream then sees an
    // incomplete request and the client an error, never a truncated write.
    let limited = http_body_util::Limited::new(body, config.max_body_bytes);
    let outbound = Request::from_parts(parts, Body::new(limited));
    let sent = tokio::time::timeout(config.timeout, gw.client.request(outbound)).await;
    let resp = match sent {
        Err(_) => {
            tracing::warn!(?upstream, "upstream did not answer in time");
            return Err(ApiError::new(
                Category::UNAVAILABLE,
                "the service behind the gateway did not answer in time",
            ));
        }
        Ok(Err(e)) if over_limit(&e) => {
            return Err(ApiError::new(
                Category::TooLarge,
                format!(
                    "request body is larger than {} bytes",
                    config.max_body_bytes
                ),
            ));
        }
        Ok(Err(e)) => {
            tracing::warn!(?upstream, error = %e, "upstream request failed");
            return Err(ApiError::new(
                Category::UNAVAILABLE,
                "the service behind the gateway is not reachable",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(
        HeaderName::from_static("x-medledger-upstream"),
        HeaderValue::from_static(upstream.name()),
    );
    Ok(Response::from_parts(
        parts,
        Body::new(body.map_err(axum::Error::new)),
    ))
}
