//! SQLite implementation of the storage ports via sqlx.
