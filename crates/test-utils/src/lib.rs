//! What tests share, so a new test is short: one guard for child processes ([`ChildGuard`]),
//! one free-port allocator ([`ports`]), token and caller builders ([`tokens`]), an embedded
//! stack on a temporary directory ([`EmbeddedStack`]) and a shell for driving a service's
//! `app()` in process ([`TestShell`], with [`call`]).
//!
//! A dev-dependency only; it panics on any failure, as a test should. Feature `stack`: the
//! fixtures that need the embedded backends and the HTTP shell. Feature `tls`: a throwaway CA and
//! an axum app served over HTTPS ([`tls`]).

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

pub mod ports;
pub mod process;
#[cfg(feature = "stack")]
mod stack;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "stack")]
pub mod tokens;

pub use process::ChildGuard;
#[cfg(feature = "stack")]
pub use stack::{EmbeddedStack, TestShell, call};
