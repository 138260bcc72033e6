//! Asking before acting: `fsm.can_fire` and `fsm.available_events` apply
//! the rules `fire` applies (source state, roles, payload schema, guard) to
//! an entity's row as it is now, without locking or changing anything.
//!
//! The row is read as the caller, so SELECT on the table is needed and row
//! level security applies (a row the caller cannot see is not found).
//! Raw V1 functions, declared in `sql/functions.sql`, so the key converts
//! exactly, as for `fire`.

use pgrx::pg_sys;
use pgrx::IntoDatum;

use crate::args::Args;
use crate::binding::{Binding, FireStatement};
use crate::cache;
use crate::error::{clip, required, ErrorKind, FsmError, FsmResult};
use crate::fire::{choose_binding, plan, whole_row};
use crate::json::Jsonb;
use crate::key::Key;
use crate::machine::EventId;
use crate::spi_plan::{connected, Row};
use crate::transition::{first_passing, Payload};

v1_function!(fsm_can_fire, pg_finfo_fsm_can_fire, can_fire);
v1_function!(
    fsm_available_events,
    pg_finfo_fsm_available_events,
    available_events
);

/// `fsm.can_fire(tbl, key, event, payload, col)`: whether `fire` with these
/// arguments would move the entity now (its source state, roles, payload
/// schema and guard; a dynamic target counts when any target is open).
///
/// # Errors
/// As `fire` for what is not a "no": 22004 a NULL required argument, 42P01
/// no such table, 42704 no machine or no such event, 42725 an event of
/// several machines and no `col`, P0002 no such key (or a row the caller
/// cannot see), 22P02 a key not exactly of the key type, 42501 without
/// SELECT on the table.
unsafe fn can_fire(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let tbl = args.relation(0, "tbl")?;
    let key = required(args.datum(1), "key")?;
    let key_type = args.type_of(1)?;
    let event = required(args.text(2), "event")?;
    let payload = args.jsonb(3);
    let bindings = cache::attached_bindings(tbl)?;
    let b = choose_binding(&bindings, &event, args.name(4).as_deref())?;
    let Some(event_id) = b.machine.event_id(&event) else {
        return Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!(
                "event \"{}\" is not an event of machine \"{}\"",
                clip(&event),
                b.machine_name
            ),
        )
        .located(b.fields(None)));
    };
    let allowed = connected(|| -> FsmResult<bool> {
        // SAFETY: the converted datum is of the key type.
        let key = unsafe { Key::of_key_type(b.key.convert(key, key_type, false)?) };
        let (state, row) = current_row(b, key)?;
        Ok(why_not(b, event_id, &state, &row, payload, Payload::Check)?.is_none())
    })?;
    Ok(pg_sys::Datum::from(allowed))
}

/// `fsm.available_events(tbl, key, col)`: every event of the machine, in
/// name order, with the states it leads to from the current
/// one, whether it is allowed now (source state, roles, guard) and, when
/// not, why. The payload is checked when the event is fired.
///
/// # Errors
/// 22004, 42P01, 42704, P0002, 22P02, 42501 as `can_fire`; 42725 when the
/// table carries several machines and `col` names none.
unsafe fn available_events(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let tbl = args.relation(0, "tbl")?;
    let key = required(args.datum(1), "key")?;
    let key_type = args.type_of(1)?;
    let bindings = cache::attached_bindings(tbl)?;
    let b = crate::binding::named_or_only(&bindings, args.name(2).as_deref())?;
    // SAFETY: a valid fcinfo of a set-returning call; the result rows are
    // (event, to_states, allowed, reason), as declared.
    let rsinfo = unsafe { crate::read::result_set(fcinfo) };
    connected(|| -> FsmResult<()> {
        // SAFETY: the converted datum is of the key type.
        let key = unsafe { Key::of_key_type(b.key.convert(key, key_type, false)?) };
        let (state, row) = current_row(b, key)?;
        let machine = &b.machine;
        let from = machine.state_id(&state);
        // One row per event name: its first branch stands for it.
        let mut events: Vec<EventId> = (0..machine.events.len() as EventId)
            .filter(|&e| machine.is_first_branch(e))
            .collect();
        events.sort_by(|&a, &b| machine.event(a).name.cmp(&machine.event(b).name));
        for event_id in events {
            let to_states: Vec<String> = from
                .map(|s| machine.targets_by_name(s, event_id))
                .unwrap_or_default()
                .iter()
                .map(|&t| machine.state(t).name.clone())
                .collect();
            let reason = why_not(b, event_id, &state, &row, None, Payload::Skip)?;
            let values = [
                machine.event(event_id).name.as_str().into_datum(),
                to_states.into_datum(),
                reason.is_none().into_datum(),
                reason.into_datum(),
            ];
            let mut datums = values.map(|v| v.unwrap_or(pg_sys::Datum::from(0)));
            let mut nulls = values.map(|v| v.is_none());
            // SAFETY: four datums of the declared result columns' types
            // (text, text[], boolean, text); the tuplestore copies them.
            unsafe {
                pg_sys::tuplestore_putvalues(
                    rsinfo.setResult,
                    rsinfo.setDesc,
                    datums.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                );
            }
        }
        Ok(())
    })?;
    Ok(pg_sys::Datum::from(0))
}

/// The entity's state and whole row as the caller sees them now; P0002
/// when there is no such row (or the caller's policies hide it).
fn current_row(b: &Binding, key: Key) -> FsmResult<(String, Row)> {
    let Some(row) = plan(b, FireStatement::ReadRow).first_row(&[Some(key.datum())]) else {
        return Err(FsmError::new(
            ErrorKind::KeyNotFound,
            format!("no row of {} has key {}", b.table, b.key_text(key.datum())),
        )
        .located(b.fields(None)));
    };
    Ok((row.text(1)?.unwrap_or_default(), row))
}

/// Why `event` cannot be fired from `state` on `row` now, or `None` when
/// it can: not from this state first, then the first requirement that
/// refuses; for an event with branches, the first branch from this
/// state whose requirements pass, or the first one's refusal (see
/// `transition::first_passing`).
fn why_not(
    b: &Binding,
    event: EventId,
    state: &str,
    row: &Row,
    payload: Option<Jsonb>,
    check_payload: Payload,
) -> FsmResult<Option<String>> {
    let machine = &b.machine;
    let Some(from) = machine.state_id(state) else {
        return Ok(Some(format!(
            "\"{}\" is not a state of machine \"{}\"",
            clip(state),
            b.machine_name
        )));
    };
    let branches = machine.branches_from(event, from);
    if branches.is_empty() {
        return Ok(Some(format!(
            "event \"{}\" is not allowed from state \"{}\"",
            machine.event(event).name,
            clip(state)
        )));
    }
    let taken = first_passing(b, &branches, payload, check_payload, || whole_row(b, row))?;
    Ok(taken
        .err()
        .map(|(branch, refusal)| refusal.describe(b, branch).1))
}
