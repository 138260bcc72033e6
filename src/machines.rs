//! Storing machines: `create_machine`, `drop_machine`, and reading them back
//! (`machine_definition`, `to_dot`, `to_mermaid`).
//!
//! A machine is stored as its normalized definition plus the expanded
//! states and transitions the introspection views read. Everything happens
//! in the caller's transaction: a refused definition stores nothing.

use pgrx::prelude::*;
use pgrx::{JsonB, PgTryBuilder};

use crate::catalog;
use crate::error::{required, ErrorKind, FsmError, FsmResult, SqlResult};
use crate::machine::{render, validate::compile_json, Compiled, Definition};

/// The stored definition of machine `name`.
pub fn stored_definition(name: &str) -> FsmResult<serde_json::Value> {
    Spi::get_one_with_args::<JsonB>(
        "SELECT definition FROM fsm.machine WHERE name = $1",
        &[name.into()],
    )
    .ok()
    .flatten()
    .map(|j| j.0)
    .ok_or_else(|| unknown_machine(name))
}

pub fn unknown_machine(name: &str) -> FsmError {
    FsmError::new(
        ErrorKind::UndefinedObject,
        format!("machine \"{name}\" does not exist"),
    )
    .hint("See SELECT name FROM fsm.machines.")
}

fn compiled(name: &str) -> FsmResult<(Definition, Compiled)> {
    compile_json(&stored_definition(name)?).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("stored machine \"{name}\" does not compile: {e}"),
        )
    })
}

/// Stores a machine and returns its version (1 for a new machine).
///
/// # Errors
/// 42P17 when the definition breaks a rule (the message names the state or
/// event); 42710 when the machine exists and `replace` is false; 23514 when
/// `replace` would strand rows of an attached table in removed states;
/// 42883 when a bound table lacks a guard or action function.
#[pg_extern(volatile)]
fn create_machine(
    name: Option<&str>,
    definition: Option<JsonB>,
    replace: default!(bool, false),
) -> SqlResult<i32> {
    Ok(store(
        required(name, "name")?,
        &required(definition, "definition")?.0,
        replace,
    )?)
}

fn store(name: &str, definition: &serde_json::Value, replace: bool) -> FsmResult<i32> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(FsmError::new(
            ErrorKind::InvalidParameter,
            "a machine name must be 1 to 200 bytes without control characters",
        ));
    }
    let (def, compiled) = compile_json(definition).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("machine \"{name}\": {e}"),
        )
    })?;
    check_timeouts(name, &def)?;

    let current = Spi::get_one_with_args::<i32>(
        "SELECT version FROM fsm.machine WHERE name = $1 FOR UPDATE",
        &[name.into()],
    )
    .ok()
    .flatten();
    if current.is_some() && !replace {
        return Err(FsmError::new(
            ErrorKind::DuplicateObject,
            format!("machine \"{name}\" already exists"),
        )
        .hint("Pass replace => true to store a new version."));
    }
    let bound = bound_tables(name)?;
    for (table, column) in &bound {
        check_rows_fit(*table, column, &compiled, name)?;
    }
    let version = current.map_or(1, |v| v + 1);
    let states: Vec<String> = compiled
        .machine
        .states
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let initial: Vec<bool> = compiled.machine.states.iter().map(|s| s.initial).collect();
    let finals: Vec<bool> = compiled.machine.states.iter().map(|s| s.is_final).collect();
    let metas: Vec<Option<JsonB>> = compiled
        .machine
        .states
        .iter()
        .map(|s| s.meta.clone().map(JsonB))
        .collect();
    let m = &compiled.machine;
    let (events, froms, tos): (Vec<String>, Vec<String>, Vec<String>) = {
        let mut e = Vec::new();
        let mut f = Vec::new();
        let mut t = Vec::new();
        for tr in m.transitions() {
            e.push(m.event(tr.event).name.clone());
            f.push(m.state(tr.from).name.clone());
            t.push(m.state(tr.to).name.clone());
        }
        (e, f, t)
    };
    Spi::connect_mut(|client| -> FsmResult<()> {
        client.update(
            "INSERT INTO fsm.machine (name, version, definition) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, definition = EXCLUDED.definition,
                                              updated_at = now()",
            None,
            &[name.into(), version.into(), JsonB(def.to_json()).into()],
        )?;
        client.update(
            "DELETE FROM fsm.machine_state WHERE machine = $1",
            None,
            &[name.into()],
        )?;
        client.update(
            "DELETE FROM fsm.machine_transition WHERE machine = $1",
            None,
            &[name.into()],
        )?;
        client.update(
            "INSERT INTO fsm.machine_state (machine, position, state, initial, final, meta)
             SELECT $1, s.ord, s.state, s.initial, s.final, s.meta
               FROM unnest($2::text[], $3::bool[], $4::bool[], $5::jsonb[]) WITH ORDINALITY
                    AS s(state, initial, final, meta, ord)",
            None,
            &[
                name.into(),
                states.into(),
                initial.into(),
                finals.into(),
                metas.into(),
            ],
        )?;
        client.update(
            "INSERT INTO fsm.machine_transition (machine, event, from_state, to_state)
             SELECT $1, t.event, t.from_state, t.to_state
               FROM unnest($2::text[], $3::text[], $4::text[]) AS t(event, from_state, to_state)",
            None,
            &[name.into(), events.into(), froms.into(), tos.into()],
        )?;
        Ok(())
    })?;
    for (table, _) in &bound {
        check_functions(*table, &compiled)?;
        catalog::invalidate(*table);
    }
    for w in &compiled.warnings {
        pgrx::warning!("machine \"{name}\": {w}");
    }
    Ok(version)
}

/// Timeout intervals are PostgreSQL intervals: let PostgreSQL parse them,
/// and name the state when it cannot.
fn check_timeouts(name: &str, def: &Definition) -> FsmResult<()> {
    for (state, s) in &def.states {
        let Some(timeout) = &s.timeout else { continue };
        let after = timeout.after.clone();
        let positive = PgTryBuilder::new(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT $1::interval > interval '0'",
                &[after.as_str().into()],
            )
            .ok()
            .flatten()
        })
        .catch_others(|_| None)
        .execute();
        if positive != Some(true) {
            return Err(FsmError::new(
                ErrorKind::InvalidDefinition,
                format!(
                    "machine \"{name}\": state \"{state}\": timeout \"after\" {:?} is not a positive interval",
                    timeout.after
                ),
            ));
        }
    }
    Ok(())
}

/// (table oid, column) of every binding of machine `name`, locked against
/// concurrent attach and detach.
pub fn bound_tables(name: &str) -> FsmResult<Vec<(pg_sys::Oid, String)>> {
    Spi::connect(|client| -> FsmResult<Vec<_>> {
        let rows = client.select(
            "SELECT tbl::oid, col::text FROM fsm.binding WHERE machine = $1 ORDER BY tbl::text FOR UPDATE",
            None,
            &[name.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            if let (Some(t), Some(c)) = (row.get::<pg_sys::Oid>(1)?, row.get::<String>(2)?) {
                out.push((t, c));
            }
        }
        Ok(out)
    })
}

/// Refuses when a row of `table` holds a value that is not a state of the
/// compiled machine: the error counts the rows per offending value.
pub fn check_rows_fit(
    table: pg_sys::Oid,
    column: &str,
    compiled: &Compiled,
    machine: &str,
) -> FsmResult<()> {
    let states: Vec<String> = compiled
        .machine
        .states
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let (table_name, misfits) =
        Spi::connect(|client| -> FsmResult<(String, Vec<(String, i64)>)> {
            let table_name = client
                .select("SELECT $1::regclass::text", None, &[table.into()])?
                .first()
                .get_one::<String>()?
                .unwrap_or_default();
            let query = format!(
                "SELECT coalesce({col}::text, 'NULL'), count(*) FROM {tbl} \
              WHERE {col} IS NULL OR {col}::text <> ALL($1) GROUP BY 1 ORDER BY 2 DESC, 1",
                col = crate::quote::ident(column),
                tbl = table_name,
            );
            let mut misfits = Vec::new();
            for row in client.select(&query, None, &[states.into()])? {
                misfits.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<i64>(2)?.unwrap_or(0),
                ));
            }
            Ok((table_name, misfits))
        })?;
    if misfits.is_empty() {
        return Ok(());
    }
    let total: i64 = misfits.iter().map(|(_, n)| n).sum();
    let listed: Vec<String> = misfits.iter().map(|(s, n)| format!("{s} ({n})")).collect();
    Err(FsmError::new(
        ErrorKind::CheckViolation,
        format!(
            "{total} row(s) of {table_name}.{column} hold values that are not states of machine \"{machine}\": {}",
            listed.join(", ")
        ),
    )
    .hint("Move those rows to states of the machine first."))
}

/// Every guard and action must exist for the table's row type.
pub fn check_functions(table: pg_sys::Oid, compiled: &Compiled) -> FsmResult<()> {
    let (row_type, table_name) = Spi::get_two_with_args::<pg_sys::Oid, String>(
        "SELECT reltype, oid::regclass::text FROM pg_catalog.pg_class WHERE oid = $1",
        &[table.into()],
    )
    .map_err(FsmError::from)?;
    let (row_type, table_name) = (
        row_type.unwrap_or(pg_sys::InvalidOid),
        table_name.unwrap_or_default(),
    );
    for e in &compiled.machine.events {
        if let Some(g) = &e.guard {
            catalog::resolve_function(g, row_type, "guard", &e.name, &table_name)?;
        }
        if let Some(a) = &e.action {
            catalog::resolve_function(a, row_type, "action", &e.name, &table_name)?;
        }
    }
    Ok(())
}

/// Drops a machine that no table is attached to.
///
/// # Errors
/// 42704 when it does not exist; 55006 while a table is attached to it.
#[pg_extern(volatile)]
fn drop_machine(name: &str) -> SqlResult<()> {
    stored_definition(name)?;
    let bound = bound_tables(name)?;
    if let Some((table, column)) = bound.first() {
        let table =
            Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[(*table).into()])
                .ok()
                .flatten()
                .unwrap_or_default();
        return Err(FsmError::new(
            ErrorKind::ObjectInUse,
            format!(
                "machine \"{name}\" is attached to {} column(s), {table}.{column} among them",
                bound.len()
            ),
        )
        .hint(format!(
            "Detach it first: SELECT fsm.detach('{table}', '{column}');"
        ))
        .into());
    }
    Spi::run_with_args("DELETE FROM fsm.machine WHERE name = $1", &[name.into()])
        .map_err(FsmError::from)?;
    Ok(())
}

/// The normalized definition: `from`/`to` as lists, defaults left out.
///
/// # Errors
/// 42704 when the machine does not exist.
#[pg_extern(stable, strict)]
fn machine_definition(name: &str) -> SqlResult<JsonB> {
    Ok(JsonB(stored_definition(name)?))
}

/// The machine as a Graphviz digraph.
///
/// # Errors
/// 42704 when the machine does not exist.
#[pg_extern(stable, strict)]
fn to_dot(name: &str) -> SqlResult<String> {
    let (_, c) = compiled(name)?;
    Ok(render::to_dot(name, &c.machine))
}

/// The machine as a Mermaid `stateDiagram-v2`.
///
/// # Errors
/// 42704 when the machine does not exist.
#[pg_extern(stable, strict)]
fn to_mermaid(name: &str) -> SqlResult<String> {
    let (_, c) = compiled(name)?;
    Ok(render::to_mermaid(&c.machine))
}
