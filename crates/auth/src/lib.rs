//! Bearer-token authentication: validating compact-JWS tokens from the issuers MedLedger trusts,
//! and minting dev and test tokens.
//!
//! Tokens are compact JWS (RFC 7515) signed with ES256 (P-256, RFC 7518 §3.4) or RS256
//! (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) carrying SMART App Launch v2 style claims:
//! `sub`, `scope`, `fhirUser`, plus MedLedger's `role`.
//!
//! A [`TokenVerifier`] trusts one or more issuers, each with a [`KeySet`] of public keys: a single
//! ES256 key ([`TokenVerifier::new`], as the `medledger dev` issuer uses), or a JWK Set (RFC 7517)
//! given as JSON, read from a file, or fetched over https (or found by OpenID Connect Discovery)
//! and refreshed in the background ([`JwksCache`]). Each issuer has its own audience. Validation checks the algorithm against the key's type (no RS256/ES256
//! confusion, never `none` or HMAC), picks the key by `kid`, and checks the signature, issuer,
//! audience, expiry, issue time and `nbf` against an injectable clock. It is synchronous and never
//! waits on the network: a refresh swaps the whole key set in at once.
//!
//! [`IssuerKey`] (ES256) mints the dev issuer's tokens; [`RsaIssuerKey`] mints RS256 tokens for
//! tests. Both publish their public half as a [`Jwk`].

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod config;
mod jwk;
mod rsa_key;
mod source;
mod verify;

pub use config::{AuthConfig, IssuerConfig, capability_security};
pub use jwk::{Jwk, JwkSet, KeySet, MIN_RSA_BITS, SharedKeySet};
pub use rsa_key::RsaIssuerKey;
pub use source::{JwksCache, JwksOptions, JwksSource};
pub use verify::TokenVerifier;

/// Issuer name of `medledger dev` tokens.
pub const DEV_ISSUER: &str = "medledger-dev";
/// Audience every MedLedger token must name.
pub const AUDIENCE: &str = "medledger";
/// Allowed clock skew, seconds.
pub(crate) const LEEWAY_SECS: i64 = 60;

/// Why a token was refused. The message is safe to return to the caller (it never echoes the
/// token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed compact JWS.
    #[error("malformed token")]
    Malformed,
    /// Algorithm other than ES256 or RS256 (so also `none` and the HMAC family).
    #[error("unsupported token algorithm")]
    Algorithm,
    /// Signature does not verify with any trusted key: also when the header's `kid` names no key
    /// of the issuer, or the issuer has no key of the type the header's `alg` needs.
    #[error("token signature is invalid")]
    Signature,
    /// `exp` in the past (or `nbf` in the future).
    #[error("token expired or not yet valid")]
    Expired,
    /// Wrong `iss` or `aud`.
    #[error("token issuer or audience not accepted")]
    Audience,
    /// Key file, JWK Set or key source problem (not a property of a presented token).
    #[error("issuer key: {0}")]
    Key(String),
}

/// Claims MedLedger reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the account, e.g. `Practitioner/dr-1`.
    pub sub: String,
    /// Audience. A token may carry `aud` as a string or as an array (RFC 7519 §4.1.3); the
    /// verifier accepts either when it names [`AUDIENCE`], and then sets this to [`AUDIENCE`].
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Space-separated SMART scopes, e.g. `user/*.cruds`.
    pub scope: String,
    /// MedLedger role: patient, practitioner, organization, auditor, authority, admin.
    pub role: String,
    /// SMART `fhirUser`: the FHIR resource for the user.
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// Unique token id.
    #[serde(default)]
    pub jti: String,
    /// SMART launch context: the patient (bare id) that `patient/` scopes are bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

impl Claims {
    /// The patient `patient/` scopes are bound to, as `Patient/{id}`: the launch context's
    /// `patient` claim, else the user's own `fhirUser` when it is a Patient.
    pub fn patient_context(&self) -> Option<String> {
        match (&self.patient, &self.fhir_user) {
            (Some(id), _) => Some(format!("Patient/{id}")),
            (None, Some(user)) if user.starts_with("Patient/") => Some(user.clone()),
            _ => None,
        }
    }
}

/// An authenticated caller: the verified claims and the bearer token they were read from.
///
/// The token travels on to the consent service, which verifies it again itself rather than
/// trusting claims relayed by another process.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The verified claims.
    pub claims: Claims,
    /// The compact JWS, as presented (a credential: never log it).
    pub token: std::sync::Arc<str>,
    /// Purpose of use the caller states for this request (`X-Purpose-Of-Use`, e.g. `TREAT`).
    pub purpose: Option<String>,
    /// Emergency reason the caller states (`X-Break-Glass-Reason`): free text, may name a
    /// patient's condition, so it goes to the audit trail only, never to logs.
    pub break_glass_reason: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("claims", &self.claims)
            .field("token", &"<redacted>")
            .field("purpose", &self.purpose)
            .field("break_glass", &self.break_glass_reason.is_some())
            .finish()
    }
}

impl Caller {
    /// A caller whose token was just verified into `claims`.
    pub fn new(claims: Claims, token: &str) -> Self {
        Self {
            claims,
            token: token.into(),
            purpose: None,
            break_glass_reason: None,
        }
    }
}

/// JOSE header of a compact JWS. Members other than these (`jku`, `jwk`, `x5u`, ...) are ignored:
/// keys come only from the verifier's configuration, never from the token.
#[derive(Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    /// Extensions the recipient must understand (RFC 7515 §4.1.11): MedLedger understands none,
    /// so a token listing any is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) crit: Option<serde_json::Value>,
}

/// `header.claims.signature` with `sign` producing the signature over `header.claims`.
pub(crate) fn compact_jws(
    alg: &str,
    kid: Option<&str>,
    claims: &Claims,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> String {
    let header = Header {
        alg: alg.into(),
        typ: Some("JWT".into()),
        kid: kid.map(str::to_owned),
        crit: None,
    };
    // Serialising these plain structs cannot fail.
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let c = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{c}");
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

/// A signing key of an issuer.
#[derive(Clone)]
pub struct IssuerKey {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The `kid` an [`IssuerKey`] stamps into its tokens unless given another.
fn kid_of(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    B64.encode(&Sha256::digest(point.as_bytes())[..16])
}

/// Loads an issuer's public key (SPKI PEM), e.g. the file `medledger token --public-key` wrote.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, AuthError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
    VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))
}

impl IssuerKey {
    /// Loads the PKCS#8 PEM key at `path`, creating one (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => {
                SigningKey::from_pkcs8_pem(&pem).map_err(|e| AuthError::Key(e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::random(&mut rand::rngs::OsRng);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| AuthError::Key(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| AuthError::Key(e.to_string()))?;
                }
                let tmp = path.with_extension("tmp");
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp).map_err(|e| AuthError::Key(e.to_string()))?;
                std::io::Write::write_all(&mut f, pem.as_bytes())
                    .map_err(|e| AuthError::Key(e.to_string()))?;
                f.sync_all().map_err(|e| AuthError::Key(e.to_string()))?;
                std::fs::rename(&tmp, path).map_err(|e| AuthError::Key(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| AuthError::Key(e.to_string()))?;
                }
                key
            }
            Err(e) => return Err(AuthError::Key(e.to_string())),
        };
        let kid = kid_of(key.verifying_key());
        Ok(Self { key, kid })
    }

    /// A fresh in-memory key (tests).
    pub fn generate() -> Self {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let kid = kid_of(key.verifying_key());
        Self { key, kid }
    }

    /// The public half as SPKI PEM, for services that verify tokens without holding the key.
    pub fn public_key_pem(&self) -> Result<String, AuthError> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuthError::Key(e.to_string()))
    }

    /// The public half, for a [`TokenVerifier`].
    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }

    /// The key id this key's tokens carry: derived from the public key unless set with
    /// [`IssuerKey::with_kid`].
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The same key, stamping `kid` into the tokens it signs (to match a JWK Set entry).
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// The public half as a JWK (`kty` EC, `crv` P-256, `alg` ES256, `use` sig) under `kid`, for
    /// publishing in a JWK Set.
    pub fn jwk(&self, kid: &str) -> Jwk {
        jwk::ec_jwk(self.key.verifying_key(), kid)
    }

    /// Signs `claims` as a compact JWS whose header carries this key's [`kid`](Self::kid).
    pub fn sign(&self, claims: &Claims) -> String {
        self.sign_with_kid(claims, Some(&self.kid))
    }

    /// Signs `claims` as a compact JWS with `kid` in the header, or none (tests of key selection).
    pub fn sign_with_kid(&self, claims: &Claims, kid: Option<&str>) -> String {
        compact_jws("ES256", kid, claims, |input| {
            let sig: Signature = self.key.sign(input);
            sig.to_bytes().to_vec()
        })
    }

    /// Mints a dev token valid for `ttl_secs` from `now`.
    pub fn mint(&self, subject: &str, role: &str, scope: &str, now: i64, ttl_secs: i64) -> String {
        let claims = Claims {
            iss: DEV_ISSUER.into(),
            sub: subject.into(),
            aud: AUDIENCE.into(),
            exp: now + ttl_secs,
            iat: now,
            scope: scope.into(),
            role: role.into(),
            fhir_user: Some(subject.into()),
            jti: uuid_like(),
            patient: None,
        };
        self.sign(&claims)
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex_lower(&b)
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_verify() {
        let key = IssuerKey::generate();
        let v = TokenVerifier::new(DEV_ISSUER, key.verifying_key());
        let t = key.mint(
            "Practitioner/dr-1",
            "practitioner",
            "user/*.cruds",
            1000,
            3600,
        );
        let c = v.verify_at(&t, 1500).expect("valid");
        assert_eq!(c.sub, "Practitioner/dr-1");
        assert_eq!(c.scope, "user/*.cruds");
        assert_eq!(
            v.verify_at(&t, 1000 + 3600 + LEEWAY_SECS + 1),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn rejects_forgeries() {
        let key = IssuerKey::generate();
        let v = TokenVerifier::new(DEV_ISSUER, key.verifying_key());
        let t = key.mint(
            "Practitioner/dr-1",
            "practitioner",
            "user/*.cruds",
            1000,
            3600,
        );
        // Another key signing the same claims.
        let other = IssuerKey::generate().mint(
            "Practitioner/dr-1",
            "practitioner",
            "user/*.cruds",
            1000,
            3600,
        );
        assert_eq!(v.verify_at(&other, 1500), Err(AuthError::Signature));
        // Claims edited after signing.
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims: Claims =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        claims.sub = "Practitioner/evil".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&claims).expect("json")),
            parts[2]
        );
        assert_eq!(v.verify_at(&forged, 1500), Err(AuthError::Signature));
        // alg=none.
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#),
            parts[1]
        );
        assert_eq!(v.verify_at(&none, 1500), Err(AuthError::Algorithm));
        assert_eq!(v.verify_at("abc", 1500), Err(AuthError::Malformed));
        assert_eq!(v.verify_at("a.b.c", 1500), Err(AuthError::Malformed));
        // Wrong audience, correctly signed.
        let mut c2: Claims =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        c2.aud = "someone-else".into();
        assert_eq!(v.verify_at(&key.sign(&c2), 1500), Err(AuthError::Audience));
    }

    #[test]
    fn key_file_persists() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("keys/issuer.pem");
        let k1 = IssuerKey::load_or_create(&p).expect("create");
        let k2 = IssuerKey::load_or_create(&p).expect("load");
        assert_eq!(k1.verifying_key(), k2.verifying_key());
    }
}
