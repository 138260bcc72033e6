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

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::catalog::Binding;
use crate::error::{allowed_hint, ErrorKind, FsmError, FsmResult};
use crate::history::{self, Entry};
use crate::machine::{EventId, StateId};
use crate::pending;
use crate::settings;
use crate::spi_plan::{connected, KeptPlan};

/// What `fsm.fire` tells the trigger about the UPDATE it is about to run:
/// the event it already checked, and the payload to record. `from` is
/// `None` when fire's UPDATE itself only matches rows in a state the event
/// leads from (see `fire::try_one_statement`).
pub struct FireContext {
    pub relid: pg_sys::Oid,
    pub attnum: i16,
    pub from: Option<StateId>,
    pub to: StateId,
    pub event: EventId,
    pub payload: Option<serde_json::Value>,
}

thread_local! {
    static FIRE: RefCell<Option<FireContext>> = const { RefCell::new(None) };
}

/// Holds the fire context for the duration of one UPDATE; clears it on
/// drop, so an ERROR (which unwinds) cannot leave it behind.
pub struct FireScope;

impl FireScope {
    pub fn enter(context: FireContext) -> FireScope {
        FIRE.with(|f| *f.borrow_mut() = Some(context));
        FireScope
    }
}

impl Drop for FireScope {
    fn drop(&mut self) {
        let _ = FIRE.try_with(|f| f.borrow_mut().take());
    }
}

/// Takes the fire context if it is for this binding and this move.
fn take_fire_context(b: &Binding, from: StateId, to: StateId) -> Option<FireContext> {
    FIRE.with(|f| {
        let mut f = f.borrow_mut();
        match f.as_ref() {
            Some(c)
                if c.relid == b.relid
                    && c.attnum == b.attnum
                    && c.to == to
                    && c.from.map_or_else(
                        || b.machine.targets(from, c.event).contains(&to),
                        |f| f == from,
                    ) =>
            {
                f.take()
            }
            _ => None,
        }
    })
}

/// The entity a check is about, for messages that name table, key and state.
pub struct Subject<'a> {
    pub binding: &'a Binding,
    pub key: pg_sys::Datum,
    pub state: &'a str,
}

impl Subject<'_> {
    /// "(table orders, key 42, state "paid")": appended to every refusal.
    pub fn at(&self) -> String {
        format!(
            "(table {}, key {}, state \"{}\")",
            self.binding.table,
            self.binding.key_text(self.key),
            self.state
        )
    }

    pub fn refuse(&self, kind: ErrorKind, what: String) -> FsmError {
        let from = self.binding.machine.state_id(self.state);
        let allowed = from
            .map(|s| self.binding.machine.events_from(s))
            .unwrap_or_default();
        FsmError::new(kind, format!("{what} {}", self.at()))
            .hint(allowed_hint(self.state, &allowed))
    }
}

/// Roles, payload schema and guard of `event`, in that order. `row` gives
/// the composite row datum for the guard; it is only called when there is
/// a guard.
pub fn check_requirements(
    subject: &Subject,
    event: EventId,
    payload: Option<&serde_json::Value>,
    row: impl FnOnce() -> pg_sys::Datum,
) -> FsmResult<()> {
    let b = subject.binding;
    let e = b.machine.event(event);
    if !e.roles.is_empty() && !e.roles.iter().any(|r| current_user_is_member(r)) {
        return Err(subject.refuse(
            ErrorKind::InsufficientPrivilege,
            format!(
                "event \"{}\" needs membership in one of: {}",
                e.name,
                e.roles.join(", ")
            ),
        ));
    }
    if let Some(schema) = &e.payload {
        if let Err(why) = schema.check(payload) {
            return Err(subject.refuse(
                ErrorKind::InvalidParameter,
                format!(
                    "payload of event \"{}\" does not match its schema: {why}",
                    e.name
                ),
            ));
        }
    }
    if let Some(guard) = &b.runtime(event).guard {
        let guard = guard.as_ref().map_err(Clone::clone)?;
        let row = row();
        let passed = connected(|| {
            let plan = guard.plan.get_or_init(|| {
                KeptPlan::prepare(
                    &format!("SELECT {}($1, $2)", guard.sql_name),
                    &[b.row_type, pg_sys::JSONBOID],
                )
            });
            let payload = payload.map(|p| JsonB(p.clone())).into_datum();
            plan.first_datum(&[Some(row), payload])
                .map(|d| d.value() != 0)
        });
        if passed != Some(true) {
            return Err(subject.refuse(
                ErrorKind::CheckViolation,
                format!("guard {} refused event \"{}\"", guard.sql_name, e.name),
            ));
        }
    }
    Ok(())
}

fn current_user_is_member(role: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(role) else {
        return false;
    };
    // SAFETY: syscache lookups by a NUL-terminated name and by oid.
    unsafe {
        let role = pg_sys::get_role_oid(name.as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::is_member_of_role(pg_sys::GetUserId(), role)
    }
}

v1_function!(fsm_enforce, pg_finfo_fsm_enforce, enforce);

/// The trigger function behind `fsm.enforce()`.
unsafe fn enforce(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: checked below that we were called as a trigger.
    let context = unsafe { (*fcinfo).context };
    if context.is_null() || unsafe { (*context).type_ } != pg_sys::NodeTag::T_TriggerData {
        pgrx::error!("fsm.enforce() must be called as a trigger");
    }
    let td = unsafe { &*(context as *const pg_sys::TriggerData) };
    let event = td.tg_event;
    let row_level = event & pg_sys::TRIGGER_EVENT_ROW != 0;
    let timing = event & pg_sys::TRIGGER_EVENT_TIMINGMASK;
    let operation = event & pg_sys::TRIGGER_EVENT_OPMASK;
    let relation = td.tg_relation;
    let relid = unsafe { (*relation).rd_id };
    let desc = unsafe { (*relation).rd_att };
    let b = crate::catalog::trigger_binding(unsafe { &*td.tg_trigger }, relid)?;
    let tuple = match (row_level, timing, operation) {
        (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_INSERT) => {
            on_insert(&b, td.tg_trigtuple, desc)
        }
        (true, pg_sys::TRIGGER_EVENT_BEFORE, pg_sys::TRIGGER_EVENT_UPDATE) => {
            on_update(&b, td.tg_trigtuple, td.tg_newtuple, desc)
        }
        (false, pg_sys::TRIGGER_EVENT_AFTER, pg_sys::TRIGGER_EVENT_UPDATE) => {
            pending::flush(&b);
            std::ptr::null_mut()
        }
        _ => pgrx::error!(
            "fsm.enforce() runs BEFORE INSERT or UPDATE FOR EACH ROW, or AFTER UPDATE FOR EACH STATEMENT"
        ),
    };
    Ok(pg_sys::Datum::from(tuple))
}

/// The value of attribute `attnum` as a borrowed string, or `None` for NULL.
fn text_attr<'t>(
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
    attnum: i16,
) -> Option<&'t str> {
    let mut is_null = false;
    // SAFETY: attnum is a live attribute of this tuple's descriptor, of a
    // text-like type (checked by attach).
    unsafe {
        let datum = pg_sys::heap_getattr(tuple, attnum as i32, desc, &mut is_null);
        <&str as FromDatum>::from_datum(datum, is_null)
    }
}

fn key_attr(
    b: &Binding,
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
) -> Option<pg_sys::Datum> {
    let mut is_null = false;
    // SAFETY: key_attnum is the primary key column of this relation.
    let datum = unsafe { pg_sys::heap_getattr(tuple, b.key_attnum as i32, desc, &mut is_null) };
    (!is_null).then_some(datum)
}

/// INSERT: a NULL state becomes the initial state; any other state than
/// the initial one is refused.
fn on_insert(
    b: &Binding,
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
) -> *mut pg_sys::HeapTupleData {
    let machine = &b.machine;
    let initial = machine.state(machine.initial).name.as_str();
    let tuple = match text_attr(tuple, desc, b.attnum) {
        None => set_text_attr(tuple, desc, b.attnum, initial),
        Some(state) if state == initial => tuple,
        Some(state) => {
            let key = key_attr(b, tuple, desc)
                .map(|k| b.key_text(k))
                .unwrap_or_else(|| "NULL".into());
            FsmError::new(
                ErrorKind::NotAllowed,
                format!("a new row must start in the initial state \"{initial}\", not \"{state}\" (table {}, key {key})", b.table),
            )
            .hint(format!("Leave {} NULL or set it to \"{initial}\", then fire events.", b.column))
            .raise()
        }
    };
    if let Some(key) = key_attr(b, tuple, desc) {
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
    }
    tuple
}

fn set_text_attr(
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
    attnum: i16,
    value: &str,
) -> *mut pg_sys::HeapTupleData {
    let datum = value.into_datum().expect("text datum");
    let column = attnum as i32;
    let is_null = false;
    // SAFETY: one replaced column of a text-like type; text is binary
    // compatible with varchar.
    unsafe {
        pg_sys::heap_modify_tuple_by_cols(
            tuple,
            desc,
            1,
            &column as *const i32 as *mut i32,
            &datum as *const _ as *mut _,
            &is_null as *const bool as *mut bool,
        )
    }
}

/// UPDATE that changes the state: a declared event must lead from the old
/// to the new state, and its roles, payload schema and guard must agree.
fn on_update(
    b: &Rc<Binding>,
    old: *mut pg_sys::HeapTupleData,
    new: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
) -> *mut pg_sys::HeapTupleData {
    let key = key_attr(b, new, desc).unwrap_or(pg_sys::Datum::from(0));
    let old_state = text_attr(old, desc, b.attnum).unwrap_or("");
    let subject = Subject {
        binding: b,
        key,
        state: old_state,
    };
    let machine = &b.machine;
    let Some(new_state) = text_attr(new, desc, b.attnum) else {
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
                    "\"{old_state}\" is not a state of machine \"{}\"",
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
                    "\"{new_state}\" is not a state of machine \"{}\"",
                    b.machine_name
                ),
            )
            .raise()
    };

    let (event, payload) = match take_fire_context(b, from, to) {
        Some(fired) => (fired.event, fired.payload),
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
            check_requirements(&subject, event, None, || unsafe {
                pg_sys::heap_copy_tuple_as_datum(new, desc)
            })
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
            payload: payload.as_ref(),
        },
    );
    run_action(b, event, payload.as_ref(), || unsafe {
        pg_sys::heap_copy_tuple_as_datum(new, desc)
    });
    new
}

/// Calls the event's action, if it has one, with the new row and the
/// payload. Its ERROR fails the statement: nothing of the change remains.
pub fn run_action(
    b: &Binding,
    event: EventId,
    payload: Option<&serde_json::Value>,
    row: impl FnOnce() -> pg_sys::Datum,
) {
    let Some(action) = &b.runtime(event).action else {
        return;
    };
    let action = action.as_ref().unwrap_or_else(|e| e.clone().raise());
    let row = row();
    connected(|| {
        let plan = action.plan.get_or_init(|| {
            KeptPlan::prepare(
                &format!("SELECT {}($1, $2)", action.sql_name),
                &[b.row_type, pg_sys::JSONBOID],
            )
        });
        plan.execute(
            &[Some(row), payload.map(|p| JsonB(p.clone())).into_datum()],
            false,
        );
    });
}

/// The event a plain UPDATE performs: the one declared from `from` to
/// `to`, or, where several are, the one `fsm.event` names.
fn event_of_update(subject: &Subject, from: StateId, to: StateId) -> FsmResult<EventId> {
    let machine = &subject.binding.machine;
    let to_name = &machine.state(to).name;
    match machine.events_between(from, to) {
        [] => Err(subject.refuse(
            ErrorKind::NotAllowed,
            format!("no event leads to \"{to_name}\""),
        )),
        [one] => Ok(*one),
        several => {
            let names: Vec<&str> = several
                .iter()
                .map(|&e| machine.event(e).name.as_str())
                .collect();
            several
                .iter()
                .copied()
                .find(|&e| settings::equals(&settings::EVENT, &machine.event(e).name))
                .ok_or_else(|| {
                    FsmError::new(
                        ErrorKind::NotAllowed,
                        format!(
                            "several events lead to \"{to_name}\": {} {}",
                            names.join(", "),
                            subject.at()
                        ),
                    )
                    .hint(format!(
                        "SET LOCAL fsm.event to one of: {}.",
                        names.join(", ")
                    ))
                })
        }
    }
}
