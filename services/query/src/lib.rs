//! Query service: FHIR read, vread and $verify with integrity checks and decryption.
