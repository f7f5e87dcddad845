//! Std-only stand-in for the yanked `core2` 0.4 (see Cargo.toml): `io` and `error` are std's.

/// `std::io`, as `core2::io` is with the `std` feature.
pub mod io {
    pub use std::io::*;
}

/// `std::error`, as `core2::error` is with the `std` feature.
pub mod error {
    pub use std::error::*;
}
