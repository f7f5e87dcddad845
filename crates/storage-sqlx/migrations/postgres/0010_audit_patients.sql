-- The further patients an AuditEvent is about (a search that returned several patients'
-- data), so each finds it in their trail.
CREATE TABLE audit.audit_event_patients (
    patient TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (patient, event_id)
);
