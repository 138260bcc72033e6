//! `fsm.fire`: perform a named event on one entity.
//!
//! `fire` locks the row, checks the event (expected state, source state,
//! target, roles, payload, guard), then UPDATEs the row as the caller, so
//! row level security and the table's other triggers apply. The trigger is
//! told which event it is seeing (see `enforce::FireContext`) and records it
//! with the payload instead of checking it a second time.

use pgrx::prelude::*;
use pgrx::{AnyElement, JsonB, PgRelation};

use crate::catalog::{self, Binding, FireStatement, Statement};
use crate::enforce::{check_requirements, run_action, FireContext, FireScope, Subject};
use crate::error::{ErrorKind, FsmError, FsmResult, SqlResult};
use crate::history::{self, Entry};
use crate::machine::EventId;
use crate::quote;
use crate::spi_plan::{connected, KeptPlan};
use std::rc::Rc;

/// Fires `event` on the row of `tbl` whose key is `key`; returns the new state.
///
/// # Errors
/// P0002 no such key; 42704 unknown event or no machine attached; 40001
/// `expect` differs from the current state; 55000 event not allowed from the
/// current state; 22023 payload fails its schema or `to` is not a target;
/// 42501 role missing; 23514 guard said no.
#[pg_extern(volatile)]
fn fire(
    tbl: PgRelation,
    key: Option<AnyElement>,
    event: &str,
    payload: default!(Option<JsonB>, "NULL"),
    expect: default!(Option<&str>, "NULL"),
    to: default!(Option<&str>, "NULL"),
) -> SqlResult<String> {
    let tbl = tbl.oid();
    let bindings = catalog::attached_bindings(tbl)
        .map_err(|e| e.hint("Attach one with fsm.attach(table, column, machine)."))?;
    // Several machines on one table: the one that knows the event.
    let binding = bindings
        .iter()
        .find(|b| b.machine.event_id(event).is_some())
        .unwrap_or(&bindings[0]);
    let payload = payload.map(|p| p.0);
    Ok(fire_on(binding, key, event, payload, expect, to)?)
}

fn fire_on(
    b: &Binding,
    key: Option<AnyElement>,
    event: &str,
    payload: Option<serde_json::Value>,
    expect: Option<&str>,
    to: Option<&str>,
) -> FsmResult<String> {
    let machine = &b.machine;
    let event_id = machine.event_id(event);
    let needs_row =
        event_id.is_some_and(|e| b.runtime(e).guard.is_some() || b.runtime(e).action.is_some());
    let lock = if needs_row {
        FireStatement::LockRow
    } else {
        FireStatement::LockState
    };
    let Some(key) = key else {
        return Err(FsmError::new(
            ErrorKind::KeyNotFound,
            format!(
                "key must not be NULL (table {}, event \"{event}\")",
                b.table
            ),
        ));
    };
    if let Some(moved) = event_id.and_then(|e| try_one_statement(b, &key, e, &payload, expect, to))
    {
        return Ok(moved);
    }
    connected(|| {
        let locked = plan(b, lock, key.oid()).first_row(&[Some(key.datum())]);
        let Some(row) = locked else {
            let shown = catalog::datum_text(key.datum(), key.oid());
            return Err(FsmError::new(
                ErrorKind::KeyNotFound,
                format!("no row of {} has key {shown} (event \"{event}\")", b.table),
            ));
        };
        let state = row.text(1).unwrap_or_default();
        let table_key = row.get(2).unwrap_or(pg_sys::Datum::from(0));
        let subject = Subject {
            binding: b,
            key: table_key,
            state: &state,
        };

        if let Some(expected) = expect {
            if expected != state {
                return Err(FsmError::new(
                    ErrorKind::ExpectMismatch,
                    format!("expected state \"{expected}\" but found \"{state}\" for event \"{event}\" {}", subject.at()),
                )
                .hint("Another transaction moved it: read the state again and retry."));
            }
        }
        let Some(event_id) = event_id else {
            return Err(subject.refuse(
                ErrorKind::UndefinedObject,
                format!(
                    "event \"{event}\" is not an event of machine \"{}\"",
                    b.machine_name
                ),
            ));
        };
        let Some(from) = machine.state_id(&state) else {
            return Err(subject.refuse(
                ErrorKind::NotAllowed,
                format!(
                    "\"{state}\" is not a state of machine \"{}\"",
                    b.machine_name
                ),
            ));
        };
        let targets = machine.targets(from, event_id);
        let target = match (targets, to) {
            ([], _) => {
                return Err(subject.refuse(
                    ErrorKind::NotAllowed,
                    format!("event \"{event}\" is not allowed from state \"{state}\""),
                ))
            }
            (_, Some(wanted)) => match machine.state_id(wanted).filter(|s| targets.contains(s)) {
                Some(t) => t,
                None => {
                    return Err(FsmError::new(
                        ErrorKind::InvalidParameter,
                        format!(
                            "\"{wanted}\" is not a target of event \"{event}\" {}",
                            subject.at()
                        ),
                    )
                    .hint(target_hint(b, targets)))
                }
            },
            ([only], None) => *only,
            (_, None) => {
                return Err(FsmError::new(
                    ErrorKind::InvalidParameter,
                    format!(
                        "event \"{event}\" has several targets: choose one with \"to\" {}",
                        subject.at()
                    ),
                )
                .hint(target_hint(b, targets)))
            }
        };
        let whole_row = || row.get(3).unwrap_or(pg_sys::Datum::from(0));
        check_requirements(&subject, event_id, payload.as_ref(), whole_row)?;

        let target_name = machine.state(target).name.clone();
        if target == from {
            // A self-transition changes no column, so no trigger sees it:
            // record it here.
            history::append(
                b,
                &Entry {
                    key: table_key,
                    event: Some(event),
                    from: Some(&state),
                    to: &target_name,
                    payload: payload.as_ref(),
                },
            );
            run_action(b, event_id, payload.as_ref(), whole_row);
            return Ok(target_name);
        }
        let _scope = FireScope::enter(FireContext {
            relid: b.relid,
            attnum: b.attnum,
            from: Some(from),
            to: target,
            event: event_id,
            payload,
        });
        let updated = plan(b, FireStatement::Update, key.oid()).execute(
            &[Some(key.datum()), target_name.as_str().into_datum()],
            false,
        );
        if updated == 0 {
            return Err(subject.refuse(
                ErrorKind::InsufficientPrivilege,
                format!("event \"{event}\" could not update the row: a row level security policy or a trigger skipped it"),
            ));
        }
        Ok(target_name)
    })
}

/// The one-statement way, for an event that needs no row (no guard, no
/// action) and whose target is known without the source: after its roles
/// and payload pass, one UPDATE both checks the source (it only matches a
/// row in a state the event leads from) and moves the row; the trigger
/// records it. `None` means "take the full way": it locks the row and says
/// precisely what is wrong, or handles what this cannot (a self-transition,
/// a row another transaction moved).
fn try_one_statement(
    b: &Binding,
    key: &AnyElement,
    event: EventId,
    payload: &Option<serde_json::Value>,
    expect: Option<&str>,
    to: Option<&str>,
) -> Option<String> {
    let machine = &b.machine;
    let runtime = b.runtime(event);
    if runtime.guard.is_some() || runtime.action.is_some() {
        return None;
    }
    let target = match (machine.event(event).targets.as_slice(), to) {
        (_, Some(wanted)) => machine.state_id(wanted)?,
        ([only], None) => *only,
        _ => return None,
    };
    let anywhere = Subject {
        binding: b,
        key: key.datum(),
        state: "",
    };
    check_requirements(&anywhere, event, payload.as_ref(), || {
        pg_sys::Datum::from(0)
    })
    .ok()?;
    connected(|| {
        let _scope = FireScope::enter(FireContext {
            relid: b.relid,
            attnum: b.attnum,
            from: None,
            to: target,
            event,
            payload: payload.clone(),
        });
        let moved = plan(b, FireStatement::Move { event, to: target }, key.oid())
            .execute(&[Some(key.datum()), expect.into_datum()], false);
        (moved == 1).then(|| machine.state(target).name.clone())
    })
}

/// The kept plan of one of fire's statements, for a key passed as `key_type`.
fn plan(b: &Binding, statement: FireStatement, key_type: pg_sys::Oid) -> Rc<KeptPlan> {
    b.plans.get((Statement::Fire(statement), key_type), || {
        let (table, column, key, key_sql_type) = (
            &b.table_sql,
            quote::ident(&b.column),
            quote::ident(&b.key_column),
            &b.key_type_sql,
        );
        let lock = |row: &str| {
            format!(
                "SELECT t.{column}::text, t.{key}, {row} FROM {table} t \
                  WHERE t.{key} = $1::{key_sql_type} FOR NO KEY UPDATE"
            )
        };
        match statement {
            FireStatement::LockState => (lock("NULL::record"), vec![key_type]),
            FireStatement::LockRow => (lock("t"), vec![key_type]),
            FireStatement::Update => (
                format!("UPDATE {table} t SET {column} = $2 WHERE t.{key} = $1::{key_sql_type}"),
                vec![key_type, pg_sys::TEXTOID],
            ),
            FireStatement::Move { event, to } => {
                // Sources other than the target: a self-transition changes
                // no column, so no trigger would record it.
                let sources: Vec<String> = b
                    .machine
                    .sources_to(event, to)
                    .into_iter()
                    .filter(|&s| s != to)
                    .map(|s| quote::literal(&b.machine.state(s).name))
                    .collect();
                let sources = if sources.is_empty() {
                    "NULL".to_string()
                } else {
                    sources.join(", ")
                };
                let target = quote::literal(&b.machine.state(to).name);
                (
                    format!(
                        "UPDATE {table} t SET {column} = {target} \
                          WHERE t.{key} = $1::{key_sql_type} AND t.{column} IN ({sources}) \
                            AND ($2::text IS NULL OR t.{column} = $2)"
                    ),
                    vec![key_type, pg_sys::TEXTOID],
                )
            }
        }
    })
}

fn target_hint(b: &Binding, targets: &[crate::machine::StateId]) -> String {
    let names: Vec<&str> = targets
        .iter()
        .map(|&t| b.machine.state(t).name.as_str())
        .collect();
    format!("Targets: {}.", names.join(", "))
}
