//! `fsm`: finite state machines inside PostgreSQL.
//!
//! This file is the table of contents; each module's `//!` says what it owns.
//! Data flows one way: definition JSON -> `machine` (parse, validate,
//! compile) -> `machines`/`catalog` (store, cache) -> `enforce`/`fire` (use)
//! -> `history` tables -> read functions (`sql/read.sql`).

::pgrx::pg_module_magic!(name, version);

#[macro_use]
mod v1;

mod attach;
mod catalog;
mod enforce;
mod error;
mod fire;
mod history;
pub mod machine;
mod machines;
mod pending;
mod quote;
mod read;
mod settings;
mod spi_plan;
mod uuid7;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
pgrx::extension_sql_file!("../sql/read.sql", name = "read", finalize);

/// Runs once per backend when the library loads.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
    catalog::register_invalidation();
    pending::register_callbacks();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
