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
