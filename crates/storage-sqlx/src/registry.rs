//! The registrar's queue: role and consent changes to commit to the chain, kept beside the
//! consent store's rows (a change is queued by the transaction that stores it).

use medledger_storage_api::{AccountRegistration, ConsentRegistration, RegistryQueue, StoreError};

use crate::SqlStore;
use crate::dialect::{Bind, Dialect};
use crate::rows::{self, stored};

#[async_trait::async_trait]
impl<D: Dialect> RegistryQueue for SqlStore<D> {
    async fn unregistered_accounts(
        &self,
        limit: u32,
    ) -> Result<Vec<AccountRegistration>, StoreError> {
        self.all::<rows::AccountRegistration, _>(
            sqlx::query(
                "SELECT * FROM consent_accounts WHERE registered_revision < revision \
                 ORDER BY changed_at, account LIMIT $1",
            )
            .arg(i64::from(limit)),
        )
        .await
    }

    async fn account_registered(&self, account: &str, revision: u64) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "UPDATE consent_accounts SET registered_revision = $1 \
                 WHERE account = $2 AND registered_revision < $1",
            )
            .arg(stored(revision))
            .arg(account),
        )
        .await
    }

    async fn account_registration(
        &self,
        account: &str,
    ) -> Result<Option<AccountRegistration>, StoreError> {
        self.optional::<rows::AccountRegistration, _>(
            sqlx::query("SELECT * FROM consent_accounts WHERE account = $1").arg(account),
        )
        .await
    }

    async fn unregistered_consents(
        &self,
        limit: u32,
    ) -> Result<Vec<ConsentRegistration>, StoreError> {
        self.all::<rows::ConsentRegistration, _>(
            sqlx::query(
                "SELECT v.*, s.salt AS subject_salt FROM consent_versions v \
                 JOIN consent_subjects s ON s.id = v.id \
                 WHERE v.registration IS NULL ORDER BY v.seq LIMIT $1",
            )
            .arg(i64::from(limit)),
        )
        .await
    }

    async fn consent_registered(
        &self,
        id: &str,
        version: u64,
        registration: &[u8],
    ) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "UPDATE consent_versions SET registration = $1 WHERE id = $2 AND version = $3",
            )
            .arg(registration)
            .arg(id)
            .arg(stored(version)),
        )
        .await
    }

    async fn consent_registration(
        &self,
        id: &str,
        version: u64,
    ) -> Result<Option<ConsentRegistration>, StoreError> {
        self.optional::<rows::ConsentRegistration, _>(
            sqlx::query(
                "SELECT v.*, s.salt AS subject_salt FROM consent_versions v \
                 JOIN consent_subjects s ON s.id = v.id \
                 WHERE v.id = $1 AND v.version = $2",
            )
            .arg(id)
            .arg(stored(version)),
        )
        .await
    }
}
