-- The consent service's schema: accounts with their roles, and every version of every Consent.
CREATE SCHEMA IF NOT EXISTS consent;

CREATE TABLE consent.accounts (
    account TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    verified BOOLEAN NOT NULL
);

CREATE TABLE consent.versions (
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    patient TEXT NOT NULL,
    status TEXT NOT NULL,
    resource BYTEA NOT NULL,
    actor TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX consent_versions_patient ON consent.versions (patient);
