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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: crate::DEV_ISSUER.to_owned(),
            public_key_file: PathBuf::from("/etc/medledger/issuer.pub.pem"),
            jwks: String::new(),
            jwks_refresh_secs: 300,
        }
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
