//! The consent service's state: accounts with their roles, and every version of every Consent.

use medledger_storage_api::{AccountRow, ConsentRow, ConsentStore, StoreError};

use crate::dialect::{Bind, Dialect};
use crate::rows::{self, stored};
use crate::{Scalar, SqlStore, conflict_or, err, execute, now_ms, optional, salt};

#[async_trait::async_trait]
impl<D: Dialect> ConsentStore for SqlStore<D> {
    async fn account(&self, account: &str) -> Result<Option<AccountRow>, StoreError> {
        self.optional::<rows::Account, _>(
            sqlx::query("SELECT account, role, verified FROM consent_accounts WHERE account = $1")
                .arg(account),
        )
        .await
    }

    async fn put_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        // A change that changes something is queued for the chain (a new revision).
        self.execute(
            sqlx::query(
                "INSERT INTO consent_accounts (account, role, verified, salt, revision, changed_at) \
                 VALUES ($1, $2, $3, $4, 1, $5) \
                 ON CONFLICT (account) DO UPDATE SET role = excluded.role, verified = excluded.verified, \
                 revision = consent_accounts.revision + 1, changed_at = excluded.changed_at \
                 WHERE consent_accounts.role <> excluded.role \
                 OR consent_accounts.verified <> excluded.verified",
            )
            .arg(row.account.as_str())
            .arg(row.role.as_str())
            .arg(row.verified)
            .arg(salt().as_slice())
            .arg(now_ms()),
        )
        .await
    }

    async fn ensure_account(&self, account: &str, role: &str) -> Result<AccountRow, StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO consent_accounts (account, role, verified, salt, revision, changed_at) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (account) DO NOTHING",
            )
            .arg(account)
            .arg(role)
            .arg(false)
            .arg(salt().as_slice())
            .arg(now_ms()),
        )
        .await?;
        self.account(account)
            .await?
            .ok_or_else(|| StoreError::Unavailable("account vanished after insert".into()))
    }

    async fn consents_of(&self, patient: &str) -> Result<Vec<ConsentRow>, StoreError> {
        self.all::<rows::Consent, _>(
            sqlx::query(
                "SELECT v.* FROM consent_versions v WHERE v.patient = $1 AND v.version = \
                 (SELECT MAX(w.version) FROM consent_versions w WHERE w.id = v.id)",
            )
            .arg(patient),
        )
        .await
    }

    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>, StoreError> {
        self.optional::<rows::Consent, _>(
            sqlx::query(
                "SELECT * FROM consent_versions WHERE id = $1 ORDER BY version DESC LIMIT 1",
            )
            .arg(id),
        )
        .await
    }

    async fn put_consent(&self, row: &ConsentRow, expected: Option<u64>) -> Result<(), StoreError> {
        let conflict = |found| StoreError::Conflict {
            resource: format!("Consent/{}", row.id),
            expected,
            found,
        };
        let mut tx = D::begin_write(&self.pool).await.map_err(err)?;
        let latest = format!(
            "SELECT version FROM consent_versions WHERE id = $1 ORDER BY version DESC LIMIT 1{}",
            D::FOR_UPDATE
        );
        let found: Option<Scalar<i64>> = optional::<D, (i64,), _>(
            &mut tx,
            sqlx::query(sqlx::AssertSqlSafe(latest)).arg(row.id.as_str()),
        )
        .await?;
        let found = found.map(|Scalar(v)| rows::int(v, "version")).transpose()?;
        if found != expected {
            return Err(conflict(found));
        }
        execute::<D>(
            &mut tx,
            sqlx::query(
                "INSERT INTO consent_subjects (id, salt) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .arg(row.id.as_str())
            .arg(salt().as_slice()),
        )
        .await?;
        // `seq` (the order the registrar follows) is assigned by the database.
        sqlx::query(
            "INSERT INTO consent_versions \
             (id, version, patient, status, resource, actor, recorded_at_ms, salt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(row.id.as_str())
        .arg(stored(row.version))
        .arg(row.patient.as_str())
        .arg(row.status.as_str())
        .arg(row.resource.as_slice())
        .arg(row.actor.as_str())
        .arg(row.recorded_at_ms)
        .arg(salt().as_slice())
        .execute(crate::on::<D>(&mut tx))
        .await
        // Two creators of one new id: the primary key decides, the loser sees a conflict.
        .map_err(|e| conflict_or(e, || conflict(Some(row.version))))?;
        tx.commit().await.map_err(err)
    }
}
