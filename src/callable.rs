//! Guard and action functions: found by name for a table's row type, with
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
    let row_type = crate::sql::qualified_type(row_type, -1);
    let found = Spi::connect(|client| -> FsmResult<Option<(String, String)>> {
        let rows = client.select(
            "SELECT pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname::pg_catalog.text),
                    pg_catalog.format_type(p.prorettype, NULL)
               FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
              WHERE p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(pg_catalog.concat(
                      CASE WHEN pg_catalog.strpos($1, '.') OPERATOR(pg_catalog.>) 0 THEN ''
                           ELSE (SELECT pg_catalog.quote_ident(s.nspname::pg_catalog.text)
                                   FROM pg_catalog.pg_namespace s WHERE s.oid OPERATOR(pg_catalog.=) $3)
                                OPERATOR(pg_catalog.||) '.' END,
                      $1, '(', $2, ', pg_catalog.jsonb)'))",
            None,
            &[name.into(), row_type.as_str().into(), schema.into()],
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
