//! Decision logic, free of I/O.

pub mod consent;
pub mod decision;
pub mod policy;
pub mod scopes;
