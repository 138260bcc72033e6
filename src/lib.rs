//! `fsm`: finite state machines inside PostgreSQL.
//!
//! This file is the table of contents; each module's `//!` says what it owns.
//! Data flows one way: definition JSON -> `machine` (parse, validate,
//! compile) -> `machines` (store) -> `binding`/`cache` (load, keep) ->
//! `transition` (the rules of a move) -> `enforce`/`fire` (use) -> `history`
//! tables -> `read`, `analytics`.

// pgrx functions return `Result<T, ErrorReport>`, and ErrorReport is large:
// boxing it would cost an allocation on every refusal for nothing.
#![allow(clippy::result_large_err)]

::pgrx::pg_module_magic!(name, version);

#[macro_use]
mod v1;

mod analytics;
mod args;
mod ask;
mod attach;
mod binding;
mod boundary;
mod cache;
mod callable;
mod ddl_watch;
mod enforce;
mod error;
mod fire;
mod history;
mod history_insert;
mod json;
mod key;
pub mod machine;
mod machines;
mod pending;
mod read;
mod savepoint;
mod settings;
mod spi_plan;
mod sql;
mod state_column;
mod timers;
mod transition;
mod uuid7;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
pgrx::extension_sql_file!("../sql/functions.sql", name = "functions", finalize);

/// Runs once per backend when the library loads.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
    cache::register_invalidation();
    pending::register_callbacks();
    error::fields::register();
    machine::on_long_loops(check_for_interrupts);
}

/// PostgreSQL's CHECK_FOR_INTERRUPTS, for the model's long loops.
fn check_for_interrupts() {
    pgrx::check_for_interrupts!();
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
