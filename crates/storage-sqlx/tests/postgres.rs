//! The storage conformance suite against a real PostgreSQL server.
//!
//! The server comes from `MEDLEDGER_TEST_POSTGRES_URL` (default: the local server with trust
//! auth, `postgres://postgres@127.0.0.1:5432/test`; `make test` starts one if none is running).
//! Each test works in a database of its own, created here and dropped afterwards. An unreachable
//! server fails the tests: nothing is skipped.

#![allow(clippy::unwrap_used, missing_docs)]

use medledger_storage_api::{OutboxEvent, RecordIndex, VersionWrite, conformance};
use medledger_storage_sqlx::{PgStore, testing::TempDb};

#[tokio::test]
async fn meets_the_record_index_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 4).await.unwrap();
    conformance::record_index(&s).await;
    // The outbox holds exactly the committed event, in the ingest schema.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingest.outbox")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_search_index_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 4).await.unwrap();
    conformance::search_index(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_audit_trail_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 4).await.unwrap();
    conformance::audit_trail(&s, &s).await;
    // Audits of reads queue in the audit schema's outbox, audits of writes in ingest's (with
    // the write): one event each from the suite.
    for table in ["audit.outbox", "ingest.outbox"] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(s.pool())
                .await
                .unwrap();
        assert_eq!(n, 1, "{table}");
    }
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_owner_key_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::owner_keys(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_ledger_store_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::ledger_store(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn racing_creators_of_one_record_conflict_instead_of_both_winning() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 8).await.unwrap();
    let row = |n: u8| medledger_storage_api::VersionRow {
        resource_type: "Patient".into(),
        id: "same".into(),
        version: 1,
        cid: Some(format!("bafy{n}")),
        wrapped_key: vec![n],
        owner: "Patient/same".into(),
        commitment: Some([n; 32]),
        deleted: false,
        last_updated: "2026-01-01T00:00:00.000Z".into(),
        actor: "Practitioner/x".into(),
    };
    let ev = OutboxEvent {
        topic: "t".into(),
        key: vec![],
        payload: vec![],
    };
    let results = futures_join(
        &s,
        (0..8)
            .map(|n| VersionWrite {
                row: row(n),
                expected: None,
                tags: Vec::new(),
                unless: None,
            })
            .collect(),
        ev,
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingest.outbox")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(n, 1, "a losing writer's event was kept");
    s.pool().close().await;
    db.drop_db().await;
}

async fn futures_join(
    s: &PgStore,
    writes: Vec<VersionWrite>,
    ev: OutboxEvent,
) -> Vec<Result<(), medledger_storage_api::StoreError>> {
    let mut handles = Vec::new();
    for w in writes {
        let (s, ev) = (s.clone(), ev.clone());
        handles.push(tokio::spawn(
            async move { s.commit(&[w], &[ev], &[]).await },
        ));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn meets_the_consent_store_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::consent_store(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_registry_queue_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::registry_queue(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_hl7_message_log_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::hl7_message_log(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn meets_the_access_request_contract() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    conformance::access_requests(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_corrupt_row_is_its_own_error() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    medledger_storage_sqlx::testing::corrupt_rows_are_their_own_error(&s).await;
    s.pool().close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn each_service_keeps_its_tables_in_its_own_schema_under_the_shared_names() {
    let db = TempDb::new().await;
    let s = PgStore::connect(&db.url, 2).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('ingest', 'ledger', 'consent', 'audit') ORDER BY 1, 2",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    let names: Vec<String> = tables.iter().map(|(s, t)| format!("{s}.{t}")).collect();
    assert_eq!(
        names,
        [
            "audit.audit_event_patients",
            "audit.audit_events",
            "audit.outbox",
            "consent.consent_access_requests",
            "consent.consent_accounts",
            "consent.consent_subjects",
            "consent.consent_versions",
            "ingest.hl7_accepted",
            "ingest.hl7_dead_letters",
            "ingest.outbox",
            "ingest.owner_keys",
            "ingest.record_heads",
            "ingest.record_tags",
            "ingest.record_versions",
            "ingest.search_tags",
            "ledger.ledger_anchors",
            "ledger.ledger_leaves",
            "ledger.ledger_tree_heads",
        ]
    );
    s.pool().close().await;
    db.drop_db().await;
}
