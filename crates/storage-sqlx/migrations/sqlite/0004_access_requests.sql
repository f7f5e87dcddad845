-- Practitioners' requests for access, decided by the patient; an approval points at its Consent.
CREATE TABLE consent_access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    patient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    status TEXT NOT NULL,
    consent TEXT,
    requested_at_ms INTEGER NOT NULL
);
CREATE INDEX consent_access_requests_patient ON consent_access_requests (patient);
