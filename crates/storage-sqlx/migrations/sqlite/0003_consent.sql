-- The consent service's state: accounts with their roles, and every version of every Consent.
CREATE TABLE consent_accounts (
    account TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    verified INTEGER NOT NULL
);

CREATE TABLE consent_versions (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    patient TEXT NOT NULL,
    status TEXT NOT NULL,
    resource BLOB NOT NULL,
    actor TEXT NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX consent_versions_patient ON consent_versions (patient);
