//! What the MLLP listener remembers: accepted messages' acknowledgements and dead letters.

use medledger_storage_api::{AcceptedMessage, DeadLetter, Hl7MessageLog, StoreError};

use crate::SqlStore;
use crate::dialect::{Bind, Dialect};
use crate::rows;

#[async_trait::async_trait]
impl<D: Dialect> Hl7MessageLog for SqlStore<D> {
    async fn accepted(
        &self,
        sender: &str,
        control_id: &str,
    ) -> Result<Option<AcceptedMessage>, StoreError> {
        self.optional::<rows::Accepted, _>(
            sqlx::query(
                "SELECT digest, ack FROM hl7_accepted WHERE sender = $1 AND control_id = $2",
            )
            .arg(sender)
            .arg(control_id),
        )
        .await
    }

    async fn record_accepted(
        &self,
        sender: &str,
        control_id: &str,
        accepted: &AcceptedMessage,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO hl7_accepted (sender, control_id, digest, ack, accepted_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sender, control_id) DO NOTHING",
            )
            .arg(sender)
            .arg(control_id)
            .arg(accepted.digest.as_str())
            .arg(accepted.ack.as_str())
            .arg(at_ms),
        )
        .await
    }

    async fn dead_letter(&self, l: &DeadLetter) -> Result<(), StoreError> {
        self.execute(
            sqlx::query(
                "INSERT INTO hl7_dead_letters (id, received_at_ms, sender, control_id, code, reason, sealed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(l.id.as_str())
            .arg(l.received_at_ms)
            .arg(l.sender.as_str())
            .arg(l.control_id.as_str())
            .arg(i32::from(l.code))
            .arg(l.reason.as_str())
            .arg(l.sealed.as_slice()),
        )
        .await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.all::<rows::DeadLetter, _>(
            sqlx::query(
                "SELECT id, received_at_ms, sender, control_id, code, reason, sealed \
                 FROM hl7_dead_letters ORDER BY seq DESC LIMIT $1",
            )
            .arg(i64::from(limit)),
        )
        .await
    }
}
