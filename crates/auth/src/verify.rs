//! Token validation against the issuers a service trusts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use p256::ecdsa::VerifyingKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwk::Algorithm;
use crate::{AUDIENCE, AuthError, B64, Claims, Header, KeySet, LEEWAY_SECS, SharedKeySet};

/// Validates tokens from trusted issuers, each with its own keys and audience: a token verifies
/// only with a key of the issuer its `iss` names, and only if its `aud` names that issuer's
/// audience for this deployment. Cloning shares the issuers' key sets, so a refresh reaches every
/// clone, and the cache of verified signatures. [`TokenVerifier::default`] trusts no issuer.
#[derive(Debug, Clone, Default)]
pub struct TokenVerifier {
    issuers: Vec<Trusted>,
    verified: SignatureCache,
}

/// One trusted issuer.
#[derive(Debug, Clone)]
struct Trusted {
    issuer: String,
    /// What its tokens' `aud` must name: [`AUDIENCE`] for MedLedger's own issuers, typically the
    /// FHIR base URL for an external authorization server (SMART's `aud` parameter).
    audience: String,
    keys: SharedKeySet,
}

/// Most signatures remembered; past it the cache starts over (a client normally reuses one token
/// for many requests, so a few thousand live tokens cover a busy service).
const SIGNATURE_CACHE_ENTRIES: usize = 16_384;

/// Tokens whose signature verified, by SHA-256 of the whole token, with the key set that verified
/// it. Checking an ES256 signature costs about 0.3 ms of CPU, most of a read's; a client sends
/// the same token with every request. Only the signature is remembered: every other check (issuer,
/// audience, expiry, `nbf`) runs on every request, and an entry counts only while its issuer's key
/// set is the very one that verified it, so a JWKS refresh that drops or replaces a key forgets
/// what that key verified. A changed byte anywhere in a token is another hash: a miss.
#[derive(Clone, Default)]
struct SignatureCache(Arc<Mutex<HashMap<[u8; 32], Arc<KeySet>>>>);

impl std::fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCache").finish_non_exhaustive()
    }
}

impl SignatureCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<KeySet>>> {
        // Inserts and lookups cannot leave the map half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn verified_by(&self, digest: &[u8; 32], keys: &Arc<KeySet>) -> bool {
        self.lock()
            .get(digest)
            .is_some_and(|set| Arc::ptr_eq(set, keys))
    }

    fn remember(&self, digest: [u8; 32], keys: Arc<KeySet>) {
        let mut map = self.lock();
        if map.len() >= SIGNATURE_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(digest, keys);
    }
}

impl TokenVerifier {
    /// Trusts `key` for ES256 tokens whose `iss` is `issuer`, whatever `kid` they carry (a key
    /// configured directly has no published `kid` to match).
    pub fn new(issuer: &str, key: VerifyingKey) -> Self {
        Self::default().with_issuer(issuer, KeySet::from_es256_key(key, None))
    }

    /// Trusts the keys of the JWK Set `jwks_json` for tokens whose `iss` is `issuer`.
    pub fn from_jwks(issuer: &str, jwks_json: &str) -> Result<Self, AuthError> {
        Ok(Self::default().with_issuer(issuer, KeySet::from_jwks_json(jwks_json)?))
    }

    /// Also trusts `keys` for `issuer`, replacing any keys it had for that issuer.
    pub fn with_issuer(self, issuer: &str, keys: KeySet) -> Self {
        self.with_shared_issuer(issuer, SharedKeySet::new(keys))
    }

    /// Also trusts `keys` for `issuer`'s tokens naming [`AUDIENCE`], replacing any keys it had
    /// for that issuer, and follows them as they are replaced (e.g. by
    /// [`JwksCache`](crate::JwksCache) refreshes).
    pub fn with_shared_issuer(self, issuer: &str, keys: SharedKeySet) -> Self {
        self.with_audience(issuer, AUDIENCE, keys)
    }

    /// Also trusts `keys` for `issuer`'s tokens whose `aud` names `audience`, replacing what it
    /// had for that issuer, and follows the keys as they are replaced.
    pub fn with_audience(mut self, issuer: &str, audience: &str, keys: SharedKeySet) -> Self {
        let trusted = Trusted {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
        };
        match self.issuers.iter_mut().find(|t| t.issuer == issuer) {
            Some(old) => *old = trusted,
            None => self.issuers.push(trusted),
        }
        self
    }

    /// The trusted issuers, in the order they were added.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|t| t.issuer.as_str())
    }

    /// Validates `token` at time `now` (Unix seconds).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        // Only asymmetric algorithms: `none` and HMAC would let anyone holding the public key
        // (which is published) forge tokens.
        let alg = Algorithm::from_name(&header.alg).ok_or(AuthError::Algorithm)?;
        let mut payload: Map<String, Value> = decode_json(c)?;
        let trusted = payload
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|iss| self.issuers.iter().find(|t| t.issuer == iss))
            .ok_or(AuthError::Audience)?;
        let aud_ok = audience_names(payload.get("aud"), &trusted.audience)?;
        let nbf = numeric_date(payload.get("nbf"))?;
        // `Claims::aud` is a single string; a token that gets through names its issuer's audience.
        payload.insert("aud".into(), Value::String(trusted.audience.clone()));
        let claims: Claims =
            serde_json::from_value(Value::Object(payload)).map_err(|_| AuthError::Malformed)?;
        let sig = B64.decode(s).map_err(|_| AuthError::Malformed)?;
        let keys = trusted.keys.current();
        // The signing input is the token's own `header.claims` bytes (in bounds: a `.` and the
        // signature follow), not a re-encoding of what was parsed.
        let input = &token.as_bytes()[..h.len() + 1 + c.len()];
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !self.verified.verified_by(&digest, &keys) {
            if !keys
                .candidates(alg, header.kid.as_deref())
                .any(|key| key.verifies(input, &sig))
            {
                return Err(AuthError::Signature);
            }
            self.verified.remember(digest, keys);
        }
        if !aud_ok {
            return Err(AuthError::Audience);
        }
        if claims.exp + LEEWAY_SECS < now
            || claims.iat - LEEWAY_SECS > now
            || nbf.is_some_and(|nbf| nbf - LEEWAY_SECS > now)
        {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    /// Validates `token` now.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, crate::unix_now())
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Whether `aud` names `expected`: a string equal to it, or an array of strings containing it.
fn audience_names(aud: Option<&Value>, expected: &str) -> Result<bool, AuthError> {
    match aud {
        None => Ok(false),
        Some(Value::String(s)) => Ok(s == expected),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                match item {
                    Value::String(s) => found |= s == expected,
                    _ => return Err(AuthError::Malformed),
                }
            }
            Ok(found)
        }
        Some(_) => Err(AuthError::Malformed),
    }
}

/// A NumericDate claim (RFC 7519 §2), which may have a fraction: rounded up, so that `nbf` is never
/// moved earlier.
fn numeric_date(value: Option<&Value>) -> Result<Option<i64>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.ceil() as i64)
            })
            .map(Some)
            .ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEV_ISSUER, IssuerKey};

    fn mint(key: &IssuerKey) -> String {
        key.mint("Practitioner/dr-1", "practitioner", "user/*.rs", 1000, 3600)
    }

    #[test]
    fn a_remembered_signature_counts_for_that_token_and_key_set_only() {
        let key = IssuerKey::generate();
        let shared = SharedKeySet::new(KeySet::from_es256_key(key.verifying_key(), None));
        let v = TokenVerifier::default().with_shared_issuer(DEV_ISSUER, shared.clone());
        let t = mint(&key);
        assert!(v.verify_at(&t, 1500).is_ok());
        assert_eq!(v.verified.lock().len(), 1);
        // A clone shares what was verified; a hit still checks everything but the signature.
        let clone = v.clone();
        assert!(clone.verify_at(&t, 1600).is_ok());
        assert_eq!(
            clone.verify_at(&t, 1000 + 3600 + LEEWAY_SECS + 1),
            Err(AuthError::Expired)
        );
        // Another signature on the same claims is another token: checked, and refused. (A
        // character inside the signature, not its last: that one carries padding bits, and
        // changing them would make the encoding malformed rather than the signature wrong.)
        let mut chars: Vec<char> = t.chars().collect();
        let at = chars.len() - 10;
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let other_sig: String = chars.into_iter().collect();
        assert_eq!(v.verify_at(&other_sig, 1500), Err(AuthError::Signature));
        // A refresh that drops the key forgets what it verified.
        let next = IssuerKey::generate();
        shared.replace(KeySet::from_es256_key(next.verifying_key(), None));
        assert_eq!(v.verify_at(&t, 1500), Err(AuthError::Signature));
        assert!(v.verify_at(&mint(&next), 1500).is_ok());
    }

    #[test]
    fn each_issuer_is_held_to_its_own_audience() {
        let (a, b) = (IssuerKey::generate(), IssuerKey::generate());
        let keys =
            |k: &IssuerKey| SharedKeySet::new(KeySet::from_es256_key(k.verifying_key(), None));
        let v = TokenVerifier::default()
            .with_audience(
                "https://idp-a.example",
                "https://fhir.example/fhir",
                keys(&a),
            )
            .with_audience("https://idp-b.example", "medledger-b", keys(&b));
        let token = |k: &IssuerKey, iss: &str, aud: &str| {
            k.sign(&crate::Claims {
                iss: iss.into(),
                sub: "Practitioner/dr-1".into(),
                aud: aud.into(),
                exp: 5000,
                iat: 1000,
                scope: "user/*.rs".into(),
                role: "practitioner".into(),
                fhir_user: None,
                jti: String::new(),
                patient: None,
            })
        };
        let ok = v
            .verify_at(
                &token(&a, "https://idp-a.example", "https://fhir.example/fhir"),
                1500,
            )
            .map(|c| c.aud);
        assert_eq!(ok.as_deref(), Ok("https://fhir.example/fhir"));
        assert!(
            v.verify_at(&token(&b, "https://idp-b.example", "medledger-b"), 1500)
                .is_ok()
        );
        // A's token for B's audience, or for MedLedger's default one, is refused; so is B's key
        // under A's name.
        for (k, iss, aud) in [
            (&a, "https://idp-a.example", "medledger-b"),
            (&a, "https://idp-a.example", AUDIENCE),
            (&b, "https://idp-a.example", "https://fhir.example/fhir"),
            (&a, "https://idp-c.example", "https://fhir.example/fhir"),
        ] {
            assert!(
                v.verify_at(&token(k, iss, aud), 1500).is_err(),
                "{iss} {aud}"
            );
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let key = IssuerKey::generate();
        let v = TokenVerifier::new(DEV_ISSUER, key.verifying_key());
        let keys = v.issuers[0].keys.current();
        for i in 0..SIGNATURE_CACHE_ENTRIES + 10 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_le_bytes());
            v.verified.remember(digest, Arc::clone(&keys));
        }
        assert!(v.verified.lock().len() <= SIGNATURE_CACHE_ENTRIES);
        let t = mint(&key);
        assert!(v.verify_at(&t, 1500).is_ok());
    }
}
