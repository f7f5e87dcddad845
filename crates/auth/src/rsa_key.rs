//! RS256 token minting, for tests and dev setups that stand in for an external RSA issuer.

use std::fmt;

use rsa::pkcs1v15::SigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use crate::{AuthError, Claims, Jwk};

/// An RSA signing key that mints RS256 tokens. Meant for tests and dev: MedLedger's own issuer
/// signs ES256 ([`IssuerKey`](crate::IssuerKey)).
#[derive(Clone)]
pub struct RsaIssuerKey {
    key: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl fmt::Debug for RsaIssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaIssuerKey")
            .field(
                "bits",
                &(rsa::traits::PublicKeyParts::size(&self.public) * 8),
            )
            .finish_non_exhaustive()
    }
}

impl RsaIssuerKey {
    /// A fresh key with a `bits`-bit modulus (exponent 65537). Sizes below
    /// [`MIN_RSA_BITS`](crate::MIN_RSA_BITS) are allowed so that tests can check they are refused.
    pub fn generate(bits: usize) -> Result<Self, AuthError> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
            .map_err(|e| AuthError::Key(format!("RSA key generation: {e}")))?;
        let public = private.to_public_key();
        Ok(Self {
            key: SigningKey::new(private),
            public,
        })
    }

    /// The public half as a JWK (`kty` RSA, `alg` RS256, `use` sig) under `kid`.
    pub fn jwk(&self, kid: &str) -> Jwk {
        crate::jwk::rsa_jwk(&self.public, kid)
    }

    /// Signs `claims` as an RS256 compact JWS, with `kid` in the header when given.
    pub fn sign(&self, claims: &Claims, kid: Option<&str>) -> String {
        crate::compact_jws("RS256", kid, claims, |input| {
            // The randomised signer blinds the private-key operation against timing attacks.
            self.key
                .sign_with_rng(&mut rand::rngs::OsRng, input)
                .to_vec()
        })
    }
}
