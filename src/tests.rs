//! In-database tests (`#[pg_test]`).
