//! `medledger gateway`'s configuration ([`Config`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Uri;
use serde::{Deserialize, Serialize};

use crate::GatewayConfig;

/// The gateway's configuration: the file and `MEDLEDGER_GATEWAY_…` variables; every key is
/// documented in `docs/configuration.md`, and an unknown one is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address clients reach FHIR on.
    pub listen: SocketAddr,
    /// Health probes and `/metrics`.
    pub admin_listen: SocketAddr,
    /// Base URL of ingest (writes, batch, transaction).
    pub ingest_url: String,
    /// Base URL of query (reads, searches, `$verify`, `metadata`).
    pub query_url: String,
    /// Base URL of consent's FHIR API for `Consent` resources and role administration; empty
    /// routes them like any type (ingest then refuses Consents).
    pub consent_url: String,
    /// Largest request body passed on, bytes.
    pub max_body_bytes: usize,
    /// Longest wait for an upstream's response, milliseconds.
    pub upstream_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            ingest_url: "http://ingest:8080".to_owned(),
            query_url: "http://query:8080".to_owned(),
            consent_url: "http://consent:8080".to_owned(),
            max_body_bytes: 16 << 20,
            upstream_timeout_ms: 60_000,
        }
    }
}

fn upstream(what: &str, url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("{what} is not a URL: {url:?}"))?;
    if uri.scheme_str() == Some("http") && uri.authority().is_some() {
        Ok(uri)
    } else {
        Err(format!("{what} must be http://host:port, got {url:?}"))
    }
}

impl Config {
    /// The routing this describes; refuses an upstream that is not `http://host:port`.
    pub fn routing(&self) -> Result<GatewayConfig, String> {
        Ok(GatewayConfig {
            ingest: upstream("ingest_url", &self.ingest_url)?,
            query: upstream("query_url", &self.query_url)?,
            consent: match self.consent_url.trim() {
                "" => None,
                url => Some(upstream("consent_url", url)?),
            },
            max_body_bytes: self.max_body_bytes,
            timeout: Duration::from_millis(self.upstream_timeout_ms),
        })
    }
}
