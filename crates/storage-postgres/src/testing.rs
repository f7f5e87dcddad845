//! A throwaway PostgreSQL database per test.
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
        let name = format!("medledger_test_{}", uuid::Uuid::new_v4().simple());
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
