//! JSON Web Keys (RFC 7517, key types of RFC 7518 §6): reading an issuer's published JWK Set into
//! the keys a [`TokenVerifier`](crate::TokenVerifier) checks signatures with, and publishing
//! MedLedger's own keys as JWKs.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p256::ecdsa::VerifyingKey as EcVerifyingKey;
use p256::ecdsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{AuthError, B64};

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3: RS256 keys must be at least 2048 bits).
pub const MIN_RSA_BITS: usize = 2048;

// JWK members are unpadded base64url (RFC 7518 §6), but some publishers pad them. The decoded bytes
// are what matters here, so both are accepted (the token itself stays strict).
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The JWS algorithms MedLedger verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// The algorithm a JOSE `alg` names, if MedLedger supports it. Exact match: `alg` values are
    /// case-sensitive (RFC 7515 §4.1.1).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// One JSON Web Key, with the members MedLedger reads or writes. Unknown members are ignored when
/// reading, as RFC 7517 §4 asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `EC` or `RSA` are used; keys of other types are skipped.
    pub kty: String,
    /// Key id, matched against a token header's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is for. When set it must be the one its type verifies (`ES256` for
    /// P-256, `RS256` for RSA), or the key is skipped: the key is never used for another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; keys for anything but `sig` are skipped.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Permitted operations; when present it must include `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// EC curve: `P-256` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url of 32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url of 32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A JWK Set document: `{"keys": [...]}` (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, in published order.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The set as JSON, as an issuer would serve it.
    pub fn to_json(&self) -> String {
        // Strings, options and vectors only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Public key material of one trusted key.
#[derive(Clone)]
enum PublicKey {
    Ec(EcVerifyingKey),
    /// The key and its modulus length in bytes, which an RS256 signature must have exactly.
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>, usize),
}

/// One usable verification key of an issuer.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    kid: Option<String>,
    /// Tried whatever `kid` a token names: for a lone key configured out of band (a PEM file),
    /// which has no published `kid` for issuers to match.
    any_kid: bool,
    key: PublicKey,
}

impl TrustedKey {
    /// The only algorithm this key can verify: fixed by its type, so an RS256 header never
    /// reaches an EC key nor an ES256 header an RSA key. (A JWK whose own `alg` differs is not
    /// loaded at all.)
    fn algorithm(&self) -> Algorithm {
        match self.key {
            PublicKey::Ec(_) => Algorithm::Es256,
            PublicKey::Rsa(..) => Algorithm::Rs256,
        }
    }

    /// Whether a token with header `alg` and `kid` may be checked against this key. A header
    /// `kid` must match exactly (JWK entries published without a `kid` serve only tokens without
    /// one), unless the key takes any kid.
    pub(crate) fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.algorithm() == alg
            && kid.is_none_or(|kid| self.any_kid || self.kid.as_deref() == Some(kid))
    }

    /// Whether `sig` is a valid signature of `input` under this key.
    pub(crate) fn verifies(&self, input: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            PublicKey::Ec(key) => p256::ecdsa::Signature::from_slice(sig)
                .is_ok_and(|sig| key.verify(input, &sig).is_ok()),
            PublicKey::Rsa(key, len) => {
                sig.len() == *len
                    && rsa::pkcs1v15::Signature::try_from(sig)
                        .is_ok_and(|sig| key.verify(input, &sig).is_ok())
            }
        }
    }

    fn describe(&self) -> String {
        let kind = match self.key {
            PublicKey::Ec(_) => "EC P-256",
            PublicKey::Rsa(_, len) => return format!("RSA-{} {}", len * 8, self.kid_label()),
        };
        format!("{kind} {}", self.kid_label())
    }

    fn kid_label(&self) -> String {
        match self.kid.as_deref() {
            Some(kid) => format!("kid {kid:?}"),
            None if self.any_kid => "(any kid)".to_owned(),
            None => "(no kid)".to_owned(),
        }
    }
}

/// The verification keys of one issuer: never empty. Built from a JWK Set, keeping the usable
/// keys and noting why the others were skipped, or from a single ES256 key.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<TrustedKey>,
    skipped: Vec<String>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(TrustedKey::describe)
                    .collect::<Vec<_>>(),
            )
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

impl KeySet {
    /// Parses a JWK Set document. EC P-256 and RSA signing keys are kept; keys of other types or
    /// curves, for `use` other than `sig`, with an `alg` other than ES256/RS256 (or one that does
    /// not fit the key type), holding private material, malformed, or RSA keys under
    /// [`MIN_RSA_BITS`] are skipped, so one odd entry does not lock out an issuer's good keys.
    /// Fails when the document is not a JWK Set or no key is usable.
    pub fn from_jwks_json(json: &str) -> Result<Self, AuthError> {
        // Entries are parsed one by one from loose JSON so that a single entry of the wrong shape
        // is skipped rather than failing the whole set.
        #[derive(Deserialize)]
        struct Loose {
            keys: Vec<serde_json::Value>,
        }
        let doc: Loose = serde_json::from_str(json)
            .map_err(|e| AuthError::Key(format!("not a JWK Set: {e}")))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, entry) in doc.keys.into_iter().enumerate() {
            let label = entry
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("key #{i}"), |kid| format!("key {kid:?}"));
            // A published private key (`d`, or RSA's CRT members) is compromised by being public:
            // trusting its public half would accept tokens anyone could have signed.
            if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
                .iter()
                .any(|m| entry.get(m).is_some())
            {
                skipped.push(format!("{label}: holds private key material"));
                continue;
            }
            match serde_json::from_value::<Jwk>(entry) {
                Ok(jwk) => match trusted_key(&jwk) {
                    Ok(key) => keys.push(key),
                    Err(why) => skipped.push(format!("{label}: {why}")),
                },
                Err(e) => skipped.push(format!("{label}: {e}")),
            }
        }
        Self::from_parts(keys, skipped)
    }

    /// Builds a key set from already-parsed JWKs, skipping unusable ones as
    /// [`from_jwks_json`](Self::from_jwks_json) does.
    pub fn from_jwk_set(set: &JwkSet) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            match trusted_key(jwk) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    let label = jwk
                        .kid
                        .as_deref()
                        .map_or_else(|| format!("key #{i}"), |kid| format!("key {kid:?}"));
                    skipped.push(format!("{label}: {why}"));
                }
            }
        }
        Self::from_parts(keys, skipped)
    }

    /// Reads and parses the JWK Set file at `path`.
    pub fn from_jwks_file(path: &Path) -> Result<Self, AuthError> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
        Self::from_jwks_json(&json).map_err(|e| in_file(path, e))
    }

    /// A set of the one ES256 key `key`, under `kid`. Without a `kid` the key is tried for every
    /// ES256 token of its issuer whatever `kid` the token names, as a key read from a PEM file
    /// always was.
    pub fn from_es256_key(key: EcVerifyingKey, kid: Option<&str>) -> Self {
        Self {
            keys: vec![TrustedKey {
                kid: kid.map(str::to_owned),
                any_kid: kid.is_none(),
                key: PublicKey::Ec(key),
            }],
            skipped: Vec::new(),
        }
    }

    fn from_parts(keys: Vec<TrustedKey>, skipped: Vec<String>) -> Result<Self, AuthError> {
        if keys.is_empty() {
            let why = if skipped.is_empty() {
                "it lists no keys".to_owned()
            } else {
                skipped.join("; ")
            };
            return Err(AuthError::Key(format!(
                "JWK Set has no usable ES256 or RS256 signing key: {why}"
            )));
        }
        Ok(Self { keys, skipped })
    }

    /// Number of usable keys (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid` of each usable key, in published order.
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Why each skipped JWK was not used, e.g. `key "enc-1": use "enc" is not sig`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The keys a token with header `alg` and `kid` may be checked against.
    pub(crate) fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter().filter(move |k| k.accepts(alg, kid))
    }
}

fn in_file(path: &Path, e: AuthError) -> AuthError {
    match e {
        AuthError::Key(msg) => AuthError::Key(format!("{}: {msg}", path.display())),
        other => other,
    }
}

/// The verification key `jwk` describes, or why it is not usable.
fn trusted_key(jwk: &Jwk) -> Result<TrustedKey, String> {
    if let Some(key_use) = jwk.key_use.as_deref().filter(|u| *u != "sig") {
        return Err(format!("use {key_use:?} is not sig"));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("key_ops does not include verify".to_owned());
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| format!("alg {name:?} is not supported"))?,
        ),
    };
    let key = match jwk.kty.as_str() {
        "EC" => ec_key(jwk)?,
        "RSA" => rsa_key(jwk)?,
        other => return Err(format!("kty {other:?} is not supported")),
    };
    let key = TrustedKey {
        kid: jwk.kid.clone(),
        any_kid: false,
        key,
    };
    if let Some(alg) = alg
        && alg != key.algorithm()
    {
        return Err(format!("alg {} does not fit a {} key", alg.name(), jwk.kty));
    }
    Ok(key)
}

fn member<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, String> {
    value.as_deref().ok_or_else(|| format!("missing {name}"))
}

fn decode(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    KEY_B64
        .decode(member(value, name)?)
        .map_err(|_| format!("{name} is not base64url"))
}

fn coordinate(value: &Option<String>, name: &str) -> Result<p256::FieldBytes, String> {
    let bytes: [u8; 32] = decode(value, name)?
        .try_into()
        .map_err(|_| format!("{name} is not 32 bytes"))?;
    Ok(bytes.into())
}

fn ec_key(jwk: &Jwk) -> Result<PublicKey, String> {
    match jwk.crv.as_deref() {
        Some("P-256") => {}
        Some(crv) => return Err(format!("crv {crv:?} is not supported")),
        None => return Err("missing crv".to_owned()),
    }
    let x = coordinate(&jwk.x, "x")?;
    let y = coordinate(&jwk.y, "y")?;
    let point = p256::EncodedPoint::from_affine_coordinates(&x, &y, false);
    EcVerifyingKey::from_encoded_point(&point)
        .map(PublicKey::Ec)
        .map_err(|_| "x, y is not a point on P-256".to_owned())
}

fn rsa_key(jwk: &Jwk) -> Result<PublicKey, String> {
    // Leading zero octets are tolerated (some publishers keep the sign byte): the value counts.
    let n = BigUint::from_bytes_be(&decode(&jwk.n, "n")?);
    let e = BigUint::from_bytes_be(&decode(&jwk.e, "e")?);
    let bits = n.bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is below the {MIN_RSA_BITS}-bit minimum"
        ));
    }
    // Also bounds the modulus (4096 bits) and checks the exponent, so a hostile set cannot make
    // every verification expensive.
    let key = RsaPublicKey::new(n, e).map_err(|e| format!("RSA key: {e}"))?;
    let len = key.size();
    Ok(PublicKey::Rsa(
        Box::new(rsa::pkcs1v15::VerifyingKey::new(key)),
        len,
    ))
}

/// `key` as a public ES256 JWK under `kid`.
pub(crate) fn ec_jwk(key: &EcVerifyingKey, kid: &str) -> Jwk {
    let point = key.to_encoded_point(false);
    Jwk {
        kty: "EC".into(),
        kid: Some(kid.into()),
        alg: Some("ES256".into()),
        key_use: Some("sig".into()),
        crv: Some("P-256".into()),
        x: point.x().map(|x| B64.encode(x)),
        y: point.y().map(|y| B64.encode(y)),
        ..Jwk::default()
    }
}

/// `key` as a public RS256 JWK under `kid`.
pub(crate) fn rsa_jwk(key: &RsaPublicKey, kid: &str) -> Jwk {
    Jwk {
        kty: "RSA".into(),
        kid: Some(kid.into()),
        alg: Some("RS256".into()),
        key_use: Some("sig".into()),
        n: Some(B64.encode(key.n().to_bytes_be())),
        e: Some(B64.encode(key.e().to_bytes_be())),
        ..Jwk::default()
    }
}

/// An issuer's key set that can be replaced while verifiers use it: a [`JwksCache`] refresh
/// swaps a new set in, and verifications in flight keep the set they started with. Cloning shares
/// the same set.
///
/// [`JwksCache`]: crate::JwksCache
#[derive(Clone)]
pub struct SharedKeySet(Arc<RwLock<Arc<KeySet>>>);

impl SharedKeySet {
    /// A shared handle on `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(keys))))
    }

    /// The set in force now. The lock is held only to clone the `Arc`, so readers never wait on
    /// a refresh's network I/O.
    pub fn current(&self) -> Arc<KeySet> {
        // Neither critical section can panic half-way, so a poisoned lock still holds a whole set.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `keys` in force for every verifier sharing this handle.
    pub fn replace(&self, keys: KeySet) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }
}

impl From<KeySet> for SharedKeySet {
    fn from(keys: KeySet) -> Self {
        Self::new(keys)
    }
}

impl fmt::Debug for SharedKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedKeySet")
            .field(&self.current())
            .finish()
    }
}
