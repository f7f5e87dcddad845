//! `medledger reindex`: files every current version's blind search tags again, from its
//! ciphertext, under the current index key and parameter table (after a key rotation or a new
//! parameter). It runs beside a serving deployment: each record is re-tagged in its own
//! transaction, and only if its current version is still the one decrypted, so a write that
//! lands meanwhile (which files its own tags) is never overwritten.

use std::sync::Arc;

use medledger_blobstore::BlobStore;
use medledger_keys::OwnerKeys;
use medledger_search::IndexKey;
use medledger_storage_api::{CompartmentQuery, SearchIndex};

use super::read::decrypt;
use crate::QueryError;

/// Records' tags merged per transaction at the end.
const MERGE_BATCH: u32 = 2_000;

/// What a reindex did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reindexed {
    /// Records whose tags were filed again.
    pub records: usize,
    /// Records changed by a writer meanwhile (their writer filed their tags).
    pub overtaken: usize,
    /// Records whose owner key was erased (nothing left to index).
    pub erased: usize,
}

/// Re-tags every current record of `index` from the ciphertexts in `blobs`, under the keys
/// `keys` writes with (both generations during a rotation; the current one alone afterwards,
/// which drops the old generation's tags).
pub async fn reindex(
    index: Arc<dyn SearchIndex>,
    blobs: Arc<dyn BlobStore>,
    keys: OwnerKeys,
    mut progress: impl FnMut(&Reindexed),
) -> Result<Reindexed, QueryError> {
    let write_keys: Vec<IndexKey> = keys.search_write_keys();
    let mut done = Reindexed::default();
    let mut q = CompartmentQuery {
        limit: 500,
        ..CompartmentQuery::default()
    };
    loop {
        let rows = index.compartment(&q).await?;
        let exhausted = rows.len() < q.limit as usize;
        for row in rows {
            q.after = Some((row.resource_type.clone(), row.id.clone()));
            let opened = match decrypt(blobs.as_ref(), &keys, &row).await {
                Ok(o) => o,
                Err(QueryError::Gone(_)) => {
                    done.erased += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let value: serde_json::Value = serde_json::from_slice(&opened.body).map_err(|_| {
                QueryError::Integrity(format!("{} version {} is not JSON", row.key(), row.version))
            })?;
            let tags = medledger_search::index_tags(&write_keys, &row.resource_type, &value);
            if index
                .retag(&row.resource_type, &row.id, row.version, &tags)
                .await?
            {
                done.records += 1;
            } else {
                done.overtaken += 1;
            }
        }
        progress(&done);
        if exhausted {
            // Left pending, the new tags would be found too, but by scanning: merge them now,
            // whether or not a server is running to do it.
            while index.merge_pending(MERGE_BATCH).await? > 0 {}
            return Ok(done);
        }
    }
}
