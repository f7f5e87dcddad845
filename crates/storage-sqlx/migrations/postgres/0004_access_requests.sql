-- Practitioners' requests for access, decided by the patient; an approval points at its Consent.
CREATE TABLE consent.access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    patient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end BIGINT NOT NULL,
    status TEXT NOT NULL,
    consent TEXT,
    requested_at_ms BIGINT NOT NULL
);
CREATE INDEX consent_access_requests_patient ON consent.access_requests (patient);
