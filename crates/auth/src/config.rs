//! Which tokens a service accepts (the `auth` section of its configuration), and the verifier
//! built from it.

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{JwksCache, JwksOptions, JwksSource, TokenVerifier};

/// Who may call: bearer tokens from one issuer (`issuer` and its key), or from each of several
/// (`[[auth.issuers]]`, which then replaces the single-issuer keys), each with its own keys and
/// audience.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// What the issuer's tokens must name in `aud`.
    pub audience: String,
    /// The issuer's ES256 public key (SPKI PEM); not read when `jwks` is set or `discovery` is on.
    pub public_key_file: PathBuf,
    /// The issuer's JWK Set (ES256 and RS256 keys): a file path or an `https://` (or, on a
    /// trusted network, `http://`) URL. Empty: `discovery`, else `public_key_file`.
    pub jwks: String,
    /// Find the JWK Set by OpenID Connect Discovery: `{issuer}/.well-known/openid-configuration`
    /// names its `jwks_uri`.
    pub discovery: bool,
    /// Several issuers, each with its own keys and audience. When given, `issuer`, `audience`,
    /// `public_key_file`, `jwks` and `discovery` above are not used.
    pub issuers: Vec<IssuerConfig>,
    /// PEM file of the CA certificates that alone are trusted for `https://` key and discovery
    /// fetches (a hospital's private CA). Empty: the system's roots.
    pub ca_bundle: PathBuf,
    /// How often each JWK Set (and discovery document) is read again (keys rotate), seconds.
    pub jwks_refresh_secs: u64,
    /// SMART App Launch: the authorization server's authorize URL, published in
    /// `/.well-known/smart-configuration` and the CapabilityStatement. Empty: none.
    pub authorization_endpoint: String,
    /// SMART App Launch: the authorization server's token URL. Empty: no authorization server
    /// is published (tokens come from elsewhere, e.g. `medledger token`).
    pub token_endpoint: String,
}

/// One trusted issuer of `[[auth.issuers]]`: exactly one of `jwks`, `discovery` and
/// `public_key_file` says where its keys are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// Expected `iss` claim (for discovery, the issuer URL).
    pub issuer: String,
    /// What its tokens must name in `aud`; empty: `medledger`. A SMART authorization server
    /// puts the FHIR base URL the app asked for here.
    pub audience: String,
    /// Its JWK Set: a file path or a URL.
    pub jwks: String,
    /// Find its JWK Set by OpenID Connect Discovery.
    pub discovery: bool,
    /// Its ES256 public key (SPKI PEM).
    pub public_key_file: PathBuf,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: crate::DEV_ISSUER.to_owned(),
            audience: crate::AUDIENCE.to_owned(),
            public_key_file: PathBuf::from("/etc/medledger/issuer.pub.pem"),
            jwks: String::new(),
            discovery: false,
            issuers: Vec::new(),
            ca_bundle: PathBuf::new(),
            jwks_refresh_secs: 300,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
        }
    }
}

/// What MedLedger honours of SMART App Launch 2 as a resource server: v2 scopes (`cruds` and
/// `?category=` restrictions), patient and user permissions, the `patient` launch context.
const SMART_CAPABILITIES: &[&str] = &[
    "launch-standalone",
    "context-standalone-patient",
    "permission-patient",
    "permission-user",
    "permission-v2",
];

/// The scopes it understands (the `cruds` letters may be any subset, per type or `*`).
const SMART_SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.cruds",
    "patient/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "system/*.cruds",
    "system/*.rs",
];

impl AuthConfig {
    /// The issuers trusted: `issuers`, or the single one the top-level keys describe.
    pub fn trusted(&self) -> Vec<IssuerConfig> {
        if !self.issuers.is_empty() {
            return self.issuers.clone();
        }
        let key_file = if self.jwks.is_empty() && !self.discovery {
            self.public_key_file.clone()
        } else {
            PathBuf::new()
        };
        vec![IssuerConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks: self.jwks.clone(),
            discovery: self.discovery,
            public_key_file: key_file,
        }]
    }

    /// The SMART App Launch 2 discovery document (`/.well-known/smart-configuration`), when
    /// an authorization server is named (`token_endpoint`).
    pub fn smart_configuration(&self) -> Option<serde_json::Value> {
        if self.token_endpoint.is_empty() {
            return None;
        }
        let first = self.trusted().into_iter().next().unwrap_or_default();
        let mut doc = serde_json::json!({
            "issuer": first.issuer,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "scopes_supported": SMART_SCOPES,
            "capabilities": SMART_CAPABILITIES,
            "code_challenge_methods_supported": ["S256"],
        });
        if !self.authorization_endpoint.is_empty() {
            doc["authorization_endpoint"] = serde_json::json!(self.authorization_endpoint);
            doc["grant_types_supported"] =
                serde_json::json!(["authorization_code", "client_credentials"]);
            doc["response_types_supported"] = serde_json::json!(["code"]);
        }
        if first.jwks.starts_with("http://") || first.jwks.starts_with("https://") {
            doc["jwks_uri"] = serde_json::json!(first.jwks);
        }
        Some(doc)
    }

    /// The CapabilityStatement's `rest.security`: SMART-on-FHIR with the `oauth-uris`
    /// extension when an authorization server is named, else only what a token must be.
    pub fn capability_security(&self) -> serde_json::Value {
        capability_security(Some(self))
    }
}

/// `rest.security` of a CapabilityStatement for `auth` (`None`: `medledger dev`, whose tokens
/// come from `medledger token`).
pub fn capability_security(auth: Option<&AuthConfig>) -> serde_json::Value {
    let described = "Every interaction except metadata and SMART discovery requires \
                     Authorization: Bearer <JWT> (ES256 or RS256) with SMART v2 scopes.";
    let Some(auth) = auth.filter(|a| !a.token_endpoint.is_empty()) else {
        return serde_json::json!({
            "cors": false,
            "description": format!("{described} No authorization server is published; tokens come from the deployment's issuer."),
        });
    };
    let mut uris = vec![serde_json::json!({"url": "token", "valueUri": auth.token_endpoint})];
    if !auth.authorization_endpoint.is_empty() {
        uris.push(serde_json::json!({"url": "authorize", "valueUri": auth.authorization_endpoint}));
    }
    serde_json::json!({
        "cors": false,
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": uris,
        }],
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
        "description": described,
    })
}

#[cfg(test)]
mod smart_tests {
    use super::*;

    #[test]
    fn discovery_and_security_follow_the_configured_server() {
        let none = AuthConfig::default();
        assert!(none.smart_configuration().is_none());
        assert!(capability_security(None).get("service").is_none());
        assert!(none.capability_security().get("service").is_none());
        let auth = AuthConfig {
            authorization_endpoint: "https://auth.example/authorize".into(),
            token_endpoint: "https://auth.example/token".into(),
            jwks: "https://auth.example/jwks".into(),
            ..AuthConfig::default()
        };
        let doc = auth.smart_configuration().expect("configured");
        assert_eq!(doc["token_endpoint"], "https://auth.example/token");
        assert_eq!(
            doc["authorization_endpoint"],
            "https://auth.example/authorize"
        );
        assert_eq!(doc["jwks_uri"], "https://auth.example/jwks");
        assert!(
            doc["capabilities"]
                .as_array()
                .expect("list")
                .iter()
                .any(|c| c == "permission-v2")
        );
        let sec = auth.capability_security();
        assert_eq!(sec["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        let uris = &sec["extension"][0]["extension"];
        assert_eq!(uris[0]["url"], "token");
        assert_eq!(uris[1]["valueUri"], "https://auth.example/authorize");
    }
}

impl AuthConfig {
    /// The token verifier this describes. Each issuer's JWK Set is read now (a failure stops the
    /// service: it could authenticate nobody) and again every `jwks_refresh_secs` until
    /// `shutdown`, keeping the last good set when a refresh fails.
    pub async fn verifier<F>(&self, shutdown: F) -> Result<TokenVerifier, String>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // One shutdown future, several refreshers: each waits on the channel it closes.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut verifier = TokenVerifier::default();
        for t in self.trusted() {
            let audience = if t.audience.is_empty() {
                crate::AUDIENCE
            } else {
                &t.audience
            };
            let source = match (t.jwks.is_empty(), t.discovery) {
                (false, false) => JwksSource::parse(&t.jwks),
                (true, true) => JwksSource::Discovery(t.issuer.clone()),
                (true, false) => {
                    let key = crate::load_public_key(&t.public_key_file).map_err(|e| {
                        format!("loading the public key of token issuer {}: {e}", t.issuer)
                    })?;
                    let keys = crate::KeySet::from_es256_key(key, None);
                    verifier = verifier.with_audience(&t.issuer, audience, keys.into());
                    continue;
                }
                (false, true) => {
                    return Err(format!(
                        "token issuer {}: set either jwks or discovery, not both",
                        t.issuer
                    ));
                }
            };
            let cache = JwksCache::load(
                source,
                JwksOptions {
                    refresh_interval: std::time::Duration::from_secs(self.jwks_refresh_secs.max(1)),
                    ca_bundle: (!self.ca_bundle.as_os_str().is_empty())
                        .then(|| self.ca_bundle.clone()),
                    ..JwksOptions::default()
                },
            )
            .await
            .map_err(|e| format!("loading the JWK Set of token issuer {}: {e}", t.issuer))?;
            let mut stopped = stopped.clone();
            drop(cache.spawn_refresher(async move {
                // Resolves once the sender is gone.
                while stopped.changed().await.is_ok() {}
            }));
            verifier = verifier.with_audience(&t.issuer, audience, cache.keys());
        }
        tokio::spawn(async move {
            shutdown.await;
            drop(stop);
        });
        Ok(verifier)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn claims(iss: &str) -> crate::Claims {
        let now = crate::unix_now();
        serde_json::from_value(serde_json::json!({
            "iss": iss, "sub": "Practitioner/dr-1", "aud": crate::AUDIENCE,
            "exp": now + 600, "iat": now, "scope": "user/*.rs", "role": "practitioner"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_configured_jwk_set_admits_its_issuers_rs256_and_es256_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = crate::RsaIssuerKey::generate(2048).unwrap();
        let ec = crate::IssuerKey::generate();
        let set = crate::JwkSet {
            keys: vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")],
        };
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, set.to_json()).unwrap();
        let auth = AuthConfig {
            issuer: "https://idp.hospital.example".into(),
            public_key_file: dir.path().join("not-read.pem"),
            jwks: path.display().to_string(),
            jwks_refresh_secs: 300,
            ..AuthConfig::default()
        };
        let v = auth.verifier(std::future::pending()).await.unwrap();
        let c = claims(&auth.issuer);
        assert_eq!(
            v.verify(&rsa.sign(&c, Some("rsa-1"))).unwrap().sub,
            "Practitioner/dr-1"
        );
        assert!(v.verify(&ec.sign_with_kid(&c, Some("ec-1"))).is_ok());
        // Another issuer's name, or a key outside the set, is refused.
        assert!(
            v.verify(&rsa.sign(&claims("medledger-dev"), Some("rsa-1")))
                .is_err()
        );
        let stranger = crate::RsaIssuerKey::generate(2048).unwrap();
        assert!(v.verify(&stranger.sign(&c, Some("rsa-1"))).is_err());
        // Without a readable set the service does not start.
        let missing = AuthConfig {
            jwks: dir.path().join("absent.json").display().to_string(),
            ..auth
        };
        assert!(missing.verifier(std::future::pending()).await.is_err());
    }
}
