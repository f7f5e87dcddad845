//! Migrations over data written by the earlier schema, on both backends: a store that already
//! holds records keeps finding them after an upgrade.

#![allow(clippy::unwrap_used, missing_docs)]

use std::str::FromStr;

use medledger_storage_sqlx::{PgStore, SqliteStore, testing};

/// The last migration whose tag rows name their record by type and id.
const BEFORE_RECORD_NUMBERS: i64 = 11;

#[tokio::test]
async fn sqlite_tags_are_renumbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run_to(BEFORE_RECORD_NUMBERS, &pool)
        .await
        .unwrap();
    testing::seed_tags_named_by_id::<medledger_storage_sqlx::Sqlite>(&pool).await;
    pool.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    testing::renumbered_tags_find_their_records(&store).await;
}

#[tokio::test]
async fn postgres_tags_are_renumbered() {
    let db = testing::TempDb::new().await;
    let opts = sqlx::postgres::PgConnectOptions::from_str(&db.url)
        .unwrap()
        .options([("search_path", "public, ingest, ledger, consent, audit")]);
    let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run_to(BEFORE_RECORD_NUMBERS, &pool)
        .await
        .unwrap();
    testing::seed_tags_named_by_id::<medledger_storage_sqlx::Postgres>(&pool).await;
    pool.close().await;
    let store = PgStore::connect(&db.url, 2).await.unwrap();
    testing::renumbered_tags_find_their_records(&store).await;
    store.pool().close().await;
    db.drop_db().await;
}
