//! Tracing setup shared by every binary.
//!
//! `RUST_LOG` selects levels (default `info`); `MEDLEDGER_LOG_FORMAT=json` switches to JSON lines
//! for log shippers. Nothing in MedLedger logs resource content, keys or tokens.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("MEDLEDGER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
