//! Tracing setup shared by every binary.
