//! Ingest configuration.

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most entries accepted in one batch or transaction Bundle.
    pub max_bundle_entries: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_bundle_entries: 10_000,
        }
    }
}
