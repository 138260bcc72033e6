//! Storing machines: `create_machine`, `drop_machine`, and reading them back
//! (`machine_definition`, `to_dot`, `to_mermaid`).
//!
//! A machine is stored as its normalized definition plus the expanded
//! states and transitions the introspection views read, and is owned by
//! the role that created it (API.md §8). Everything happens in the caller's
//! transaction: a refused definition stores nothing. The catalog is written
//! as the extension's owner, after the caller's own rights were checked.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::args::Args;
use crate::cache;
use crate::callable::{self, Purpose};
use crate::error::{clip, required, ErrorKind, FsmError, FsmResult, NoRowIsNone, SqlResult};
use crate::json::{self, Jsonb};
use crate::key::datum_text;
use crate::machine::{render, validate::compile_json, Compiled, Definition};
use crate::spi_plan::{connected, KeptPlan};
use crate::sql::{self, as_user, Restrict};

/// A stored machine: its owner and normalized definition.
pub struct Stored {
    pub owner: pg_sys::Oid,
    pub definition: serde_json::Value,
}

/// The stored machine `name`, if any.
pub fn stored(name: &str) -> FsmResult<Option<Stored>> {
    Spi::connect(|client| -> FsmResult<Option<Stored>> {
        let rows = client.select(
            "SELECT m.owner::pg_catalog.oid, m.definition::pg_catalog.text FROM fsm.machine m
              WHERE m.name OPERATOR(pg_catalog.=) $1",
            None,
            &[name.into()],
        )?;
        let Ok((Some(owner), Some(text))) = rows.first().get_two::<pg_sys::Oid, String>() else {
            return Ok(None);
        };
        Ok(Some(Stored {
            owner,
            definition: json::parse(&text, "stored definition")?,
        }))
    })
}

/// The stored definition of machine `name`; 42704 when there is none.
/// Locks the machine's row against a concurrent replace or drop until the
/// transaction ends (attach reads its definition once, and must bind what
/// it checked the rows against).
pub fn lock_for_attach(name: &str) -> FsmResult<()> {
    let owner = sql::extension_owner()?;
    as_user(owner, Restrict::Restricted, || {
        Spi::run_with_args(
            "SELECT FROM fsm.machine m WHERE m.name OPERATOR(pg_catalog.=) $1 FOR SHARE",
            &[name.into()],
        )
    })?;
    Ok(())
}

pub fn stored_definition(name: &str) -> FsmResult<serde_json::Value> {
    Ok(stored(name)?
        .ok_or_else(|| unknown_machine(name))?
        .definition)
}

pub fn unknown_machine(name: &str) -> FsmError {
    FsmError::new(
        ErrorKind::UndefinedObject,
        format!("machine \"{}\" does not exist", clip(name)),
    )
    .hint("See SELECT name FROM fsm.machines.")
}

fn compiled(name: &str) -> FsmResult<(Definition, Compiled)> {
    compile_json(&stored_definition(name)?).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("stored machine \"{}\" does not compile: {e}", clip(name)),
        )
    })
}

v1_function!(
    fsm_create_machine,
    pg_finfo_fsm_create_machine,
    create_machine
);

/// `fsm.create_machine(name, definition, replace)`: stores a machine and
/// returns its version (1 for a new machine). Raw V1 (declared in
/// `sql/functions.sql`) so the definition arrives as the caller's jsonb.
///
/// # Errors
/// 22004 a NULL argument; 42501 without CREATE on the database, or when
/// replacing a machine the caller does not own; 42P17 when the definition
/// breaks a rule (the message names the state or event); 54001 a definition
/// nested deeper than 128 levels; 42710 when the machine exists and
/// `replace` is false; 23514 when `replace` would strand rows of an
/// attached table in removed states; 42883 when a bound table lacks a guard
/// or action function.
unsafe fn create_machine(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let name = required(args.text(0), "name")?;
    let definition = required(args.jsonb(1), "definition")?;
    let replace = required(args.bool(2), "replace")?;
    let version = store(&name, &definition.to_value("definition")?, replace)?;
    Ok(pg_sys::Datum::from(version))
}

fn check_name(name: &str) -> FsmResult<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(FsmError::new(
            ErrorKind::InvalidParameter,
            "a machine name must be 1 to 200 bytes without control characters",
        ));
    }
    Ok(())
}

fn store(name: &str, definition: &serde_json::Value, replace: bool) -> FsmResult<i32> {
    check_name(name)?;
    check_may_create()?;
    let (def, compiled) = compile_json(definition).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("machine \"{name}\": {e}"),
        )
    })?;
    check_timeouts(name, &def)?;
    for e in &compiled.machine.events {
        if let Some(g) = &e.guard {
            callable::check_exists(g, Purpose::Guard, &e.name)?;
        }
        if let Some(a) = &e.action {
            callable::check_exists(a, Purpose::Action, &e.name)?;
        }
    }
    let owner = sql::extension_owner()?;
    // Locks the machine's row against a concurrent replace or drop.
    let current = as_user(owner, Restrict::Restricted, || {
        Spi::get_one_with_args::<i32>(
            "SELECT m.version FROM fsm.machine m WHERE m.name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            &[name.into()],
        )
    })
    .ok()
    .flatten();
    if let Some(existing) = current.map(|_| stored(name)).transpose()?.flatten() {
        if !replace {
            return Err(FsmError::new(
                ErrorKind::DuplicateObject,
                format!("machine \"{name}\" already exists"),
            )
            .hint("Pass replace => true to store a new version."));
        }
        check_owner(name, existing.owner)?;
    }
    let bound = bound_tables(name)?;
    // Writers of the bound tables, partitions included, wait from here
    // until this transaction ends (as for attach): none may write a state
    // the new version lacks after its rows were checked, nor move a row
    // under the old version once the new one is in place. Oid order, as
    // bound_tables returns. A table's owner who attached another role's
    // machine trusts that role's versions, as a trigger calling another
    // role's function trusts its replacements (README, Rights).
    for (table, _) in &bound {
        lock_with_partitions(*table)?;
    }
    for (table, column) in &bound {
        check_rows_fit(*table, column, &compiled, name)?;
    }
    let version = current.map_or(1, |v| v + 1);
    let definition = Jsonb::from_value(&def.to_json())?;
    let creator = sql::current_user();
    as_user(owner, Restrict::Restricted, || {
        write(name, version, definition, creator, &compiled)
    })?;
    for (table, _) in &bound {
        check_functions(*table, &compiled)?;
        cache::invalidate(*table)?;
    }
    for w in &compiled.warnings {
        pgrx::warning!("machine \"{name}\": {w}");
    }
    Ok(version)
}

/// Locks `table` and every partition of it against writers until the
/// transaction ends. No privilege is checked: the machine's owner replaces
/// what the tables' owners attached.
fn lock_with_partitions(table: pg_sys::Oid) -> FsmResult<()> {
    let lock = pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: a lock on a relation oid, held to the end of the transaction.
    unsafe { pg_sys::LockRelationOid(table, lock) };
    let partitions: Vec<pg_sys::Oid> = connected(|| -> FsmResult<Vec<pg_sys::Oid>> {
        let plan = KeptPlan::prepare(
            "SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) p \
              WHERE p.relid OPERATOR(pg_catalog.<>) $1 ORDER BY p.level, 1",
            &[pg_sys::REGCLASSOID],
        );
        plan.read_latest(&[Some(pg_sys::Datum::from(table))])
            .map(|row| row.oid(1))
            .filter_map(Result::transpose)
            .collect()
    })?;
    for partition in partitions {
        // SAFETY: as above.
        unsafe { pg_sys::LockRelationOid(partition, lock) };
    }
    Ok(())
}

/// 42501 unless the current user may create objects in this database.
fn check_may_create() -> FsmResult<()> {
    let mode = pg_sys::ACL_CREATE as pg_sys::AclMode;
    // SAFETY: an ACL check of the current database for the current user
    // (PostgreSQL 16 replaced pg_database_aclcheck by object_aclcheck).
    #[cfg(feature = "pg15")]
    let result =
        unsafe { pg_sys::pg_database_aclcheck(pg_sys::MyDatabaseId, sql::current_user(), mode) };
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    let result = unsafe {
        pg_sys::object_aclcheck(
            pg_sys::DatabaseRelationId,
            pg_sys::MyDatabaseId,
            sql::current_user(),
            mode,
        )
    };
    let allowed = result == pg_sys::AclResult::ACLCHECK_OK;
    if allowed {
        return Ok(());
    }
    Err(FsmError::new(
        ErrorKind::InsufficientPrivilege,
        "creating a machine needs CREATE on the current database",
    ))
}

/// 42501 unless the current user acts as the machine's owner.
fn check_owner(name: &str, owner: pg_sys::Oid) -> FsmResult<()> {
    if sql::acts_as(owner) {
        return Ok(());
    }
    Err(FsmError::new(
        ErrorKind::InsufficientPrivilege,
        format!(
            "must be the owner of machine \"{}\" ({}) to replace or drop it",
            clip(name),
            sql::role_name(owner)
        ),
    ))
}

/// Writes the machine's row, states and transitions (as the extension
/// owner); a new machine is owned by `creator`.
fn write(
    name: &str,
    version: i32,
    definition: Jsonb,
    creator: pg_sys::Oid,
    compiled: &Compiled,
) -> FsmResult<()> {
    let m = &compiled.machine;
    let states: Vec<&str> = m.states.iter().map(|s| s.name.as_str()).collect();
    let initial: Vec<bool> = m.states.iter().map(|s| s.initial).collect();
    let finals: Vec<bool> = m.states.iter().map(|s| s.is_final).collect();
    let metas: Vec<Option<JsonB>> = m.states.iter().map(|s| s.meta.clone().map(JsonB)).collect();
    let mut events = Vec::new();
    let mut froms = Vec::new();
    let mut tos = Vec::new();
    for tr in m.declared_transitions() {
        events.push(m.event(tr.event).name.as_str());
        froms.push(m.state(tr.from).name.as_str());
        tos.push(m.state(tr.to).name.as_str());
    }
    // SAFETY: a jsonb datum made above, alive for this call.
    let definition =
        || unsafe { pgrx::datum::DatumWithOid::new(definition.datum(), pg_sys::JSONBOID) };
    Spi::connect_mut(|client| -> FsmResult<()> {
        client.update(
            "INSERT INTO fsm.machine (name, version, definition, owner) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, definition = EXCLUDED.definition,
                                              updated_at = pg_catalog.now()",
            None,
            &[name.into(), version.into(), definition(), creator.into()],
        )?;
        client.update(
            "INSERT INTO fsm.machine_version (machine, version, definition) VALUES ($1, $2, $3)",
            None,
            &[name.into(), version.into(), definition()],
        )?;
        client.update(
            "DELETE FROM fsm.machine_state s WHERE s.machine OPERATOR(pg_catalog.=) $1",
            None,
            &[name.into()],
        )?;
        client.update(
            "DELETE FROM fsm.machine_transition t WHERE t.machine OPERATOR(pg_catalog.=) $1",
            None,
            &[name.into()],
        )?;
        client.update(
            "INSERT INTO fsm.machine_state (machine, position, state, initial, final, meta)
             SELECT $1, s.ord, s.state, s.initial, s.final, s.meta
               FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.bool[]),
                               pg_catalog.unnest($4::pg_catalog.bool[]), pg_catalog.unnest($5::pg_catalog.jsonb[]))
                    WITH ORDINALITY AS s(state, initial, final, meta, ord)",
            None,
            &[name.into(), states.into(), initial.into(), finals.into(), metas.into()],
        )?;
        client.update(
            "INSERT INTO fsm.machine_transition (machine, event, from_state, to_state)
             SELECT $1, t.event, t.from_state, t.to_state
               FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]),
                               pg_catalog.unnest($4::pg_catalog.text[])) AS t(event, from_state, to_state)",
            None,
            &[name.into(), events.into(), froms.into(), tos.into()],
        )?;
        Ok(())
    })
}

/// Timeout intervals are PostgreSQL intervals: let PostgreSQL parse them,
/// and name the state when it cannot.
fn check_timeouts(name: &str, def: &Definition) -> FsmResult<()> {
    for (state, s) in &def.states {
        let Some(timeout) = &s.timeout else { continue };
        let after = timeout.after.as_str();
        // A cancel or a statement timeout is not a bad interval: the
        // savepoint raises it again (class 57), as it does a panic.
        let positive = crate::savepoint::attempt(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT $1::pg_catalog.interval OPERATOR(pg_catalog.>) '0'::pg_catalog.interval",
                &[after.into()],
            )
            .ok()
            .flatten()
        })
        .ok()
        .flatten();
        if positive != Some(true) {
            return Err(FsmError::new(
                ErrorKind::InvalidDefinition,
                format!(
                    "machine \"{name}\": state \"{state}\": timeout \"after\" {:?} is not a positive interval",
                    clip(&timeout.after)
                ),
            ));
        }
    }
    Ok(())
}

/// (table oid, column) of every binding of machine `name`, locked against
/// concurrent attach and detach.
pub fn bound_tables(name: &str) -> FsmResult<Vec<(pg_sys::Oid, String)>> {
    let owner = sql::extension_owner()?;
    as_user(owner, Restrict::Restricted, || {
        Spi::connect(|client| -> FsmResult<Vec<_>> {
            let rows = client.select(
                "SELECT b.tbl::pg_catalog.oid, b.col::pg_catalog.text FROM fsm.binding b
                  WHERE b.machine OPERATOR(pg_catalog.=) $1 ORDER BY b.tbl::pg_catalog.oid FOR UPDATE",
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
    })
}

/// Refuses when a row of `table` holds a value that is not a state of the
/// compiled machine: the error counts the rows per offending value. Reads
/// the table as the extension owner: the check must see every row, whoever
/// asks.
pub fn check_rows_fit(
    table: pg_sys::Oid,
    column: &str,
    compiled: &Compiled,
    machine: &str,
) -> FsmResult<()> {
    check_rows_hold_states(table, column, &compiled.machine, machine)
}

/// 23514 unless every row of `table` holds a state of `machine` in
/// `column` (also for the rows of a partition attached to a bound table).
/// States are compared byte for byte, whatever the column's collation.
pub fn check_rows_hold_states(
    table: pg_sys::Oid,
    column: &str,
    machine: &crate::machine::Machine,
    machine_name: &str,
) -> FsmResult<()> {
    let machine_states = machine.states.iter().map(|s| s.name.as_str());
    let states: Vec<&str> = machine_states.collect();
    let machine = machine_name;
    check_states_fit_column(table, column, &states)?;
    let query = format!(
        "SELECT COALESCE(t.{col}::pg_catalog.text, 'NULL'), pg_catalog.count(*)::pg_catalog.text FROM {tbl} t \
          WHERE t.{col} IS NULL OR t.{col}::pg_catalog.text COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.<>) ALL ($1) \
          GROUP BY 1 ORDER BY pg_catalog.count(*) DESC, 1 LIMIT 10",
        col = sql::ident(column),
        tbl = sql::qualified_relation(table)?,
    );
    let owner = sql::extension_owner()?;
    // Under a snapshot taken after the caller's lock (read_latest): rows
    // committed while it waited count, even in REPEATABLE READ, as for
    // PostgreSQL's own constraint validation.
    let misfits = as_user(owner, Restrict::Restricted, || {
        connected(|| -> FsmResult<Vec<(String, i64)>> {
            let plan = KeptPlan::prepare(&query, &[pg_sys::TEXTARRAYOID]);
            plan.read_latest(&[states.clone().into_datum()])
                .map(|row| {
                    let count = row.text(2)?.and_then(|n| n.parse().ok()).unwrap_or(0);
                    Ok((row.text(1)?.unwrap_or_default(), count))
                })
                .collect()
        })
    })?;
    if misfits.is_empty() {
        return Ok(());
    }
    let table_name = datum_text(pg_sys::Datum::from(table), pg_sys::REGCLASSOID);
    let total: i64 = misfits.iter().map(|(_, n)| n).sum();
    // The values are quoted only to a caller who may read them (replace is
    // for the machine's owner, who may not).
    if !sql::may_select_column(table, column) {
        return Err(FsmError::new(
            ErrorKind::CheckViolation,
            format!(
                "rows of {table_name}.{} hold values that are not states of machine \"{}\"",
                clip(column),
                clip(machine),
            ),
        ));
    }
    let listed: Vec<String> = misfits
        .iter()
        .map(|(s, n)| format!("{} ({n})", clip(s)))
        .collect();
    Err(FsmError::new(
        ErrorKind::CheckViolation,
        format!(
            "{total} row(s) of {table_name}.{} hold values that are not states of machine \"{}\": {}",
            clip(column),
            clip(machine),
            listed.join(", ")
        ),
    )
    .hint("Move those rows to states of the machine first."))
}

/// Every state name must be a value of the column: a label of its enum, an
/// integer of its integer type, and short enough for a `varchar(n)` (the
/// trigger writes the initial state itself, past PostgreSQL's own length
/// check).
fn check_states_fit_column(table: pg_sys::Oid, column: &str, states: &[&str]) -> FsmResult<()> {
    let found = Spi::get_two_with_args::<pg_sys::Oid, i32>(
        "SELECT a.atttypid, a.atttypmod FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name
            AND NOT a.attisdropped",
        &[table.into(), column.into()],
    )
    .ok();
    let Some((Some(type_oid), Some(typmod))) = found else {
        return Ok(());
    };
    let table_name = datum_text(pg_sys::Datum::from(table), pg_sys::REGCLASSOID);
    crate::state_column::check_states_fit(type_oid, states, column, &table_name)?;
    // varchar's typmod is its length plus the 4-byte header; -1: no limit.
    if type_oid != pg_sys::VARCHAROID || typmod < 4 {
        return Ok(());
    }
    let max = (typmod - 4) as usize;
    match states.iter().find(|s| s.chars().count() > max) {
        None => Ok(()),
        Some(long) => Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "state \"{}\" is longer than column {}.{} holds (varchar({max}))",
                clip(long),
                datum_text(pg_sys::Datum::from(table), pg_sys::REGCLASSOID),
                clip(column)
            ),
        )
        .hint(
            "Widen the column (ALTER TABLE … ALTER COLUMN … TYPE text) or shorten the state names.",
        )),
    }
}

/// Every guard and action must exist for the table's row type.
pub fn check_functions(table: pg_sys::Oid, compiled: &Compiled) -> FsmResult<()> {
    let table_name = datum_text(pg_sys::Datum::from(table), pg_sys::REGCLASSOID);
    for e in &compiled.machine.events {
        if let Some(g) = &e.guard {
            callable::resolve(g, table, Purpose::Guard, &e.name, &table_name)?;
        }
        if let Some(a) = &e.action {
            callable::resolve(a, table, Purpose::Action, &e.name, &table_name)?;
        }
    }
    Ok(())
}

/// Drops a machine that no table is attached to.
///
/// # Errors
/// 22004 a NULL name; 42704 when it does not exist; 42501 unless the
/// caller owns it; 55006 while a table is attached to it.
#[pg_extern(volatile)]
fn drop_machine(name: Option<&str>) -> SqlResult<()> {
    let name = required(name, "name")?;
    let existing = stored(name)?.ok_or_else(|| unknown_machine(name))?;
    check_owner(name, existing.owner)?;
    let bound = bound_tables(name)?;
    if let Some((table, column)) = bound.first() {
        let table = datum_text(pg_sys::Datum::from(*table), pg_sys::REGCLASSOID);
        return Err(FsmError::new(
            ErrorKind::ObjectInUse,
            format!(
                "machine \"{}\" is attached to {} column(s), {table}.{column} among them",
                clip(name),
                bound.len()
            ),
        )
        .hint("Detach it first with fsm.detach(table, column).")
        .into());
    }
    as_user(sql::extension_owner()?, Restrict::Restricted, || {
        Spi::run_with_args(
            "DELETE FROM fsm.machine m WHERE m.name OPERATOR(pg_catalog.=) $1",
            &[name.into()],
        )
    })
    .map_err(FsmError::from)?;
    Ok(())
}

/// The normalized definition (`from`/`to` as lists, defaults left out):
/// the latest, or the stored `version` of it.
///
/// # Errors
/// 22004 a NULL name; 42704 when the machine, or that version of it, does
/// not exist.
#[pg_extern(stable)]
fn machine_definition(
    name: Option<&str>,
    version: default!(Option<i32>, "NULL"),
) -> SqlResult<JsonB> {
    let name = required(name, "name")?;
    let Some(version) = version else {
        return Ok(JsonB(stored_definition(name)?));
    };
    let text = Spi::get_one_with_args::<String>(
        "SELECT v.definition::pg_catalog.text FROM fsm.machine_version v
          WHERE v.machine OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
        &[name.into(), version.into()],
    )
    .no_row_is_none()?;
    match text {
        Some(text) => Ok(JsonB(json::parse(&text, "stored definition")?)),
        None if stored(name)?.is_none() => Err(unknown_machine(name).into()),
        None => Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!("machine \"{}\" has no version {version}", clip(name)),
        )
        .hint("See SELECT version FROM fsm.machine_versions WHERE machine = '…'.")
        .into()),
    }
}

/// The machine as a Graphviz digraph.
///
/// # Errors
/// 22004 a NULL name; 42704 when the machine does not exist.
#[pg_extern(stable)]
fn to_dot(name: Option<&str>) -> SqlResult<String> {
    let name = required(name, "name")?;
    let (_, c) = compiled(name)?;
    Ok(render::to_dot(name, &c.machine))
}

/// The machine as a Mermaid `stateDiagram-v2`.
///
/// # Errors
/// 22004 a NULL name; 42704 when the machine does not exist.
#[pg_extern(stable)]
fn to_mermaid(name: Option<&str>) -> SqlResult<String> {
    let (_, c) = compiled(required(name, "name")?)?;
    Ok(render::to_mermaid(&c.machine))
}
