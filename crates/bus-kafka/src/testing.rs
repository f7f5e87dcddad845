//! A throwaway Kafka-protocol broker for tests: tansu with in-memory storage on a free port,
//! killed when dropped.
//!
//! The binary comes from `MEDLEDGER_TANSU` (set by the tools env that `make test` sources) or
//! `PATH`. A missing binary panics with the fix, so a test never passes by skipping.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use medledger_test_utils::ChildGuard;

/// A running tansu broker.
#[derive(Debug)]
pub struct Tansu {
    _process: ChildGuard,
    port: u16,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Self {
        let port = medledger_test_utils::ports::free_port();
        let bin = std::env::var("MEDLEDGER_TANSU").unwrap_or_else(|_| "tansu".to_owned());
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&bin);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = ChildGuard::spawn(command, &format!("tansu ({bin})"));
        process.wait_for_port(port, Duration::from_secs(30));
        Self {
            _process: process,
            port,
        }
    }

    /// Bootstrap servers for clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
