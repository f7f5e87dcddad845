//! Where an issuer's JWK Set comes from, and keeping it current.
//!
//! A [`JwksCache`] loads the set once (failing if it cannot: a service should not start unable to
//! check tokens) and then, if a refresher is spawned, reloads it every
//! [`JwksOptions::refresh_interval`]. A failed reload keeps the last good set. Verifiers read the
//! set through a [`SharedKeySet`], so they never wait on a fetch.
//!
//! URLs may be `https://` (rustls; the server is checked against the system's roots, or only
//! against [`JwksOptions::ca_bundle`] when one is given) or `http://` for a trusted network such
//! as a sidecar. [`JwksSource::Discovery`] follows OpenID Connect Discovery 1.0: the issuer's
//! `/.well-known/openid-configuration` names the `jwks_uri`, read again at every refresh so that
//! a moved key set is followed too.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{AuthError, KeySet, SharedKeySet};

/// Where a JWK Set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWK Set JSON file, e.g. a mounted secret or config map.
    File(PathBuf),
    /// An `https://` or `http://` URL serving the JWK Set, e.g. an issuer's `jwks_uri`.
    Url(String),
    /// An OpenID Connect issuer (its URL): the set is at the `jwks_uri` its discovery document
    /// names, and the document must name this very issuer (OpenID Connect Discovery §4.3).
    Discovery(String),
}

impl JwksSource {
    /// Reads a configuration value: `http://` and `https://` values are URLs, anything else a file
    /// path.
    pub fn parse(value: &str) -> Self {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Self::Url(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
            Self::Discovery(issuer) => write!(f, "{issuer} (OpenID discovery)"),
        }
    }
}

/// How a [`JwksCache`] loads and refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksOptions {
    /// Time between reloads after a successful one. Default 5 minutes.
    pub refresh_interval: Duration,
    /// Time before retrying after a failed reload (at most `refresh_interval`). Default 30 s.
    pub retry_interval: Duration,
    /// Limit on one HTTP fetch, connecting included. Default 10 s.
    pub timeout: Duration,
    /// Largest JWK Set (or discovery document) accepted, bytes: a set is a few KiB, and the limit
    /// stops a misbehaving server from filling memory. Default 1 MiB.
    pub max_bytes: usize,
    /// PEM certificates that alone are trusted for `https://` fetches (a private CA). `None`:
    /// the system's roots.
    pub ca_bundle: Option<PathBuf>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(300),
            retry_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_bytes: 1 << 20,
            ca_bundle: None,
        }
    }
}

/// An issuer's JWK Set loaded from a [`JwksSource`], which [`JwksCache::spawn_refresher`] keeps
/// current. Give [`JwksCache::keys`] to
/// [`TokenVerifier::with_shared_issuer`](crate::TokenVerifier::with_shared_issuer).
#[derive(Debug, Clone)]
pub struct JwksCache {
    source: JwksSource,
    options: JwksOptions,
    client: reqwest::Client,
    keys: SharedKeySet,
}

impl JwksCache {
    /// Loads the set from `source` once; fails if that load fails, so a misconfigured issuer
    /// stops startup instead of refusing every token later.
    pub async fn load(source: JwksSource, options: JwksOptions) -> Result<Self, AuthError> {
        if options.refresh_interval.is_zero() || options.retry_interval.is_zero() {
            return Err(AuthError::Key(
                "JWKS refresh and retry intervals must be positive".into(),
            ));
        }
        if let JwksSource::Url(url) | JwksSource::Discovery(url) = &source {
            check_url(url)?;
        }
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            // A key set is served where it is asked for: a redirect could lead a fetch elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &options.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| AuthError::Key(format!("CA bundle {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| AuthError::Key(format!("CA bundle {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(AuthError::Key(format!(
                    "CA bundle {}: no PEM certificate in it",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| AuthError::Key(format!("HTTP client: {}", error_chain(&e))))?;
        let keys = fetch(&source, &client, options.max_bytes).await?;
        tracing::info!(source = %source, keys = ?keys, "loaded issuer JWK Set");
        log_skipped(&source, &keys);
        Ok(Self {
            source,
            options,
            client,
            keys: SharedKeySet::new(keys),
        })
    }

    /// The live key set, for [`TokenVerifier::with_shared_issuer`](crate::TokenVerifier::with_shared_issuer).
    pub fn keys(&self) -> SharedKeySet {
        self.keys.clone()
    }

    /// Where the set is loaded from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// Reloads the set now. On success the new set is in force for every verifier sharing
    /// [`keys`](Self::keys); on failure the current set stays.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let keys = fetch(&self.source, &self.client, self.options.max_bytes).await?;
        tracing::debug!(source = %self.source, keys = ?keys, "refreshed issuer JWK Set");
        log_skipped(&self.source, &keys);
        self.keys.replace(keys);
        Ok(())
    }

    /// Spawns a task on the current Tokio runtime that refreshes the set every
    /// `refresh_interval` (after a failure, every `retry_interval`) until `shutdown` completes,
    /// logging failures. Pass [`std::future::pending`] to run for the life of the runtime, or
    /// abort the handle.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn_refresher<F>(&self, shutdown: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let ok_wait = cache.options.refresh_interval;
            let retry_wait = cache.options.retry_interval.min(ok_wait);
            let mut wait = ok_wait;
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(wait) => {}
                }
                let result = tokio::select! {
                    () = &mut shutdown => break,
                    result = cache.refresh() => result,
                };
                wait = match result {
                    Ok(()) => ok_wait,
                    Err(e) => {
                        tracing::warn!(
                            source = %cache.source,
                            error = %e,
                            retry_in = ?retry_wait,
                            "JWK Set refresh failed; keeping the last good set"
                        );
                        retry_wait
                    }
                };
            }
        })
    }
}

fn check_url(url: &str) -> Result<(), AuthError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| AuthError::Key(format!("JWKS URL {url}: {e}")))?;
    match parsed.scheme() {
        "https" | "http" => Ok(()),
        other => Err(AuthError::Key(format!(
            "JWKS URL {url}: scheme {other:?} is neither https nor http"
        ))),
    }
}

async fn fetch(
    source: &JwksSource,
    client: &reqwest::Client,
    max_bytes: usize,
) -> Result<KeySet, AuthError> {
    match source {
        JwksSource::File(path) => {
            let json = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
            in_source(source, KeySet::from_jwks_json(&json))
        }
        JwksSource::Url(url) => in_source(source, fetch_url(client, url, max_bytes).await),
        JwksSource::Discovery(issuer) => {
            let jwks_uri = discover(client, issuer, max_bytes).await?;
            in_source(source, fetch_url(client, &jwks_uri, max_bytes).await)
        }
    }
}

async fn fetch_url(
    client: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<KeySet, AuthError> {
    let body = get(client, url, max_bytes)
        .await
        .map_err(|why| AuthError::Key(format!("GET {url}: {why}")))?;
    let json = std::str::from_utf8(&body)
        .map_err(|_| AuthError::Key(format!("GET {url}: body is not UTF-8")))?;
    KeySet::from_jwks_json(json)
}

/// The `jwks_uri` of `issuer`'s OpenID Provider configuration.
async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    max_bytes: usize,
) -> Result<String, AuthError> {
    // Discovery §4: the issuer with any trailing `/` removed, then the well-known path.
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let why = |msg: String| AuthError::Key(format!("GET {url}: {msg}"));
    let body = get(client, &url, max_bytes).await.map_err(why)?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| why(format!("not JSON: {e}")))?;
    // §4.3: the document must be the issuer's own, or tokens of one issuer could be checked with
    // keys another one published.
    if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer) {
        return Err(why(format!(
            "its issuer is {}, not {issuer}",
            doc.get("issuer").unwrap_or(&serde_json::Value::Null)
        )));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| why("no jwks_uri".into()))?;
    check_url(jwks_uri)?;
    // An https issuer's keys are not taken from a plain-http address.
    if issuer.starts_with("https://") && !jwks_uri.starts_with("https://") {
        return Err(why(format!("jwks_uri {jwks_uri} is not https")));
    }
    Ok(jwks_uri.to_owned())
}

async fn get(client: &reqwest::Client, url: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let too_big = || format!("JWK Set larger than {max_bytes} bytes");
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(too_big());
    }
    // Read chunk by chunk: Content-Length may be absent (chunked encoding) or wrong.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn in_source(source: &JwksSource, keys: Result<KeySet, AuthError>) -> Result<KeySet, AuthError> {
    keys.map_err(|e| match e {
        AuthError::Key(msg) => AuthError::Key(format!("{source}: {msg}")),
        other => other,
    })
}

fn log_skipped(source: &JwksSource, keys: &KeySet) {
    for why in keys.skipped() {
        tracing::debug!(source = %source, "JWK skipped: {why}");
    }
}

/// `e` and its sources: reqwest's own message alone ("error sending request") hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
