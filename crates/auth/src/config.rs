//! Which tokens a service accepts (the `auth` section of its configuration), and the verifier
//! built from it.

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{JwksCache, JwksOptions, JwksSource, TokenVerifier};

/// Who may call: bearer tokens from this issuer, signed with its key (a PEM file) or one of its
/// keys (a JWK Set, file or URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// The issuer's ES256 public key (SPKI PEM); not read when `jwks` is set.
    pub public_key_file: PathBuf,
    /// The issuer's JWK Set (ES256 and RS256 keys): a file path or an `http://` URL. Empty: use
    /// `public_key_file`.
    pub jwks: String,
    /// How often the JWK Set is read again (keys rotate), seconds.
    pub jwks_refresh_secs: u64,
    /// SMART App Launch: the authorization server's authorize URL, published in
    /// `/.well-known/smart-configuration` and the CapabilityStatement. Empty: none.
    pub authorization_endpoint: String,
    /// SMART App Launch: the authorization server's token URL. Empty: no authorization server
    /// is published (tokens come from elsewhere, e.g. `medledger token`).
    pub token_endpoint: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: crate::DEV_ISSUER.to_owned(),
            public_key_file: PathBuf::from("/etc/medledger/issuer.pub.pem"),
            jwks: String::new(),
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
    /// The SMART App Launch 2 discovery document (`/.well-known/smart-configuration`), when
    /// an authorization server is named (`token_endpoint`).
    pub fn smart_configuration(&self) -> Option<serde_json::Value> {
        if self.token_endpoint.is_empty() {
            return None;
        }
        let mut doc = serde_json::json!({
            "issuer": self.issuer,
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
        if self.jwks.starts_with("http://") || self.jwks.starts_with("https://") {
            doc["jwks_uri"] = serde_json::json!(self.jwks);
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
    /// The token verifier this describes. With a JWK Set, its keys are read now (a failure
    /// stops the service: it could authenticate nobody) and again every `jwks_refresh_secs`
    /// until `shutdown`, keeping the last good set when a refresh fails.
    pub async fn verifier<F>(&self, shutdown: F) -> Result<TokenVerifier, String>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.jwks.is_empty() {
            let key = crate::load_public_key(&self.public_key_file)
                .map_err(|e| format!("loading the token issuer's public key: {e}"))?;
            return Ok(TokenVerifier::new(&self.issuer, key));
        }
        let cache = JwksCache::load(
            JwksSource::parse(&self.jwks),
            JwksOptions {
                refresh_interval: std::time::Duration::from_secs(self.jwks_refresh_secs.max(1)),
                ..JwksOptions::default()
            },
        )
        .await
        .map_err(|e| format!("loading the token issuer's JWK Set from {}: {e}", self.jwks))?;
        drop(cache.spawn_refresher(shutdown));
        Ok(TokenVerifier::default().with_shared_issuer(&self.issuer, cache.keys()))
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
