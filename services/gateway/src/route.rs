//! Which service answers a request: FHIR's own seams (RESTful API, R4 §3.1.0) mapped onto the
//! services. Pure, so the table below is tested directly.
//!
//! | request | service |
//! |---|---|
//! | anything under `/fhir/Consent`, `POST /fhir/$set-role`, `POST /fhir/$verify-practitioner`, `…/$request-access`, `…/$access-requests`, `…/$decide-access` (when a consent upstream is configured) | consent |
//! | `GET`, `HEAD` (read, vread, history, search, `metadata`, `$verify`, `$everything`) | query |
//! | `POST …/_search` (search with a form body) | query |
//! | `POST`, `PUT`, `PATCH`, `DELETE` (create, update, delete, batch, transaction) | ingest |
//! | other methods under `/fhir` | query (which answers 405) |
//! | paths outside `/fhir` | none (404 from the gateway) |

use axum::http::Method;

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Writes.
    Ingest,
    /// Reads and searches.
    Query,
    /// Consent resources, access requests.
    Consent,
}

impl Upstream {
    /// Lower-case name, reported in the `X-Medledger-Upstream` response header.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Ingest => "ingest",
            Upstream::Query => "query",
            Upstream::Consent => "consent",
        }
    }
}

/// Percent-decodes a path the way the services' routers do before matching, so that
/// `/fhir/%43onsent` is routed as `/fhir/Consent` (and cannot slip past the consent service).
fn decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The service for `method` on `path`; `None` when the path is not FHIR.
pub fn route(method: &Method, path: &str, consent_configured: bool) -> Option<Upstream> {
    let path = decoded(path);
    let rest = path.strip_prefix("/fhir")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    let first = segments.next();
    let last = rest.rsplit('/').find(|s| !s.is_empty());
    let access_operation = matches!(
        last,
        Some("$request-access" | "$access-requests" | "$decide-access")
    );
    if consent_configured
        && (access_operation
            || matches!(
                first,
                Some("Consent" | "$set-role" | "$verify-practitioner")
            ))
    {
        return Some(Upstream::Consent);
    }
    Some(match *method {
        Method::GET | Method::HEAD => Upstream::Query,
        Method::POST if last == Some("_search") => Upstream::Query,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Upstream::Ingest,
        _ => Upstream::Query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_interaction() {
        use Upstream::*;
        let cases: &[(&str, &str, bool, Option<Upstream>)] = &[
            ("GET", "/fhir/metadata", false, Some(Query)),
            ("GET", "/fhir/Patient/1", false, Some(Query)),
            ("HEAD", "/fhir/Patient/1", false, Some(Query)),
            ("GET", "/fhir/Patient/1/_history/2", false, Some(Query)),
            (
                "GET",
                "/fhir/Patient/1/_history/2/$verify",
                false,
                Some(Query),
            ),
            ("GET", "/fhir/Observation", false, Some(Query)),
            ("POST", "/fhir/Observation/_search", false, Some(Query)),
            ("POST", "/fhir/_search", false, Some(Query)),
            ("POST", "/fhir/Patient", false, Some(Ingest)),
            ("POST", "/fhir", false, Some(Ingest)),
            ("POST", "/fhir/", false, Some(Ingest)),
            ("PUT", "/fhir/Patient/1", false, Some(Ingest)),
            ("PATCH", "/fhir/Patient/1", false, Some(Ingest)),
            ("DELETE", "/fhir/Patient/1", false, Some(Ingest)),
            ("OPTIONS", "/fhir/Patient", false, Some(Query)),
            ("POST", "/fhir/Consent", false, Some(Ingest)),
            ("POST", "/fhir/Consent", true, Some(Consent)),
            ("GET", "/fhir/Consent/c-1", true, Some(Consent)),
            ("POST", "/fhir/%43onsent", true, Some(Consent)),
            ("POST", "/fhir/Observation/%5Fsearch", false, Some(Query)),
            ("GET", "/%66hir/Patient/1", false, Some(Query)),
            ("GET", "/fhir/Patient/1", true, Some(Query)),
            ("POST", "/fhir/$set-role", true, Some(Consent)),
            ("POST", "/fhir/$verify-practitioner", true, Some(Consent)),
            ("POST", "/fhir/$set-role", false, Some(Ingest)),
            (
                "POST",
                "/fhir/Patient/p1/$request-access",
                true,
                Some(Consent),
            ),
            (
                "GET",
                "/fhir/Patient/p1/$access-requests",
                true,
                Some(Consent),
            ),
            (
                "POST",
                "/fhir/Patient/p1/$decide-access",
                true,
                Some(Consent),
            ),
            ("GET", "/fhirx/Patient", false, None),
            ("GET", "/healthz", false, None),
            ("GET", "/", false, None),
        ];
        for (m, p, consent, want) in cases {
            let method = Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET);
            assert_eq!(
                route(&method, p, *consent),
                *want,
                "{m} {p} consent={consent}"
            );
        }
    }
}
