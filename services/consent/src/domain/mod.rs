//! Decision logic, free of I/O.

pub mod api;
pub mod consent;
pub mod consent_policy;
pub mod decision;
