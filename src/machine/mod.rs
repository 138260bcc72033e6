//! The state-machine model in pure Rust: parse a JSON definition, check its
//! rules, compile it into lookup tables, and render it as a diagram.
//!
//! Nothing here touches PostgreSQL, so every rule is covered by plain unit
//! tests. Data flows one way: `definition` (serde types) -> `validate`
//! (rules, warnings) -> `compiled` (interned ids and tables) -> `render`.

pub mod compiled;
pub mod definition;
pub mod render;
pub mod validate;

pub use compiled::{EventId, Machine, StateId};
pub use definition::Definition;
pub use validate::{compile, Compiled, DefinitionError};

/// What the long loops of this module call now and then: the extension
/// sets it to PostgreSQL's CHECK_FOR_INTERRUPTS, so a cancel or
/// statement_timeout stops a big compile; plain tests leave it unset.
static INTERRUPT_CHECK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets the interrupt check, once per process.
pub fn on_long_loops(check: fn()) {
    let _ = INTERRUPT_CHECK.set(check);
}

pub(crate) fn check_interrupts() {
    if let Some(check) = INTERRUPT_CHECK.get() {
        check();
    }
}

#[cfg(test)]
mod matrix_tests;
#[cfg(test)]
mod tests;
