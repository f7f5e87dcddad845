//! For tests: a throwaway PostgreSQL database per test, and checks of guarantees this crate
//! makes beyond the port contracts, run against both backends.
//!
//! The server comes from `MEDLEDGER_TEST_POSTGRES_URL` (default: the local server with trust
//! auth, `postgres://postgres@127.0.0.1:5432/test`; `make test` starts one if none is running).
//! An unreachable server panics: nothing is skipped.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use sqlx::{Connection, PgConnection};

pub fn admin_url() -> String {
    std::env::var("MEDLEDGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh database; dropped when the guard is.
pub struct TempDb {
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TempDb {
    pub async fn new() -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        let name = format!("medledger_test_{:032x}", rand::random::<u128>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_owned();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_db(self) {
        let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// A row whose bytes cannot be what the port promises (a commitment or root that is not 32
/// bytes) is [`StoreError::Corrupt`]: an integrity failure, never a retryable "unavailable".
pub async fn corrupt_rows_are_their_own_error<D: crate::Dialect>(store: &crate::SqlStore<D>) {
    use crate::dialect::Bind;
    use medledger_storage_api::{
        LedgerStore, RecordIndex, StoreError, TreeHeadRow, VersionRow, VersionWrite,
    };
    let row = VersionRow {
        resource_type: "Observation".into(),
        id: "corrupt".into(),
        version: 1,
        cid: Some("bafycorrupt".into()),
        wrapped_key: vec![1],
        owner: "Patient/p".into(),
        commitment: Some([7; 32]),
        deleted: false,
        last_updated: "2026-01-01T00:00:00.000Z".into(),
        actor: "Practitioner/x".into(),
    };
    store
        .commit(
            &[VersionWrite {
                row,
                expected: None,
                tags: Vec::new(),
                unless: None,
            }],
            &[],
            &[],
        )
        .await
        .unwrap();
    store
        .insert_tree_head(&TreeHeadRow {
            tree_size: 1,
            root: [1; 32],
            chain_id: 1,
            contract: "0x".into(),
            chain_index: 0,
            block_number: 1,
            block_hash: "0x".into(),
            tx_hash: "0x".into(),
        })
        .await
        .unwrap();
    let mut c = store.pool().acquire().await.unwrap();
    for damage in [
        "UPDATE record_versions SET commitment = $1 WHERE id = 'corrupt'",
        "UPDATE ledger_tree_heads SET root = $1",
    ] {
        sqlx::query::<D::Db>(damage)
            .arg(&[0u8; 16][..])
            .execute(crate::on::<D>(&mut c))
            .await
            .unwrap();
    }
    let read = store.version("Observation", "corrupt", 1).await;
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    let head = store.latest_tree_head().await;
    assert!(matches!(head, Err(StoreError::Corrupt(_))), "{head:?}");
}

/// Seeds a store migrated up to 0011, whose tag rows name their record by type and id: two
/// Observations, `a` tagged 1 and 2, `b` tagged 2 and 3 (a tag `n` is sixteen bytes `n`).
pub async fn seed_tags_named_by_id<D: crate::Dialect>(pool: &sqlx::Pool<D::Db>) {
    use crate::dialect::Bind;
    let mut c = pool.acquire().await.unwrap();
    for (id, tags) in [("a", [1u8, 2]), ("b", [2, 3])] {
        let packed: Vec<u8> = tags.iter().flat_map(|t| [*t; 16]).collect();
        sqlx::query::<D::Db>(
            "INSERT INTO record_versions (resource_type, id, version, cid, wrapped_key, owner, \
             commitment, deleted, last_updated, actor) \
             VALUES ('Observation', $1, 1, 'bafyold', $2, 'Patient/p', $3, $4, $5, 'Practitioner/x')",
        )
        .arg(id)
        .arg(&[1u8][..])
        .arg(&[7u8; 32][..])
        .arg(false)
        .arg(format!("2026-01-01T00:00:0{}.000Z", tags[0]).as_str())
        .execute(crate::on::<D>(&mut c))
        .await
        .unwrap();
        sqlx::query::<D::Db>(
            "INSERT INTO record_heads (resource_type, id, version, deleted, owner, tags) \
             VALUES ('Observation', $1, 1, $2, 'Patient/p', $3)",
        )
        .arg(id)
        .arg(false)
        .arg(packed.as_slice())
        .execute(crate::on::<D>(&mut c))
        .await
        .unwrap();
        for t in tags {
            sqlx::query::<D::Db>(
                "INSERT INTO search_tags (tag, resource_type, id) VALUES ($1, 'Observation', $2)",
            )
            .arg(&[t; 16][..])
            .arg(id)
            .execute(crate::on::<D>(&mut c))
            .await
            .unwrap();
        }
    }
}

/// After the remaining migrations, the records [`seed_tags_named_by_id`] wrote are found by
/// their tags, an update replaces exactly its record's tags, and a new record's number is
/// nobody else's (it would otherwise turn up under the other record's tags).
pub async fn renumbered_tags_find_their_records<D: crate::Dialect>(store: &crate::SqlStore<D>) {
    use medledger_storage_api::{
        IndexQuery, IndexTag, RecordIndex, SearchIndex, VersionRow, VersionWrite,
    };
    let find = |all: &[u8], none: &[u8]| {
        let q = IndexQuery {
            resource_type: "Observation".into(),
            all_of: all.iter().map(|t| vec![[*t; 16]]).collect(),
            none_of: none.iter().map(|t| vec![[*t; 16]]).collect(),
            ids: None,
            owner: None,
            order: Default::default(),
            limit: 10,
        };
        async move {
            let mut ids: Vec<String> = store
                .search(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(find(&[1], &[]).await, ["a"]);
    assert_eq!(find(&[2], &[]).await, ["a", "b"]);
    assert_eq!(find(&[2, 3], &[]).await, ["b"]);
    let write = |id: &str, version: u64, tags: &[u8]| VersionWrite {
        row: VersionRow {
            resource_type: "Observation".into(),
            id: id.into(),
            version,
            cid: Some("bafynew".into()),
            wrapped_key: vec![1],
            owner: "Patient/p".into(),
            commitment: Some([7; 32]),
            deleted: false,
            last_updated: format!("2026-02-01T00:00:0{version}.000Z"),
            actor: "Practitioner/x".into(),
        },
        expected: version.checked_sub(1).filter(|v| *v > 0),
        tags: tags.iter().map(|t| [*t; 16]).collect::<Vec<IndexTag>>(),
        unless: None,
    };
    store
        .commit(&[write("a", 2, &[4]), write("c", 1, &[1])], &[], &[])
        .await
        .unwrap();
    assert_eq!(find(&[4], &[]).await, ["a"]);
    assert_eq!(find(&[1], &[]).await, ["c"]);
    assert_eq!(find(&[2], &[]).await, ["b"]);
    assert_eq!(find(&[3], &[]).await, ["b"]);
    assert_eq!(find(&[], &[2]).await, ["a", "c"]);
    // The migrated lists count as merged; the two written since are pending.
    assert_eq!(store.merge_pending(100).await.unwrap(), 2);
    assert_eq!(find(&[1], &[]).await, ["c"]);
    assert_eq!(find(&[2], &[]).await, ["b"]);
    assert_eq!(find(&[4], &[]).await, ["a"]);
}
