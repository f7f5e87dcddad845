//! FHIR HTTP plumbing shared by the services: OperationOutcome errors, bearer authentication and
//! FHIR JSON request bodies.
//!
//! Every error a client can see is built by [`ApiError`]'s `IntoResponse`, the one place where
//! error categories become HTTP statuses and OperationOutcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medledger_auth::{AuthError, Caller, TokenVerifier};
use medledger_fhir::{IssueCode, operation_outcome};
use serde_json::Value;

/// Media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// A client-visible failure.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OperationOutcome issue code.
    pub code: IssueCode,
    /// Diagnostics: safe for the client, never PHI or secrets.
    pub message: String,
    /// Seconds for `Retry-After` (503, 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, issue code and message.
    pub fn new(status: StatusCode, code: IssueCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400 invalid.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueCode::Invalid, m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueCode::NotFound, m)
    }
    /// 410.
    pub fn gone(m: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, IssueCode::Deleted, m)
    }
    /// 403.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, IssueCode::Forbidden, m)
    }
    /// 409.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, IssueCode::Conflict, m)
    }
    /// 412.
    pub fn precondition_failed(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, IssueCode::Conflict, m)
    }
    /// 422.
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, IssueCode::Invalid, m)
    }
    /// 500 for a failed integrity check: the stored data does not match what was committed.
    /// Nothing of the record is returned.
    pub fn integrity(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueCode::Exception,
            format!("integrity check failed: {}", m.into()),
        )
    }
    /// 500 for an internal failure (details are logged, not returned).
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, IssueCode::Exception, m)
    }
    /// 503 with `Retry-After`.
    pub fn unavailable(m: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, IssueCode::Transient, m)
        }
    }
    /// Maps a resource validation failure to 400 (structure, type) or 422 (content).
    pub fn from_fhir(e: &medledger_fhir::FhirError) -> Self {
        use medledger_fhir::FhirError as F;
        match e {
            F::Malformed(_) => {
                Self::new(StatusCode::BAD_REQUEST, IssueCode::Structure, e.to_string())
            }
            F::UnknownType(_) | F::UnsupportedType(_) => Self::new(
                StatusCode::BAD_REQUEST,
                IssueCode::NotSupported,
                e.to_string(),
            ),
            F::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueCode::Invalid,
                e.to_string(),
            ),
        }
    }
    /// The OperationOutcome body.
    pub fn outcome(&self) -> Value {
        operation_outcome(self.code, &self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            // Logged once here, inside the request span; messages never carry PHI.
            tracing::warn!(status = self.status.as_u16(), message = %self.message, "request failed");
        }
        let mut resp = fhir_json(self.status, &self.outcome());
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read, so the connection cannot carry another request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
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
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueCode::NotSupported,
                "Content-Type must be application/fhir+json or application/json",
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(16 << 20, |l| l.0);
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueCode::TooCostly,
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
                    ApiError::bad_request("the request body could not be read")
                }
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueCode::Structure,
                format!("malformed JSON: {e}"),
            )
        })?;
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
            .map_err(|_| ApiError::bad_request("malformed URL path"))
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
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    IssueCode::Throttled,
                    "request rate limit exceeded",
                );
                e.retry_after = Some(wait);
                return e.into_response();
            }
            // `token` is Some here: verification succeeded on it.
            let mut caller = Caller::new(claims, token.unwrap_or_default());
            caller.purpose = stated(req.headers(), PURPOSE_OF_USE);
            caller.break_glass_reason = stated(req.headers(), BREAK_GLASS_REASON);
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            ApiError::new(StatusCode::UNAUTHORIZED, IssueCode::Login, e.to_string()).into_response()
        }
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

/// `W/"n"` for a version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
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
                .and_then(parse_if_match)
                .ok_or_else(|| ApiError::bad_request("malformed If-Match"))
        })
        .transpose()
}

/// Parses an `If-Match` value (`W/"3"` or `"3"`) into a version.
pub fn parse_if_match(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse().ok()
}

impl From<medledger_storage_api::StoreError> for ApiError {
    fn from(e: medledger_storage_api::StoreError) -> Self {
        use medledger_storage_api::StoreError as S;
        match e {
            S::Conflict { .. } => ApiError::conflict(e.to_string()),
            S::Unavailable(_) => ApiError::unavailable("the record index is unavailable", 1),
            S::Corrupt(_) => ApiError::integrity(e.to_string()),
        }
    }
}

impl From<medledger_blobstore::BlobError> for ApiError {
    fn from(e: medledger_blobstore::BlobError) -> Self {
        use medledger_blobstore::BlobError as B;
        match e {
            B::Unavailable(_) => ApiError::unavailable("the blob store is unavailable", 1),
            B::NotFound(_) | B::Corrupt { .. } => ApiError::integrity(e.to_string()),
        }
    }
}

impl From<medledger_keys::KeyError> for ApiError {
    fn from(e: medledger_keys::KeyError) -> Self {
        use medledger_keys::KeyError as K;
        match e {
            K::Store(s) => s.into(),
            K::Unwrap(_) => ApiError::integrity(e.to_string()),
            K::Master(_) => ApiError::internal("key material unavailable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(parse_if_match("W/\"3\""), Some(3));
        assert_eq!(parse_if_match("\"12\""), Some(12));
        assert_eq!(parse_if_match("x"), None);
        assert_eq!(etag(4), "W/\"4\"");
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
        let e = ApiError::unavailable("not committed yet", 2);
        let r = e.clone().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(e.outcome()["resourceType"], "OperationOutcome");
        assert_eq!(e.outcome()["issue"][0]["code"], "transient");
    }
}
