//! The row triggers behind `fsm.enforce()`: the hot path.
//!
//! `attach` creates three per bound table, shared by its bindings (see
//! `binding::triggers`): BEFORE INSERT fills a NULL state column with the
//! initial state; AFTER INSERT and AFTER UPDATE (`WHEN` a bound column
//! changed, so UPDATEs that leave the states alone never call it) check
//! the row as it was written and hold its history row (see `pending`).
//! Checking after the write sees the final values, whatever trigger or SET
//! list made them, and only rows that were written: a refusal there fails
//! the statement, so nothing of it remains. Per row: one hash lookup
//! (relation oid -> compiled bindings), two state-name lookups, one id;
//! nothing is parsed or planned per row.
//!
//! Written against the raw V1 calling convention so BEFORE INSERT can
//! return the executor's own tuple untouched (no copy per row). Refusals
//! are raised with their SQLSTATE: a trigger returning `Err` would surface
//! as XX000 "Trigger function panic", which would be a bug.

use std::borrow::Cow;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::binding::Binding;
use crate::error::{clip, ErrorKind, FsmError, FsmResult};
use crate::history::{self, Entry};
use crate::key::Key;
use crate::machine::{EventId, StateId};
use crate::pending;
use crate::transition::{
    check_requirements, event_of_update, run_action, take_fire_context, Fired, Subject,
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
    // SAFETY: the trigger manager sets tg_relation.
    let (relid, desc) = unsafe {
        let relation = td.tg_relation;
        ((*relation).rd_id, (*relation).rd_att)
    };
    // A table whose binding was removed behind our back keeps working,
    // unchecked, rather than refusing every write.
    let bindings = crate::cache::table_bindings(relid)?;
    let tuple =
        match (row_level, timing, operation) {
            (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_INSERT) => {
                // SAFETY: the row being inserted, described by its relation's
                // descriptor, which the bindings were loaded for.
                let mut row = unsafe { Row::new(td.tg_trigtuple, desc) };
                for b in bindings.iter() {
                    row = fill(b, row);
                }
                row.tuple
            }
            (true, pg_sys::TRIGGER_EVENT_AFTER, pg_sys::TRIGGER_EVENT_INSERT) => {
                // SAFETY: the row as inserted, as above.
                let row = unsafe { Row::new(td.tg_trigtuple, desc) };
                for b in bindings.iter() {
                    on_insert(b, row);
                }
                std::ptr::null_mut()
            }
            (true, pg_sys::TRIGGER_EVENT_AFTER, pg_sys::TRIGGER_EVENT_UPDATE) => {
                // SAFETY: the old and new rows as written, as above.
                let (old, new) = unsafe {
                    (
                        Row::new(td.tg_trigtuple, desc),
                        Row::new(td.tg_newtuple, desc),
                    )
                };
                for b in bindings.iter() {
                    on_update(b, old, new);
                }
                std::ptr::null_mut()
            }
            (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_UPDATE) => {
                // On a partitioned bound table: a row whose key changes may
                // move between partitions as DELETE + INSERT, which no
                // UPDATE check sees. A NULL key is PostgreSQL's to refuse.
                // SAFETY: the old and new rows of this relation.
                let (old, new) = unsafe {
                    (
                        Row::new(td.tg_trigtuple, desc),
                        Row::new(td.tg_newtuple, desc),
                    )
                };
                if let Some(b) = bindings.first() {
                    if let (Some(before), Some(after)) = (old.key_if_any(b), new.key_if_any(b)) {
                        if !b.key.equal(before, after) {
                            FsmError::new(
                                ErrorKind::FeatureNotSupported,
                                format!(
                                    "the key of a row of {} cannot change while a machine is attached to it",
                                    b.table
                                ),
                            )
                            .detail("The row would move between partitions unchecked, and its history is keyed by it.")
                            .hint("Insert a new row and move the old one to a final state instead.")
                            .located(b.fields(None))
                            .raise()
                        }
                    }
                }
                td.tg_newtuple
            }
            _ => return Err(FsmError::new(
                ErrorKind::WrongObjectType,
                "fsm.enforce() runs BEFORE INSERT, AFTER INSERT, AFTER UPDATE or BEFORE UPDATE, FOR EACH ROW; \
                 run fsm.detach() and fsm.attach() to recreate its triggers",
            )),
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

    /// The state column's state name (borrowed from a text column), or
    /// `None` for NULL.
    fn state<'t>(self, b: &Binding) -> Option<Cow<'t, str>> {
        let mut is_null = false;
        // SAFETY: b.attnum is a column of this relation of the type
        // b.state_column was made for (checked when the binding loaded); a
        // borrowed string lives as long as the tuple, the trigger call.
        unsafe {
            let datum = pg_sys::heap_getattr(self.tuple, b.attnum as i32, self.desc, &mut is_null);
            (!is_null).then(|| b.state_column.name(datum))
        }
    }

    /// The row's key. PostgreSQL's NOT NULL check of the primary key runs
    /// before AFTER triggers; a NULL is still refused (23502) here rather
    /// than read, should a key column ever reach us without it.
    /// The row's key, `None` when NULL.
    fn key_if_any(self, b: &Binding) -> Option<Key> {
        let mut is_null = false;
        // SAFETY: key_attnum is the primary key column of this relation.
        let datum = unsafe {
            pg_sys::heap_getattr(self.tuple, b.key_attnum as i32, self.desc, &mut is_null)
        };
        // SAFETY: a datum of the key column, of the key type.
        (!is_null).then(|| unsafe { Key::of_key_type(datum) })
    }

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

    /// A copy of the row with the state column set to `value` (every
    /// state name is a value of the column: checked at attach).
    fn with_state(self, b: &Binding, value: &str) -> Row {
        let datum = b.state_column.datum(value);
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

    /// The row as a composite datum of the bound table's row type, for a
    /// guard or an action: a partition's row is converted by column name.
    fn composite(self, b: &Binding) -> pg_sys::Datum {
        if !b.on_partition() {
            // SAFETY: the tuple with its own descriptor.
            return unsafe { pg_sys::heap_copy_tuple_as_datum(self.tuple, self.desc) };
        }
        // SAFETY: the bound table's row type is a live composite type; the
        // map (NULL when the layouts match) converts a tuple of `desc` to
        // it; the descriptor's reference is released after the copy.
        unsafe {
            let bound = pg_sys::lookup_rowtype_tupdesc(pg_sys::get_rel_type_id(b.bound_relid), -1);
            let map = pg_sys::convert_tuples_by_name(self.desc, bound);
            let tuple = if map.is_null() {
                self.tuple
            } else {
                pg_sys::execute_attr_map_tuple(self.tuple, map)
            };
            let datum = pg_sys::heap_copy_tuple_as_datum(tuple, bound);
            pg_sys::DecrTupleDescRefCount(bound);
            datum
        }
    }
}

/// BEFORE INSERT: a NULL state becomes the initial state.
fn fill(b: &Binding, row: Row) -> Row {
    if row.state(b).is_some() {
        return row;
    }
    let machine = &b.machine;
    row.with_state(b, &machine.state(machine.initial).name)
}

/// AFTER INSERT: the row must have been written in the initial state.
fn on_insert(b: &Rc<Binding>, row: Row) {
    let machine = &b.machine;
    let initial = machine.state(machine.initial).name.as_str();
    let key = row.key(b);
    match row.state(b) {
        Some(state) if state == initial => {}
        state => FsmError::new(
            ErrorKind::NotAllowed,
            format!(
                "a new row must start in the initial state \"{initial}\", not {} (table {}, key {})",
                state.map_or("NULL".into(), |s| format!("\"{}\"", clip(&s))),
                b.table,
                b.key_text(key.datum())
            ),
        )
        .hint(format!(
            "Leave {} NULL or set it to \"{initial}\", then fire events.",
            b.column
        ))
        .located(b.fields(None))
        .raise(),
    }
    record(b, key, None, machine.initial, None, || row.composite(b));
}

/// AFTER UPDATE that changed the state: a declared event must lead from
/// the old to the new state, and its roles, payload schema and guard must
/// agree (unless `fire` checked them already).
fn on_update(b: &Rc<Binding>, old: Row, new: Row) {
    let old_state = old.state(b).unwrap_or_default();
    let old_state = old_state.as_ref();
    let Some(new_state) = new.state(b) else {
        let subject = Subject {
            binding: b,
            key: new.key(b),
            state: old_state,
        };
        subject
            .refuse(
                ErrorKind::NotAllowed,
                format!("{} cannot be set to NULL", b.column),
            )
            .raise()
    };
    let new_state = new_state.as_ref();
    if old_state == new_state {
        // Another bound column of the table changed.
        return;
    }
    let key = new.key(b);
    let subject = Subject {
        binding: b,
        key,
        state: old_state,
    };
    let machine = &b.machine;
    let not_a_state = |state: &str| {
        subject
            .refuse(
                ErrorKind::NotAllowed,
                format!(
                    "\"{}\" is not a state of machine \"{}\"",
                    clip(state),
                    b.machine_name
                ),
            )
            .raise()
    };
    let protected = || -> ! {
        subject
            .refuse(
                ErrorKind::InsufficientPrivilege,
                format!(
                    "{} is protected: change it with fsm.fire(), not UPDATE",
                    b.column
                ),
            )
            .raise()
    };
    let (from, to) = match (machine.state_id(old_state), machine.state_id(new_state)) {
        (Some(from), Some(to)) => (from, to),
        // A protected column refuses every direct change, whatever it writes.
        _ if b.protect => protected(),
        (None, _) => not_a_state(old_state),
        (_, None) => not_a_state(new_state),
    };

    let fired = take_fire_context(b, key, from, to);
    let event = match &fired {
        Some(fired) => fired.event,
        None => {
            if b.protect {
                protected()
            }
            let branches = event_of_update(&subject, from, to).unwrap_or_else(|e| e.raise());
            check_requirements(&subject, branches, None, || new.composite(b))
                .unwrap_or_else(|e| e.raise())
        }
    };
    record(b, key, Some((event, from)), to, fired.as_ref(), || {
        new.composite(b)
    });
}

/// Records a written change: held until the statement ends (see
/// `pending`), unless something must see its history row now: an action,
/// the binding's NOTIFY (which carries the row's id), or what `fire` gave
/// (a payload, an idempotency key).
fn record(
    b: &Rc<Binding>,
    key: Key,
    moved: Option<(EventId, StateId)>,
    to: StateId,
    fired: Option<&Fired>,
    row: impl FnOnce() -> pg_sys::Datum,
) {
    let event = moved.map(|(e, _)| e);
    let has_action = event.is_some_and(|e| b.runtime(e).action.is_some())
        && !fired.is_some_and(|f| f.recovering);
    let payload = fired.and_then(|f| f.payload);
    let idempotency_key = fired.and_then(|f| f.idempotency_key);
    if payload.is_none() && idempotency_key.is_none() && !has_action && b.notify.is_none() {
        pending::hold(b, key, event, moved.map(|(_, f)| f), to);
        return;
    }
    let machine = &b.machine;
    history::append(
        b,
        &Entry {
            key,
            event: event.map(|e| machine.event(e).name.as_str()),
            from: moved.map(|(_, f)| machine.state(f).name.as_str()),
            to: &machine.state(to).name,
            payload,
            idempotency_key,
        },
    );
    if let Some(event) = event.filter(|_| has_action) {
        run_action(b, event, payload, row).unwrap_or_else(|e| e.raise());
    }
}
