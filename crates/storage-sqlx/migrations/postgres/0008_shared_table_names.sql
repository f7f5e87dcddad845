-- The same table names as on SQLite, so every query is written once: each service's schema
-- keeps its tables, found through the connection's search_path (storage-sqlx/src/postgres.rs).
ALTER TABLE ledger.leaves RENAME TO ledger_leaves;
ALTER TABLE ledger.tree_heads RENAME TO ledger_tree_heads;
ALTER TABLE ledger.anchors RENAME TO ledger_anchors;
ALTER TABLE consent.accounts RENAME TO consent_accounts;
ALTER TABLE consent.versions RENAME TO consent_versions;
ALTER TABLE consent.subjects RENAME TO consent_subjects;
ALTER TABLE consent.access_requests RENAME TO consent_access_requests;
ALTER TABLE audit.events RENAME TO audit_events;
