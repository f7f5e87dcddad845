//! Practitioners' access requests, decided by the patient.

use medledger_storage_api::{AccessRequestRow, AccessRequestStore, StoreError};

use crate::dialect::{Bind, Dialect};
use crate::rows;
use crate::{Scalar, SqlStore, conflict_or};

#[async_trait::async_trait]
impl<D: Dialect> AccessRequestStore for SqlStore<D> {
    async fn put_request(&self, row: &AccessRequestRow) -> Result<(), StoreError> {
        let mut c = self.pool.acquire().await.map_err(crate::err)?;
        sqlx::query(
            "INSERT INTO consent_access_requests (id, requester, patient, purpose, period_start, period_end, status, consent, requested_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .arg(row.id.as_str())
        .arg(row.requester.as_str())
        .arg(row.patient.as_str())
        .arg(row.purpose.as_str())
        .arg(row.start)
        .arg(row.end)
        .arg(row.status.as_str())
        .arg(row.consent.as_deref())
        .arg(row.requested_at_ms)
        .execute(crate::on::<D>(&mut c))
        .await
        .map_err(|e| {
            conflict_or(e, || StoreError::Conflict {
                resource: format!("access request {}", row.id),
                expected: None,
                found: Some(1),
            })
        })?;
        Ok(())
    }

    async fn request(&self, id: &str) -> Result<Option<AccessRequestRow>, StoreError> {
        self.optional::<rows::AccessRequest, _>(
            sqlx::query("SELECT * FROM consent_access_requests WHERE id = $1").arg(id),
        )
        .await
    }

    async fn requests_for(&self, patient: &str) -> Result<Vec<AccessRequestRow>, StoreError> {
        self.all::<rows::AccessRequest, _>(
            sqlx::query(
                "SELECT * FROM consent_access_requests WHERE patient = $1 ORDER BY requested_at_ms, id",
            )
            .arg(patient),
        )
        .await
    }

    async fn decide_request(
        &self,
        id: &str,
        status: &str,
        consent: Option<&str>,
    ) -> Result<(), StoreError> {
        // Only a pending request is decided; RETURNING tells whether this call decided it.
        let decided: Option<Scalar<String>> = self
            .optional::<(String,), _>(
                sqlx::query(
                    "UPDATE consent_access_requests SET status = $1, consent = $2 \
                     WHERE id = $3 AND status = 'pending' RETURNING id",
                )
                .arg(status)
                .arg(consent)
                .arg(id),
            )
            .await?;
        match decided {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict {
                resource: format!("access request {id}"),
                expected: None,
                found: None,
            }),
        }
    }
}
