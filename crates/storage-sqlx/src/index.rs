//! The record index: versions, heads, and the write that commits them with their events and
//! audit rows.

use medledger_storage_api::{
    AuditRow, OutboxEvent, RecordHead, RecordIndex, StoreError, VersionRow, VersionWrite,
};

use crate::dialect::{Bind, Dialect, Outbox};
use crate::rows::{self, stored};
use crate::{Scalar, SqlStore, conflict_or, err, on, optional};

#[async_trait::async_trait]
impl<D: Dialect> RecordIndex for SqlStore<D> {
    async fn head(&self, resource_type: &str, id: &str) -> Result<Option<RecordHead>, StoreError> {
        self.optional::<rows::Head, _>(
            sqlx::query(
                "SELECT version, deleted, owner FROM record_heads WHERE resource_type = $1 AND id = $2",
            )
            .arg(resource_type)
            .arg(id),
        )
        .await
    }

    async fn version(
        &self,
        resource_type: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<VersionRow>, StoreError> {
        self.optional::<rows::Version, _>(
            sqlx::query(
                "SELECT * FROM record_versions WHERE resource_type = $1 AND id = $2 AND version = $3",
            )
            .arg(resource_type)
            .arg(id)
            .arg(stored(version)),
        )
        .await
    }

    async fn commit(
        &self,
        writes: &[VersionWrite],
        events: &[OutboxEvent],
        audit: &[AuditRow],
    ) -> Result<(), StoreError> {
        let mut tx = D::begin_write(&self.pool).await.map_err(err)?;
        let current = format!(
            "SELECT version FROM record_heads WHERE resource_type = $1 AND id = $2{}",
            D::FOR_UPDATE
        );
        let filing = if writes.len() == 1 {
            crate::search::Filing::Direct
        } else {
            crate::search::Filing::Pending
        };
        for w in writes {
            let r = &w.row;
            let found: Option<Scalar<i64>> = optional::<D, (i64,), _>(
                &mut tx,
                sqlx::query(sqlx::AssertSqlSafe(current.as_str()))
                    .arg(r.resource_type.as_str())
                    .arg(r.id.as_str()),
            )
            .await?;
            let found = found.map(|Scalar(v)| rows::int(v, "version")).transpose()?;
            if found != w.expected {
                return Err(StoreError::Conflict {
                    resource: r.key(),
                    expected: w.expected,
                    found,
                });
            }
            if let Some(criteria) = &w.unless {
                crate::search::require_no_match::<D>(&mut tx, criteria).await?;
            }
            // A concurrent writer that created this record first makes the insert fail.
            let lost_race = |e| {
                conflict_or(e, || StoreError::Conflict {
                    resource: r.key(),
                    expected: w.expected,
                    found: None,
                })
            };
            sqlx::query(
                "INSERT INTO record_versions (resource_type, id, version, cid, wrapped_key, owner, commitment, deleted, last_updated, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .arg(r.resource_type.as_str())
            .arg(r.id.as_str())
            .arg(stored(r.version))
            .arg(r.cid.as_deref())
            .arg(r.wrapped_key.as_slice())
            .arg(r.owner.as_str())
            .arg(r.commitment.as_ref().map(<[u8; 32]>::as_slice))
            .arg(r.deleted)
            .arg(r.last_updated.as_str())
            .arg(r.actor.as_str())
            .execute(on::<D>(&mut tx))
            .await
            .map_err(lost_race)?;
            // The tags of the version that is now current, and no others: a search finds a
            // record by what it says now, and a deleted record not at all. The previous
            // version's are the ones its tag list holds (a new record has none: a create that
            // lost a race failed above).
            if w.expected.is_some() {
                crate::search::retire_tags::<D>(&mut tx, &r.resource_type, &r.id).await?;
            }
            let head = format!(
                "INSERT INTO record_heads (resource_type, id, version, deleted, owner, rec) \
                 VALUES ($1, $2, $3, $4, $5, {}) \
                 ON CONFLICT (resource_type, id) DO UPDATE SET version = excluded.version, \
                 deleted = excluded.deleted, owner = excluded.owner \
                 RETURNING rec",
                D::NEXT_RECORD_NUMBER
            );
            // A new record is numbered; an existing one keeps its number.
            let rec: Scalar<i64> = sqlx::query(sqlx::AssertSqlSafe(head))
                .arg(r.resource_type.as_str())
                .arg(r.id.as_str())
                .arg(stored(r.version))
                .arg(r.deleted)
                .arg(r.owner.as_str())
                .fetch_one(on::<D>(&mut tx))
                .await
                .map_err(lost_race)
                .and_then(|row| {
                    <D::Db as crate::dialect::Decodes<(i64,)>>::decode(&row)
                        .map_err(err)?
                        .try_into()
                })?;
            crate::search::file_tags::<D>(&mut tx, rec.0, &w.tags, filing).await?;
        }
        crate::audit::insert::<D>(&mut tx, audit).await?;
        D::append_outbox(&mut tx, Outbox::Ingest, events)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn referenced_cids(&self) -> Result<Vec<String>, StoreError> {
        let cids: Vec<Scalar<String>> = self
            .all::<(String,), _>(sqlx::query(
                "SELECT cid FROM record_versions WHERE cid IS NOT NULL",
            ))
            .await?;
        Ok(cids.into_iter().map(|Scalar(c)| c).collect())
    }
}
