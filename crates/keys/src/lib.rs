//! Key management: the master key, per-owner keys wrapped by it, owner pseudonyms and the blind
//! search index key.
//!
//! Owner keys are created on first use and stored wrapped by the master key; unwrapped keys are
//! cached in memory so the hot path costs one AES-GCM unwrap per owner per process lifetime.
//! Deleting an owner's wrapped key (erasure) makes all of that owner's ciphertexts unreadable.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use medledger_crypto::{Key, commitment, owner_key_aad, unwrap_key, wrap_key};
use medledger_error::Categorized;
use medledger_storage_api::{OwnerKeyStore, StoreError};
use tokio::sync::RwLock;

/// Owner label of the master key's check value; never a Patient or Organization label.
const MASTER_CHECK_OWNER: &str = "MasterKeyCheck";

/// Key handling failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wrapped key did not unwrap under the master key (tampering or the wrong master key).
    #[error("owner key for {0} does not unwrap under the master key")]
    Unwrap(String),
    /// The master key file could not be read or created.
    #[error(transparent)]
    Master(#[from] medledger_crypto::CryptoError),
}

impl Categorized for KeyError {
    fn category(&self) -> medledger_error::Category {
        use medledger_error::Category;
        match self {
            Self::Store(e) => e.category(),
            Self::Unwrap(_) => Category::Integrity,
            Self::Master(_) => Category::Internal,
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            Self::Store(e) => e.diagnostics(),
            Self::Unwrap(_) => format!("integrity check failed: {self}"),
            Self::Master(_) => "key material unavailable".to_owned(),
        }
    }
}

/// Where the master key comes from. The embedded form reads a file in the data dir; a KMS-backed
/// implementation fits the same shape.
pub trait MasterKeySource: Send + Sync + 'static {
    /// The master key.
    fn master_key(&self) -> &Key;
}

/// A master key kept in a file (mode 0600) in the data dir.
#[derive(Debug, Clone)]
pub struct FileMasterKey(Key);

impl FileMasterKey {
    /// Loads the key at `path`, which must exist (distributed mode: a mounted secret; creating
    /// a key there would silently make every stored owner key unreadable).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        if !path.is_file() {
            return Err(KeyError::Master(medledger_crypto::CryptoError::KeyFile {
                path: path.display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            }));
        }
        Self::load_or_create(path)
    }

    /// Loads `path`, creating a fresh key there if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        Ok(Self(medledger_crypto::load_or_create_key_file(path)?))
    }
}

impl MasterKeySource for FileMasterKey {
    fn master_key(&self) -> &Key {
        &self.0
    }
}

/// Resolves owner labels to owner keys, creating them on first use.
#[derive(Clone)]
pub struct OwnerKeys {
    store: Arc<dyn OwnerKeyStore>,
    master: Arc<dyn MasterKeySource>,
    cache: Arc<RwLock<HashMap<String, Key>>>,
    pseudonym_key: Key,
    index: medledger_search::IndexGenerations,
}

impl std::fmt::Debug for OwnerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerKeys").finish_non_exhaustive()
    }
}

impl OwnerKeys {
    /// A resolver over a store and a master key.
    pub fn new(store: Arc<dyn OwnerKeyStore>, master: Arc<dyn MasterKeySource>) -> Self {
        // A separate key for pseudonyms, derived so it needs no storage of its own.
        let pseudonym_key = Key::from_bytes(commitment(
            master.master_key().expose(),
            b"medledger/v1/pseudonym-key",
        ));
        Self {
            store,
            master,
            cache: Arc::default(),
            pseudonym_key,
            index: medledger_search::IndexGenerations::default(),
        }
    }

    /// The same keys with the search index at `generations` (the `search_key` section).
    pub fn with_index_generations(
        mut self,
        generations: medledger_search::IndexGenerations,
    ) -> Self {
        self.index = generations;
        self
    }

    /// Which search index keys are in use.
    pub fn index_generations(&self) -> medledger_search::IndexGenerations {
        self.index
    }

    /// The key of `owner`, creating and storing it if it does not exist.
    pub async fn get_or_create(&self, owner: &str) -> Result<Key, KeyError> {
        if let Some(k) = self.cache.read().await.get(owner) {
            return Ok(k.clone());
        }
        let aad = owner_key_aad(owner);
        let wrapped = match self.store.wrapped_owner_key(owner).await? {
            Some(w) => w,
            None => {
                let fresh = Key::generate();
                let w = wrap_key(self.master.master_key(), &aad, &fresh);
                // The store keeps the first key written, so racing creators converge on one key.
                self.store.insert_owner_key(owner, &w).await?
            }
        };
        let key = unwrap_key(self.master.master_key(), &aad, &wrapped)
            .map_err(|_| KeyError::Unwrap(owner.to_owned()))?;
        self.cache
            .write()
            .await
            .insert(owner.to_owned(), key.clone());
        Ok(key)
    }

    /// Checks that the master key is the one this data dir's owner keys were wrapped with.
    ///
    /// A sentinel key is wrapped under the master key the first time; afterwards it must unwrap.
    /// Without this, a missing or replaced master key file would silently become a fresh key and
    /// every existing record would turn unreadable while new ones were written under the new key.
    pub async fn check_master_key(&self) -> Result<(), KeyError> {
        self.get_or_create(MASTER_CHECK_OWNER).await.map(|_| ())
    }

    /// The key of `owner` if one exists (reads never create keys).
    pub async fn get(&self, owner: &str) -> Result<Option<Key>, KeyError> {
        if let Some(k) = self.cache.read().await.get(owner) {
            return Ok(Some(k.clone()));
        }
        let Some(wrapped) = self.store.wrapped_owner_key(owner).await? else {
            return Ok(None);
        };
        let key = unwrap_key(self.master.master_key(), &owner_key_aad(owner), &wrapped)
            .map_err(|_| KeyError::Unwrap(owner.to_owned()))?;
        self.cache
            .write()
            .await
            .insert(owner.to_owned(), key.clone());
        Ok(Some(key))
    }

    /// The key searches use, of the current generation, derived from the master key (apart from
    /// every data key).
    pub fn search_index_key(&self) -> medledger_search::IndexKey {
        medledger_search::IndexKey::derive(self.master.master_key(), self.index.generation)
    }

    /// The keys writes file tags under: the current generation's and, during a rotation, the
    /// next one's.
    pub fn search_write_keys(&self) -> Vec<medledger_search::IndexKey> {
        self.index
            .written()
            .into_iter()
            .map(|g| medledger_search::IndexKey::derive(self.master.master_key(), g))
            .collect()
    }

    /// Keyed pseudonym of an owner (hex): the bus partition key, so event streams never carry
    /// patient ids in clear.
    pub fn pseudonym(&self, owner: &str) -> String {
        hex::encode(commitment(self.pseudonym_key.expose(), owner.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_created_once_and_survive_a_new_resolver() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(
            medledger_storage_sqlx::SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("db"),
        );
        let master = Arc::new(
            FileMasterKey::load_or_create(&dir.path().join("master.key")).expect("master"),
        );
        let keys = OwnerKeys::new(store.clone(), master.clone());
        assert!(keys.get("Patient/a").await.expect("get").is_none());
        let a = keys.get_or_create("Patient/a").await.expect("create");
        let b = keys.get_or_create("Patient/b").await.expect("create");
        assert_ne!(a.expose(), b.expose());
        let fresh = OwnerKeys::new(store.clone(), master.clone());
        assert_eq!(
            fresh
                .get("Patient/a")
                .await
                .expect("get")
                .expect("exists")
                .expose(),
            a.expose()
        );
        assert_eq!(keys.pseudonym("Patient/a"), fresh.pseudonym("Patient/a"));
        assert_ne!(keys.pseudonym("Patient/a"), keys.pseudonym("Patient/b"));
        // The wrong master key cannot unwrap.
        let other =
            Arc::new(FileMasterKey::load_or_create(&dir.path().join("other.key")).expect("master"));
        assert!(matches!(
            OwnerKeys::new(store, other).get("Patient/a").await,
            Err(KeyError::Unwrap(_))
        ));
    }
}
