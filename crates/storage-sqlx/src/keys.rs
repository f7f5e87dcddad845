//! Owner keys, each wrapped by the master key.

use medledger_storage_api::{OwnerKeyStore, StoreError};

use crate::dialect::{Bind, Dialect};
use crate::{Scalar, SqlStore};

#[async_trait::async_trait]
impl<D: Dialect> OwnerKeyStore for SqlStore<D> {
    async fn wrapped_owner_key(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key: Option<Scalar<Vec<u8>>> = self
            .optional::<(Vec<u8>,), _>(
                sqlx::query("SELECT wrapped FROM owner_keys WHERE owner = $1").arg(owner),
            )
            .await?;
        Ok(key.map(|Scalar(k)| k))
    }

    async fn insert_owner_key(&self, owner: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO owner_keys (owner, wrapped) VALUES ($1, $2) ON CONFLICT (owner) DO NOTHING",
            )
            .arg(owner)
            .arg(wrapped),
        )
        .await?;
        // The first key stored wins, so racing creators end up using the same key.
        self.wrapped_owner_key(owner)
            .await?
            .ok_or_else(|| StoreError::Unavailable("an owner key vanished after its insert".into()))
    }
}
