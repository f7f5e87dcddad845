//! The HTTP edge every service shares: the application shell its routes sit in ([`Shell`]:
//! bearer authentication, rate and body limits, timeouts, spans, probes), OperationOutcome
//! errors, and FHIR JSON request bodies.
//!
//! Every error a client can see is an [`ApiError`]; [`status_of`] is the one place where error
//! categories become HTTP statuses and OperationOutcome issue codes.

pub mod shell;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medledger_auth::{AuthError, Caller, TokenVerifier};
pub use medledger_error::{Categorized, Category, Failure};
pub use medledger_fhir::etag;
use medledger_fhir::{IssueCode, operation_outcome};
use serde_json::Value;
pub use shell::{
    Gauge, Gauges, HttpConfig, Readiness, Ready, Shell, no_gauges, probes, with_request_spans,
};

/// Media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// A failure as the HTTP edge answers it: an OperationOutcome with the status its category
/// maps to ([`status_of`]). Any categorized error converts into one, so handlers use `?` on
/// domain results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub Failure);

impl<E: Categorized> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(Failure::of(&e))
    }
}

impl ApiError {
    /// A failure of `category` saying `message` (client-safe: never PHI or secrets).
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        Self(Failure::new(category, message))
    }

    /// Its category.
    pub fn category(&self) -> Category {
        self.0.category
    }

    /// Its diagnostics.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        status_of(self.0.category).0
    }

    /// The OperationOutcome body.
    pub fn outcome(&self) -> Value {
        outcome_of(&self.0)
    }
}

/// The one mapping from an error category to HTTP: the status, and the OperationOutcome issue
/// code (FHIR R4 §3.1.0.4 and the RESTful API's error table).
pub fn status_of(category: Category) -> (StatusCode, IssueCode) {
    match category {
        Category::NotFound => (StatusCode::NOT_FOUND, IssueCode::NotFound),
        Category::Gone => (StatusCode::GONE, IssueCode::Deleted),
        Category::Malformed => (StatusCode::BAD_REQUEST, IssueCode::Structure),
        Category::Invalid => (StatusCode::BAD_REQUEST, IssueCode::Invalid),
        Category::NotSupported => (StatusCode::BAD_REQUEST, IssueCode::NotSupported),
        Category::NotAllowed => (StatusCode::METHOD_NOT_ALLOWED, IssueCode::NotSupported),
        Category::UnsupportedMedia => (StatusCode::UNSUPPORTED_MEDIA_TYPE, IssueCode::NotSupported),
        Category::Unprocessable => (StatusCode::UNPROCESSABLE_ENTITY, IssueCode::Invalid),
        Category::Conflict => (StatusCode::CONFLICT, IssueCode::Conflict),
        Category::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, IssueCode::Conflict),
        Category::Unauthenticated => (StatusCode::UNAUTHORIZED, IssueCode::Login),
        Category::Forbidden => (StatusCode::FORBIDDEN, IssueCode::Forbidden),
        Category::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, IssueCode::TooCostly),
        Category::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, IssueCode::Throttled),
        Category::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, IssueCode::Transient),
        Category::Integrity | Category::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, IssueCode::Exception)
        }
    }
}

/// The OperationOutcome of `failure`.
pub fn outcome_of(failure: &Failure) -> Value {
    operation_outcome(status_of(failure.category).1, &failure.message)
}

/// `201 Created`: a status as a Bundle entry's `response.status` gives it.
pub fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Logged once here, inside the request span; messages never carry PHI.
            tracing::warn!(status = status.as_u16(), message = %self.0.message, "request failed");
        }
        let mut resp = fhir_json(status, &self.outcome());
        if let Some(s) = self.0.category.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read, so the connection cannot carry another request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"medledger\""),
            );
        }
        resp
    }
}

/// A FHIR JSON response.
pub fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    raw_fhir_json(status, bytes)
}

/// A FHIR JSON response from already-serialised bytes.
pub fn raw_fhir_json(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    resp
}

/// Maximum accepted request body, bytes; shared with the extractor through request extensions.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body with a FHIR JSON media type.
#[derive(Debug)]
pub struct FhirBody(pub Value);

fn is_json_media_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == FHIR_JSON || essence == "application/json" || essence == "application/json+fhir"
}

impl<S: Send + Sync> FromRequest<S> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_media_type(req.headers()) {
            return Err(ApiError::new(
                Category::UnsupportedMedia,
                "Content-Type must be application/fhir+json or application/json",
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(16 << 20, |l| l.0);
        let too_large = || {
            ApiError::new(
                Category::TooLarge,
                format!("request body exceeds {limit} bytes"),
            )
        };
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > limit
        {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                let over_limit = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if over_limit {
                    too_large()
                } else {
                    ApiError::new(Category::Invalid, "the request body could not be read")
                }
            })?;
        // Duplicate members are refused, not resolved (FHIR JSON forbids them).
        let value: Value = medledger_fhir::parse_strict(&bytes)
            .map_err(|e| ApiError::new(Category::Malformed, format!("malformed JSON: {e}")))?;
        Ok(FhirBody(value))
    }
}

/// Path parameters; a malformed path (e.g. bytes that are not UTF-8) is an OperationOutcome.
#[derive(Debug)]
pub struct FhirPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for FhirPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| FhirPath(t))
            .map_err(|_| ApiError::new(Category::Invalid, "malformed URL path"))
    }
}

/// What the bearer middleware needs: who to trust and how fast each caller may go.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Trusted token issuers.
    pub verifier: TokenVerifier,
    /// Per-subject request rate limit.
    pub limiter: Arc<RateLimiter>,
}

/// A token bucket per caller: `per_sec` requests per second on average, bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` requests per second per caller, with bursts of `burst`.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `key`; on refusal returns the seconds until one is available.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 10_000 {
            // Forget callers whose buckets have refilled; they lose nothing by it.
            let (rate, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// Header naming the purpose of use (a v3 PurposeOfUse code such as `TREAT` or `ETREAT`).
pub const PURPOSE_OF_USE: &str = "x-purpose-of-use";
/// Header stating why emergency (break-glass) access is needed.
pub const BREAK_GLASS_REASON: &str = "x-break-glass-reason";

/// A caller-stated header value: trimmed, non-empty, at most 500 bytes (longer is cut at a
/// character boundary), `None` when absent or not text.
fn stated(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    if v.is_empty() {
        return None;
    }
    let mut end = v.len().min(500);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    Some(v[..end].to_owned())
}

/// Middleware: requires a valid bearer token, applies the caller's rate limit, and stores the
/// [`Caller`] (claims and token) in the request.
pub async fn require_bearer(
    gate: axum::extract::State<Gate>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        None => Err(AuthError::Missing),
        Some(t) => gate.verifier.verify(t),
    };
    match result {
        Ok(claims) => {
            if let Err(wait) = gate.limiter.check(&claims.sub) {
                return ApiError::new(
                    Category::Throttled {
                        retry_after_secs: wait,
                    },
                    "request rate limit exceeded",
                )
                .into_response();
            }
            // `token` is Some here: verification succeeded on it.
            let mut caller = Caller::new(claims, token.unwrap_or_default());
            caller.purpose = stated(req.headers(), PURPOSE_OF_USE);
            caller.break_glass_reason = stated(req.headers(), BREAK_GLASS_REASON);
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => ApiError::new(Category::Unauthenticated, e.to_string()).into_response(),
    }
}

/// Converts a FHIR instant (`2026-01-02T03:04:05.678Z`) to an HTTP-date for `Last-Modified`.
pub fn http_date(instant: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(instant, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).ok()
}

/// A version's FHIR response: the stored bytes with `ETag`, `Last-Modified` and, given the
/// version's URL (`…/{type}/{id}/_history/{vid}`), `Location` and `Content-Location`.
pub fn version_response(
    status: StatusCode,
    body: Vec<u8>,
    version: u64,
    last_updated: &str,
    location: Option<&str>,
) -> Response {
    let mut resp = raw_fhir_json(status, body);
    let h = resp.headers_mut();
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, v.clone());
        h.insert(header::CONTENT_LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = http_date(last_updated).and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// Base URL for `Location` headers: the client's `Host`, so they resolve from where it called.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

/// The request's `If-Match` version, if any; 400 when the header is malformed.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(medledger_fhir::etag_version)
                .ok_or_else(|| ApiError::new(Category::Invalid, "malformed If-Match"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date("2026-11-21T20:16:34.123Z").as_deref(),
            Some("Sat, 21 Nov 2026 20:16:34 GMT")
        );
    }

    #[test]
    fn rate_limiter_allows_bursts_then_refuses_per_caller() {
        let l = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert_eq!(l.check("a"), Ok(()));
        }
        assert_eq!(l.check("a"), Err(1));
        assert_eq!(l.check("b"), Ok(()), "callers are limited separately");
    }

    #[test]
    fn errors_are_operation_outcomes() {
        let e = ApiError::new(
            Category::Unavailable {
                retry_after_secs: 2,
            },
            "not committed yet",
        );
        let r = e.clone().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(e.outcome()["resourceType"], "OperationOutcome");
        assert_eq!(e.outcome()["issue"][0]["code"], "transient");
    }
}
