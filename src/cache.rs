//! The per-backend cache of bindings, keyed by table oid and by trigger
//! oid, and its invalidation.
//!
//! A table's entries are dropped whenever its relcache entry is
//! invalidated. PostgreSQL sends that invalidation to every backend when the
//! table is altered, when triggers are created, dropped, enabled or
//! disabled (attach, detach), and when `create_machine(replace => true)`
//! asks for it on each bound table, so no backend acts on a stale machine.
//! Entries still in use up the stack stay alive through their `Rc`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::binding::{self, Binding};
use crate::error::{clip, ErrorKind, FsmError, FsmResult};

pub type TableBindings = Rc<Vec<Rc<Binding>>>;

thread_local! {
    static BY_TABLE: RefCell<HashMap<pg_sys::Oid, TableBindings>> = RefCell::new(HashMap::new());
    static BY_TRIGGER: RefCell<HashMap<pg_sys::Oid, Rc<Binding>>> = RefCell::new(HashMap::new());
}

/// Registers the relcache callback that empties the cache; once per backend.
pub fn register_invalidation() {
    // SAFETY: the callback is a plain function that never raises.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        )
    };
}

/// Forgets what we know of `relid` (or of everything, for InvalidOid).
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let _ = BY_TABLE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.remove(&relid);
            }
        }
    });
    let _ = BY_TRIGGER.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.retain(|_, b| b.relid != relid);
            }
        }
    });
}

/// Asks every backend to reload the bindings of `relid` at its next use.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues a transactional invalidation message.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// The bindings of a table (empty when nothing is attached).
pub fn table_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    if let Some(found) = BY_TABLE.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(found);
    }
    let loaded: TableBindings = Rc::new(binding::load(relid)?.into_iter().map(Rc::new).collect());
    BY_TABLE.with(|m| m.borrow_mut().insert(relid, loaded.clone()));
    Ok(loaded)
}

/// The bindings of a table that must have some: 42704 when none is attached.
pub fn attached_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    let bindings = table_bindings(relid)?;
    if bindings.is_empty() {
        return Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!(
                "no machine is attached to {}",
                crate::key::datum_text(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID)
            ),
        )
        .hint("Attach one with fsm.attach(table, column, machine)."));
    }
    Ok(bindings)
}

/// The binding a trigger enforces: the hot path's only lookup, by trigger oid.
pub fn trigger_binding(trigger: &pg_sys::Trigger, relid: pg_sys::Oid) -> FsmResult<Rc<Binding>> {
    if let Some(found) = BY_TRIGGER.with(|m| m.borrow().get(&trigger.tgoid).cloned()) {
        return Ok(found);
    }
    let column = trigger_column(trigger)?;
    let binding = table_bindings(relid)?
        .iter()
        .find(|b| b.column == column)
        .cloned()
        .ok_or_else(|| {
            FsmError::new(
                ErrorKind::UndefinedObject,
                format!(
                    "column \"{}\" of {} has an fsm trigger but no binding",
                    clip(&column),
                    crate::key::datum_text(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID)
                ),
            )
            .hint("Run fsm.detach() and fsm.attach() again, or drop the trigger.")
        })?;
    BY_TRIGGER.with(|m| m.borrow_mut().insert(trigger.tgoid, binding.clone()));
    Ok(binding)
}

/// The column name passed as the trigger's one argument.
fn trigger_column(trigger: &pg_sys::Trigger) -> FsmResult<String> {
    if trigger.tgnargs < 1 || trigger.tgargs.is_null() {
        return Err(FsmError::new(
            ErrorKind::InvalidTableDefinition,
            "fsm.enforce() must be created by fsm.attach(), with the column as its argument",
        ));
    }
    // SAFETY: tgargs holds tgnargs (>= 1) NUL-terminated strings.
    Ok(unsafe { CStr::from_ptr(*trigger.tgargs) }
        .to_string_lossy()
        .into_owned())
}
