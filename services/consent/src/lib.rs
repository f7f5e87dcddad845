//! Consent service: answers whether an actor may read or write; in this release a valid practitioner token may.
