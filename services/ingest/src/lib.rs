//! Ingest service: FHIR create, update, delete, batch and transaction; encrypts and stores every version.
