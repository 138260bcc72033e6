//! Guard and action functions: checked when a machine is created (a
//! function of that name taking a row and a jsonb, returning the right
//! type, must exist), then found by name for a table's row type, with
//! their return type checked, once per binding and backend.

use std::cell::OnceCell;

use pgrx::prelude::*;

use crate::error::{clip, ErrorKind, FsmError, FsmResult};
use crate::spi_plan::KeptPlan;

/// A guard or action function, resolved for one table's row type.
pub struct Callable {
    /// Schema-qualified and quoted, from the catalog: safe to paste into SQL.
    pub sql_name: String,
    pub plan: OnceCell<KeptPlan>,
}

impl Callable {
    /// The kept plan `SELECT f($1, $2)` with the row and the payload,
    /// prepared on first use. Must be called inside SPI.
    pub fn plan(&self, row_type: pg_sys::Oid) -> &KeptPlan {
        self.plan.get_or_init(|| {
            KeptPlan::prepare(
                &format!("SELECT {}($1, $2)", self.sql_name),
                &[row_type, pg_sys::JSONBOID],
            )
        })
    }
}

/// What a function is for: its name in messages and the type it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Guard,
    Action,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Guard => "guard",
            Purpose::Action => "action",
        }
    }

    fn returns(self) -> &'static str {
        match self {
            Purpose::Guard => "boolean",
            Purpose::Action => "void",
        }
    }
}

/// Finds `name(<row type>, jsonb)` and checks what it returns: boolean for
/// a guard, void for an action. A schema-qualified name is taken as
/// written; an unqualified one is looked up in the table's own schema,
/// never through the session's `search_path`, so what runs does not depend
/// on who loaded the binding or what they planted in `public`.
pub fn resolve(
    name: &str,
    table_oid: pg_sys::Oid,
    purpose: Purpose,
    event: &str,
    table: &str,
) -> FsmResult<Callable> {
    // SAFETY: syscache lookups by oid.
    let (row_type, schema) = unsafe {
        (
            pg_sys::get_rel_type_id(table_oid),
            pg_sys::get_rel_namespace(table_oid),
        )
    };
    // The name is split as PostgreSQL reads an identifier (parse_ident):
    // a dot inside double quotes is part of the name, never a schema.
    let found = Spi::connect(|client| -> FsmResult<Option<(String, String)>> {
        let rows = client.select(
            "WITH name AS (SELECT pg_catalog.parse_ident($1) AS parts)
             SELECT pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname::pg_catalog.text),
                    pg_catalog.format_type(p.prorettype, NULL)
               FROM name, pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
              WHERE pg_catalog.array_length(name.parts, 1) OPERATOR(pg_catalog.<=) 2
                AND p.proname OPERATOR(pg_catalog.=) name.parts[pg_catalog.array_length(name.parts, 1)]
                AND CASE WHEN pg_catalog.array_length(name.parts, 1) OPERATOR(pg_catalog.=) 2
                         THEN n.nspname OPERATOR(pg_catalog.=) name.parts[1]
                         ELSE n.oid OPERATOR(pg_catalog.=) $3 END
                AND p.pronargs OPERATOR(pg_catalog.=) 2
                AND p.proargtypes[0] OPERATOR(pg_catalog.=) $2
                AND p.proargtypes[1] OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype",
            None,
            &[name.into(), row_type.into(), schema.into()],
        )?;
        match rows.first().get_two::<String, String>() {
            Ok((Some(sql_name), Some(returns))) => Ok(Some((sql_name, returns))),
            _ => Ok(None),
        }
    })?;
    let (role, expected) = (purpose.name(), purpose.returns());
    let shown = clip(name);
    match found {
        None => Err(FsmError::new(
            ErrorKind::UndefinedFunction,
            format!("{role} function {shown}({table}, jsonb) of event \"{}\" does not exist", clip(event)),
        )
        .hint(format!("Create it as {shown}(row {table}, payload jsonb) RETURNS {expected}, schema-qualified."))),
        Some((_, returns)) if returns != expected => Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!("{role} function {shown}({table}, jsonb) of event \"{}\" returns {returns}, not {expected}", clip(event)),
        )),
        Some((sql_name, _)) => Ok(Callable { sql_name, plan: OnceCell::new() }),
    }
}

/// At `create_machine`, before any table is attached: `name` must be a
/// function `(<some row type>, jsonb)` returning boolean (a guard) or void
/// (an action). A schema-qualified name is looked up in its schema; an
/// unqualified one in the schemas of the creator's `search_path` (as
/// PostgreSQL resolves names when an object is created; `pg_temp` is never
/// searched for functions). The exact row type is checked at `attach`.
///
/// # Errors
/// 42883 when no such function exists; 42804 when it returns another type.
pub fn check_exists(name: &str, purpose: Purpose, event: &str) -> FsmResult<()> {
    let returns = Spi::connect(|client| -> FsmResult<Vec<String>> {
        let rows = client.select(
            "WITH name AS (SELECT pg_catalog.parse_ident($1) AS parts)
             SELECT DISTINCT pg_catalog.format_type(p.prorettype, NULL)
               FROM name, pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
               JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) p.proargtypes[0]
              WHERE p.proname OPERATOR(pg_catalog.=) name.parts[pg_catalog.array_length(name.parts, 1)]
                AND CASE WHEN pg_catalog.array_length(name.parts, 1) OPERATOR(pg_catalog.=) 2
                         THEN n.nspname OPERATOR(pg_catalog.=) name.parts[1]
                         ELSE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false)) END
                AND p.pronargs OPERATOR(pg_catalog.=) 2
                AND p.proargtypes[1] OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype
                AND t.typtype OPERATOR(pg_catalog.=) 'c'
              ORDER BY 1",
            None,
            &[name.into()],
        )?;
        let mut returns = Vec::new();
        for row in rows {
            returns.extend(row.get::<String>(1)?);
        }
        Ok(returns)
    })?;
    let (role, expected) = (purpose.name(), purpose.returns());
    let shown = clip(name);
    if returns.iter().any(|r| r == expected) {
        return Ok(());
    }
    if returns.is_empty() {
        return Err(FsmError::new(
            ErrorKind::UndefinedFunction,
            format!(
                "{role} function {shown}(row, jsonb) of event \"{}\" does not exist",
                clip(event)
            ),
        )
        .hint(format!(
            "Create it first, as {shown}(row <table>, payload jsonb) RETURNS {expected}; \
             an unqualified name is looked up in the search_path."
        )));
    }
    Err(FsmError::new(
        ErrorKind::DatatypeMismatch,
        format!(
            "{role} function {shown}(row, jsonb) of event \"{}\" returns {}, not {expected}",
            clip(event),
            returns.join(", ")
        ),
    ))
}
