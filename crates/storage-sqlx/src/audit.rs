//! The audit trail: append-only AuditEvent rows and their ledger events.

use medledger_storage_api::{AuditFilter, AuditRow, AuditStore, OutboxEvent, StoreError};
use sqlx::Database;

use crate::dialect::{Bind, Dialect, Outbox};
use crate::rows;
use crate::{SqlStore, err, execute};

/// Inserts audit rows in a caller's transaction (a second insert of a stored id is ignored, so
/// a retried request cannot fork an event).
pub(crate) async fn insert<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    for r in rows {
        execute::<D>(
            tx,
            sqlx::query(
                "INSERT INTO audit_events (id, recorded_at_ms, patient, actor, outcome, resource, salt) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .arg(r.id.as_str())
            .arg(r.recorded_at_ms)
            .arg(r.patient.as_deref())
            .arg(r.actor.as_str())
            .arg(r.outcome.as_str())
            .arg(r.resource.as_slice())
            .arg(r.salt.as_slice()),
        )
        .await?;
        for p in &r.also_about {
            execute::<D>(
                tx,
                sqlx::query(
                    "INSERT INTO audit_event_patients (patient, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .arg(p.as_str())
                .arg(r.id.as_str()),
            )
            .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl<D: Dialect> AuditStore for SqlStore<D> {
    async fn record_audit(
        &self,
        rows: &[AuditRow],
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut tx = D::begin_write(&self.pool).await.map_err(err)?;
        insert::<D>(&mut tx, rows).await?;
        D::append_outbox(&mut tx, Outbox::Audit, events)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.all::<rows::Audit, _>(
            sqlx::query(
                "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit_events \
                 WHERE ($1 IS NULL OR patient = $1 \
                        OR id IN (SELECT event_id FROM audit_event_patients WHERE patient = $1)) AND ($2 IS NULL OR actor = $2) \
                   AND ($3 IS NULL OR recorded_at_ms >= $3) \
                 ORDER BY seq DESC LIMIT $4",
            )
            .arg(f.patient.as_deref())
            .arg(f.actor.as_deref())
            .arg(f.since_ms)
            .arg(i64::from(f.limit)),
        )
        .await
    }

    async fn audit_event(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        self.optional::<rows::Audit, _>(
            sqlx::query(
                "SELECT id, recorded_at_ms, patient, actor, outcome, resource, salt FROM audit_events WHERE id = $1",
            )
            .arg(id),
        )
        .await
    }
}
