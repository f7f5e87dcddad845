-- The audit trail, shared by every service that audits (ingest, query, consent): one row per
-- FHIR AuditEvent, never updated or deleted (erasing a patient shreds their record keys, not
-- this). Its outbox carries the events' ledger commitments to the bus; audits of writes travel
-- in ingest.outbox instead, in the transaction of the write they describe.
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    recorded_at_ms BIGINT NOT NULL,
    patient TEXT,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    resource BYTEA NOT NULL,
    salt BYTEA NOT NULL
);
CREATE INDEX audit_events_patient ON audit.events (patient, seq);
CREATE INDEX audit_events_actor ON audit.events (actor, seq);

CREATE TABLE audit.outbox (
    seq BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    key BYTEA NOT NULL,
    payload BYTEA NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX audit_outbox_unpublished ON audit.outbox (seq) WHERE published_at IS NULL;
