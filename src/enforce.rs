//! The row trigger `fsm.enforce()`: the hot path.
//!
//! `attach` creates it twice per bound column: `BEFORE INSERT`, and
//! `BEFORE UPDATE OF <col> … WHEN (OLD.<col> IS DISTINCT FROM NEW.<col>)`, so
//! UPDATEs that leave the state alone never call it. Per row it does one
//! hash lookup (trigger oid -> compiled binding), two state-name lookups, and
//! one execution of a kept plan for the history row; nothing is parsed or
//! planned per row.
//!
//! It is written against the raw V1 calling convention so it can return the
//! executor's own tuple untouched on UPDATE (no copy per row). Refusals are
//! raised with their SQLSTATE: a trigger returning `Err` would surface as
//! XX000 "Trigger function panic", which would be a bug.

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::binding::Binding;
use crate::error::{clip, ErrorKind, FsmError, FsmResult};
use crate::history::{self, Entry};
use crate::key::Key;
use crate::pending;
use crate::transition::{
    check_requirements, event_of_update, run_action, take_fire_context, Subject,
};

v1_function!(fsm_enforce, pg_finfo_fsm_enforce, enforce);

/// The trigger function behind `fsm.enforce()`.
unsafe fn enforce(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: fcinfo is valid for this call; context is checked to be
    // TriggerData before it is read as one.
    let context = unsafe { (*fcinfo).context };
    // SAFETY: a non-NULL context is a Node; its tag says what it is.
    if context.is_null() || unsafe { (*context).type_ } != pg_sys::NodeTag::T_TriggerData {
        return Err(FsmError::new(
            ErrorKind::WrongObjectType,
            "fsm.enforce() must be called as a trigger",
        ));
    }
    // SAFETY: a TriggerData node, alive for the whole trigger call.
    let td = unsafe { &*(context as *const pg_sys::TriggerData) };
    let event = td.tg_event;
    let row_level = event & pg_sys::TRIGGER_EVENT_ROW != 0;
    let timing = event & pg_sys::TRIGGER_EVENT_TIMINGMASK;
    let operation = event & pg_sys::TRIGGER_EVENT_OPMASK;
    // SAFETY: the trigger manager sets tg_relation and tg_trigger.
    let (relid, desc, trigger) = unsafe {
        let relation = td.tg_relation;
        ((*relation).rd_id, (*relation).rd_att, &*td.tg_trigger)
    };
    let b = crate::cache::trigger_binding(trigger, relid)?;
    let tuple = match (row_level, timing, operation) {
        (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_INSERT) => {
            // SAFETY: the row being inserted, described by its relation's
            // descriptor, which the binding was loaded for.
            on_insert(&b, unsafe { Row::new(td.tg_trigtuple, desc) }).tuple
        }
        (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_UPDATE) => {
            // SAFETY: the old and new rows of this UPDATE, as above.
            let (old, new) = unsafe { (Row::new(td.tg_trigtuple, desc), Row::new(td.tg_newtuple, desc)) };
            on_update(&b, old, new).tuple
        }
        (false, pg_sys::TRIGGER_EVENT_AFTER, pg_sys::TRIGGER_EVENT_UPDATE) => {
            pending::flush(&b);
            std::ptr::null_mut()
        }
        _ => {
            return Err(FsmError::new(
                ErrorKind::WrongObjectType,
                "fsm.enforce() runs BEFORE INSERT or UPDATE FOR EACH ROW, or AFTER UPDATE FOR EACH STATEMENT",
            ))
        }
    };
    Ok(pg_sys::Datum::from(tuple))
}

/// A row the trigger was handed, with its relation's descriptor. Its
/// readers take column numbers from the binding, which was loaded for this
/// relation: the state column is text or varchar, the key column is of the
/// key type (an ALTER of either reloads the binding).
#[derive(Clone, Copy)]
struct Row {
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// # Safety
    /// `tuple` is a live tuple of the relation `desc` describes, and the
    /// relation is the binding's table.
    unsafe fn new(tuple: *mut pg_sys::HeapTupleData, desc: pg_sys::TupleDesc) -> Row {
        Row { tuple, desc }
    }

    /// The state column as a borrowed string, or `None` for NULL.
    fn state<'t>(self, b: &Binding) -> Option<&'t str> {
        let mut is_null = false;
        // SAFETY: b.attnum is a text or varchar column of this relation
        // (checked when the binding loaded); the string lives as long as
        // the tuple, that is the trigger call.
        unsafe {
            let datum = pg_sys::heap_getattr(self.tuple, b.attnum as i32, self.desc, &mut is_null);
            <&str as FromDatum>::from_datum(datum, is_null)
        }
    }

    /// The row's key. A NULL key is refused (23502) before anything uses
    /// it: BEFORE row triggers run before PostgreSQL's own NOT NULL check.
    fn key(self, b: &Binding) -> Key {
        let mut is_null = false;
        // SAFETY: key_attnum is the primary key column of this relation.
        let datum = unsafe {
            pg_sys::heap_getattr(self.tuple, b.key_attnum as i32, self.desc, &mut is_null)
        };
        if is_null {
            FsmError::new(
                ErrorKind::NotNullViolation,
                format!("the key {} of {} must not be NULL", b.key_column, b.table),
            )
            .raise()
        }
        // SAFETY: a non-NULL datum of the key column, of the key type.
        unsafe { Key::of_key_type(datum) }
    }

    /// A copy of the row with the state column set to `value`.
    fn with_state(self, b: &Binding, value: &str) -> Row {
        let datum = value.into_datum().expect("text datum");
        let column = b.attnum as i32;
        let is_null = false;
        // SAFETY: one replaced column of a text-like type (text is binary
        // compatible with varchar); arrays of one element each.
        let tuple = unsafe {
            pg_sys::heap_modify_tuple_by_cols(
                self.tuple,
                self.desc,
                1,
                &column as *const i32 as *mut i32,
                &datum as *const _ as *mut _,
                &is_null as *const bool as *mut bool,
            )
        };
        Row { tuple, ..self }
    }

    /// The row as a composite datum, for a guard or an action.
    fn composite(self) -> pg_sys::Datum {
        // SAFETY: the tuple with its own descriptor.
        unsafe { pg_sys::heap_copy_tuple_as_datum(self.tuple, self.desc) }
    }
}

/// INSERT: a NULL state becomes the initial state; any other state than
/// the initial one is refused.
fn on_insert(b: &Binding, row: Row) -> Row {
    let machine = &b.machine;
    let initial = machine.state(machine.initial).name.as_str();
    let key = row.key(b);
    let row = match row.state(b) {
        None => row.with_state(b, initial),
        Some(state) if state == initial => row,
        Some(state) => FsmError::new(
            ErrorKind::NotAllowed,
            format!(
                "a new row must start in the initial state \"{initial}\", not \"{}\" (table {}, key {})",
                clip(state),
                b.table,
                b.key_text(key.datum())
            ),
        )
        .hint(format!(
            "Leave {} NULL or set it to \"{initial}\", then fire events.",
            b.column
        ))
        .raise(),
    };
    // `key` still points into the tuple the executor handed us, which
    // outlives this call even when with_state made a copy.
    history::append(
        b,
        &Entry {
            key,
            event: None,
            from: None,
            to: initial,
            payload: None,
        },
    );
    row
}

/// UPDATE that changes the state: a declared event must lead from the old
/// to the new state, and its roles, payload schema and guard must agree.
fn on_update(b: &Rc<Binding>, old: Row, new: Row) -> Row {
    let key = new.key(b);
    let old_state = old.state(b).unwrap_or("");
    let subject = Subject {
        binding: b,
        key,
        state: old_state,
    };
    let machine = &b.machine;
    let Some(new_state) = new.state(b) else {
        subject
            .refuse(
                ErrorKind::NotAllowed,
                format!("{} cannot be set to NULL", b.column),
            )
            .raise()
    };
    let from = machine.state_id(old_state).unwrap_or_else(|| {
        subject
            .refuse(
                ErrorKind::NotAllowed,
                format!(
                    "\"{}\" is not a state of machine \"{}\"",
                    clip(old_state),
                    b.machine_name
                ),
            )
            .raise()
    });
    let Some(to) = machine.state_id(new_state) else {
        subject
            .refuse(
                ErrorKind::NotAllowed,
                format!(
                    "\"{}\" is not a state of machine \"{}\"",
                    clip(new_state),
                    b.machine_name
                ),
            )
            .raise()
    };

    let (event, payload) = match take_fire_context(b, key, from, to) {
        Some(fired) => fired,
        None => {
            if b.protect {
                subject
                    .refuse(
                        ErrorKind::InsufficientPrivilege,
                        format!(
                            "{} is protected: change it with fsm.fire(), not UPDATE",
                            b.column
                        ),
                    )
                    .raise()
            }
            let event = event_of_update(&subject, from, to).unwrap_or_else(|e| e.raise());
            check_requirements(&subject, event, None, || new.composite())
                .unwrap_or_else(|e| e.raise());
            (event, None)
        }
    };
    // A plain UPDATE's history row waits for the statement's end (see
    // `pending`), unless something must see it now: an action, or the
    // binding's NOTIFY (`batches_updates` is false then).
    let has_action = b.runtime(event).action.is_some();
    if b.batches_updates && payload.is_none() && !has_action {
        pending::hold(b, key, event, from, to);
        return new;
    }
    history::append(
        b,
        &Entry {
            key,
            event: Some(&machine.event(event).name),
            from: Some(old_state),
            to: new_state,
            payload,
        },
    );
    run_action(b, event, payload, || new.composite()).unwrap_or_else(|e| e.raise());
    new
}
