//! Decision logic, free of I/O.

pub mod policy;
pub mod scopes;
