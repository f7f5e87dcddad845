-- The audit trail: one row per FHIR AuditEvent, never updated or deleted (erasing a patient
-- shreds their record keys, not this). `seq` orders rows recorded in the same millisecond.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    recorded_at_ms INTEGER NOT NULL,
    patient TEXT,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    resource BLOB NOT NULL,
    salt BLOB NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
