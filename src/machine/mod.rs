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

#[cfg(test)]
mod tests;
