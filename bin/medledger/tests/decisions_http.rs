//! The consent decision table driven through HTTP against `medledger dev` (the runner is in
//! `decisions/mod.rs`; the distributed run is in `distributed.rs`).

#![allow(clippy::unwrap_used, missing_docs)]

mod decisions;
mod support;

use support::{Dev, token};

#[tokio::test]
async fn the_decision_table_over_http_against_medledger_dev() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let dev = Dev::start_with(dir.path(), &["--test-clock-file", clock.to_str().unwrap()]).await;
    let http = decisions::Http::new(dev.url(""));
    let ran = decisions::run(&http, |s, r, sc| token(dir.path(), s, r, sc), &clock).await;
    assert!(ran >= 30, "only {ran} cases ran over HTTP");
}
