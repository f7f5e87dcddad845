//! Envelope encryption (AES-256-GCM data keys wrapped by owner keys wrapped by a master key) and
//! salted commitments.
//!
//! Every stored resource version gets a fresh 256-bit data key and a random 96-bit nonce, so no
//! key ever approaches the 2^32-invocation limit of NIST SP 800-38D for random nonces except the
//! owner keys, which wrap one data key per version. The associated data binds the ciphertext to its
//! `type/id/version/owner`, so a ciphertext moved to another record (or another version of the same
//! record) fails to decrypt instead of being served as the wrong record.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Length of AES-GCM nonces.
const NONCE_LEN: usize = 12;
/// Length of commitment salts.
pub const SALT_LEN: usize = 32;
/// Magic prefix of a sealed version blob; the digit is the format version.
const BLOB_MAGIC: &[u8; 4] = b"MLE1";

/// Errors from key handling and decryption.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, wrong associated data, or altered ciphertext.
    #[error("ciphertext failed authentication")]
    Authentication,
    /// The input is not in the expected format.
    #[error("malformed sealed data: {0}")]
    Malformed(&'static str),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A 256-bit secret key, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// A fresh random key from the OS generator.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key bytes (for wrapping only).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        // From the slice directly, so no un-wiped copy of the key is made on the way.
        Aes256Gcm::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("the key is 32 bytes"))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Encrypts `plaintext` under `key` with `aad`; output is `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption only fails for inputs beyond 64 GiB, which body limits rule out.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Reverses [`seal`].
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed("shorter than nonce and tag"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::Malformed("nonce"))?;
    key.cipher()
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication)
}

/// Wraps a key under another key (`aad` names what the wrapped key is for).
pub fn wrap_key(kek: &Key, aad: &[u8], key: &Key) -> Vec<u8> {
    seal(kek, aad, key.expose())
}

/// Reverses [`wrap_key`].
pub fn unwrap_key(kek: &Key, aad: &[u8], wrapped: &[u8]) -> Result<Key, CryptoError> {
    let raw = open(kek, aad, wrapped)?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Malformed("wrapped key is not 32 bytes"))?;
    Ok(Key::from_bytes(bytes))
}

/// Associated data binding a stored version to its identity and owner.
pub fn version_aad(resource_type: &str, id: &str, version: u64, owner: &str) -> Vec<u8> {
    format!("medledger/v1/{resource_type}/{id}/_history/{version}/owner/{owner}").into_bytes()
}

/// Associated data for an owner key wrapped by the master key.
pub fn owner_key_aad(owner: &str) -> Vec<u8> {
    format!("medledger/v1/owner-key/{owner}").into_bytes()
}

/// One encrypted resource version as stored: the blob goes to the blob store, the wrapped data key
/// to the index.
#[derive(Debug, Clone)]
pub struct SealedVersion {
    /// `MLE1 ‖ nonce ‖ AES-256-GCM(data key, salt ‖ body)`.
    pub blob: Vec<u8>,
    /// The data key wrapped by the owner key (same associated data).
    pub wrapped_data_key: Vec<u8>,
}

/// A decrypted version: the commitment salt and the stored resource bytes.
pub struct OpenedVersion {
    /// Salt of the leaf commitment.
    pub salt: [u8; SALT_LEN],
    /// Canonical JSON of the stored resource.
    pub body: Zeroizing<Vec<u8>>,
}

/// Encrypts a resource version under a fresh data key. The commitment salt travels inside the
/// ciphertext, so destroying the keys also destroys the ability to test guesses against the
/// on-chain commitment.
pub fn seal_version(
    owner_key: &Key,
    aad: &[u8],
    salt: &[u8; SALT_LEN],
    body: &[u8],
) -> SealedVersion {
    let data_key = Key::generate();
    let mut plain = Zeroizing::new(Vec::with_capacity(SALT_LEN + body.len()));
    plain.extend_from_slice(salt);
    plain.extend_from_slice(body);
    let mut blob = Vec::with_capacity(BLOB_MAGIC.len() + NONCE_LEN + plain.len() + 16);
    blob.extend_from_slice(BLOB_MAGIC);
    blob.extend_from_slice(&seal(&data_key, aad, &plain));
    SealedVersion {
        blob,
        wrapped_data_key: wrap_key(owner_key, aad, &data_key),
    }
}

/// Decrypts a version sealed by [`seal_version`].
pub fn open_version(
    owner_key: &Key,
    aad: &[u8],
    blob: &[u8],
    wrapped_data_key: &[u8],
) -> Result<OpenedVersion, CryptoError> {
    let sealed = blob
        .strip_prefix(BLOB_MAGIC.as_slice())
        .ok_or(CryptoError::Malformed("unknown blob format"))?;
    let data_key = unwrap_key(owner_key, aad, wrapped_data_key)?;
    let plain = open(&data_key, aad, sealed)?;
    if plain.len() < SALT_LEN {
        return Err(CryptoError::Malformed("plaintext shorter than salt"));
    }
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&plain[..SALT_LEN]);
    Ok(OpenedVersion {
        salt,
        body: Zeroizing::new(plain[SALT_LEN..].to_vec()),
    })
}

/// A fresh random commitment salt.
pub fn new_salt() -> [u8; SALT_LEN] {
    let mut s = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// `HMAC-SHA256(salt, data)`: a commitment that reveals nothing about `data` without the salt.
pub fn commitment(salt: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(salt).unwrap_or_else(|_| unreachable_hmac());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 accepts keys of every length")
}

/// Loads the 32-byte key in `path`, creating it (mode 0600) if absent.
pub fn load_or_create_key_file(path: &Path) -> Result<Key, CryptoError> {
    let err = |source| CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "key file must hold exactly 32 bytes",
                ))
            })?;
            Ok(Key::from_bytes(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let tmp = path.with_extension("tmp");
            {
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp).map_err(err)?;
                f.write_all(key.expose()).map_err(err)?;
                f.sync_all().map_err(err)?;
            }
            // Rename makes creation atomic: a crash never leaves a short key file behind.
            std::fs::rename(&tmp, path).map_err(err)?;
            if let Some(dir) = path.parent() {
                // The rename is durable only once the directory entry is.
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err)?;
            }
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trip() {
        let owner = Key::generate();
        let aad = version_aad("Observation", "o1", 1, "Patient/p1");
        let salt = new_salt();
        let sealed = seal_version(&owner, &aad, &salt, b"{\"resourceType\":\"Observation\"}");
        let opened =
            open_version(&owner, &aad, &sealed.blob, &sealed.wrapped_data_key).expect("opens");
        assert_eq!(opened.salt, salt);
        assert_eq!(
            opened.body.as_slice(),
            b"{\"resourceType\":\"Observation\"}"
        );
    }

    #[test]
    fn wrong_aad_wrong_key_and_flipped_bytes_are_rejected() {
        let owner = Key::generate();
        let aad = version_aad("Observation", "o1", 1, "Patient/p1");
        let sealed = seal_version(&owner, &aad, &new_salt(), b"secret");
        let other_aad = version_aad("Observation", "o1", 2, "Patient/p1");
        assert!(matches!(
            open_version(&owner, &other_aad, &sealed.blob, &sealed.wrapped_data_key),
            Err(CryptoError::Authentication)
        ));
        assert!(
            open_version(
                &Key::generate(),
                &aad,
                &sealed.blob,
                &sealed.wrapped_data_key
            )
            .is_err()
        );
        for i in 0..sealed.blob.len() {
            let mut b = sealed.blob.clone();
            b[i] ^= 0x01;
            assert!(
                open_version(&owner, &aad, &b, &sealed.wrapped_data_key).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn ciphertext_does_not_contain_plaintext() {
        let owner = Key::generate();
        let body = b"Patient Jane Doe born 1970-01-01 Patient Jane Doe";
        let sealed = seal_version(&owner, b"aad", &new_salt(), body);
        assert!(
            !sealed
                .blob
                .windows(8)
                .any(|w| body.windows(8).any(|b| b == w))
        );
    }

    #[test]
    fn commitment_depends_on_salt_and_data() {
        let (a, b) = (new_salt(), new_salt());
        assert_ne!(commitment(&a, b"x"), commitment(&b, b"x"));
        assert_ne!(commitment(&a, b"x"), commitment(&a, b"y"));
        assert_eq!(commitment(&a, b"x"), commitment(&a, b"x"));
        // RFC 4231 test case 2.
        let mac = commitment(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("mlkey-{}", std::process::id()));
        let path = dir.join("master.key");
        let k1 = load_or_create_key_file(&path).expect("create");
        let k2 = load_or_create_key_file(&path).expect("load");
        assert_eq!(k1.expose(), k2.expose());
        assert_eq!(format!("{k1:?}"), "Key(<redacted>)");
        std::fs::remove_dir_all(dir).ok();
    }
}
