-- The registrar's queue: role and consent changes to commit to the chain (Roles,
-- ConsentRegistry) as salted commitments. Each account and each Consent gets a random salt, so
-- the chain never shows an identity, and a change is queued by the transaction that stores it.
ALTER TABLE consent_accounts ADD COLUMN salt BLOB;
ALTER TABLE consent_accounts ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE consent_accounts ADD COLUMN registered_revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consent_accounts ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE consent_accounts SET salt = randomblob(32) WHERE salt IS NULL;
CREATE INDEX consent_accounts_unregistered ON consent_accounts (changed_at)
    WHERE registered_revision < revision;

-- One salt per Consent id (its id and patient commitments stay the same across versions).
CREATE TABLE consent_subjects (
    id TEXT PRIMARY KEY,
    salt BLOB NOT NULL
);
INSERT INTO consent_subjects (id, salt)
    SELECT id, randomblob(32) FROM (SELECT DISTINCT id FROM consent_versions);

ALTER TABLE consent_versions ADD COLUMN salt BLOB;
-- Where the chain holds the change (JSON written by the registrar); NULL while queued.
ALTER TABLE consent_versions ADD COLUMN registration BLOB;
-- Insertion order, which the registrar follows.
ALTER TABLE consent_versions ADD COLUMN seq INTEGER;
UPDATE consent_versions SET salt = randomblob(32) WHERE salt IS NULL;
UPDATE consent_versions SET seq = rowid WHERE seq IS NULL;
CREATE INDEX consent_versions_unregistered ON consent_versions (seq) WHERE registration IS NULL;
