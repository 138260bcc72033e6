//! History rows of plain UPDATEs, held until their statement ends and then
//! appended with one `INSERT … SELECT FROM unnest(…)`.
//!
//! Why: appending through SPI once per row costs more than the row's own
//! UPDATE; one INSERT per statement costs about what the hand-written floor
//! pays (W3 in BENCH.md). The row trigger still checks each row as it
//! comes and makes its id then, so ids keep the order of the moves.
//!
//! Rows wait in backend memory, tagged with the subtransaction level that
//! made them. The binding's `AFTER UPDATE … FOR EACH STATEMENT` trigger
//! appends them; so does the row trigger itself every `FLUSH_AT` rows, to
//! bound memory. A subtransaction abort drops the rows it made. A commit
//! with rows still waiting (their statement trigger never ran) fails rather
//! than lose history. Rows with a payload or an action are never held: an
//! action may read the history row it follows.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::binding::Binding;
use crate::history::{self, Held};
use crate::key::{Key, TypeStorage};
use crate::machine::{EventId, StateId};

/// Rows held for one binding before the row trigger appends them itself.
const FLUSH_AT: usize = 10_000;

struct Batch {
    binding: Rc<Binding>,
    level: i32,
    rows: Vec<Held>,
}

thread_local! {
    static HELD: RefCell<Vec<Batch>> = const { RefCell::new(Vec::new()) };
}

fn nest_level() -> i32 {
    // SAFETY: reads the current transaction state.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }
}

/// Holds the history row of one transition until the statement ends.
pub fn hold(b: &Rc<Binding>, key: Key, event: EventId, from: StateId, to: StateId) {
    let key = keep_until_commit(key.datum(), b.key.storage);
    let row = Held {
        id: crate::uuid7::next_bytes(),
        key,
        event,
        from,
        to,
    };
    let level = nest_level();
    let full = HELD.with(|held| {
        let mut held = held.borrow_mut();
        let batch = match held
            .iter_mut()
            .position(|x| same_binding(&x.binding, b) && x.level == level)
        {
            Some(i) => &mut held[i],
            None => {
                held.push(Batch {
                    binding: b.clone(),
                    level,
                    rows: Vec::new(),
                });
                held.last_mut().expect("just pushed")
            }
        };
        batch.rows.push(row);
        batch.rows.len() >= FLUSH_AT
    });
    if full {
        flush(b);
    }
}

/// A copy of a key datum that lives as long as the transaction (the
/// tuple it came from does not outlive the row's trigger call).
fn keep_until_commit(key: pg_sys::Datum, storage: TypeStorage) -> pg_sys::Datum {
    if storage.by_value {
        return key;
    }
    // SAFETY: a datum of the key type: `len` bytes, or a varlena that
    // pg_detoast_datum_copy copies (detoasted) into the current context.
    unsafe {
        let saved = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
        let copy = if storage.len > 0 {
            let bytes = pg_sys::palloc(storage.len as usize);
            std::ptr::copy_nonoverlapping(
                key.cast_mut_ptr::<u8>(),
                bytes as *mut u8,
                storage.len as usize,
            );
            pg_sys::Datum::from(bytes)
        } else {
            pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(key.cast_mut_ptr()))
        };
        pg_sys::MemoryContextSwitchTo(saved);
        copy
    }
}

/// Appends the rows held for `b` at this subtransaction level or deeper.
/// Called by the statement trigger, and by `hold` when a batch is full.
pub fn flush(b: &Binding) {
    let level = nest_level();
    let batches: Vec<Batch> = HELD.with(|held| {
        let mut held = held.borrow_mut();
        let (mine, others) = std::mem::take(&mut *held)
            .into_iter()
            .partition(|x| same_binding(&x.binding, b) && x.level >= level);
        *held = others;
        mine
    });
    for batch in batches {
        history::append_rows(&batch.binding, &batch.rows);
    }
}

/// By table and column, not by pointer: the statement trigger may see a
/// binding reloaded after an invalidation.
fn same_binding(a: &Binding, b: &Binding) -> bool {
    a.relid == b.relid && a.attnum == b.attnum
}

/// Registers the transaction callbacks; once per backend.
pub fn register_callbacks() {
    // SAFETY: plain functions, registered once, that never unwind.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            let waiting: usize = HELD.with(|held| held.borrow().iter().map(|b| b.rows.len()).sum());
            if waiting > 0 {
                HELD.with(|held| held.borrow_mut().clear());
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("fsm: {waiting} history rows were never appended: the statement trigger of a binding did not run"),
                    "Enable the zz_fsm_<column>_flush trigger again, or detach and attach the machine."
                );
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            let _ = HELD.try_with(|held| held.borrow_mut().clear());
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        let level = nest_level();
        let _ = HELD.try_with(|held| held.borrow_mut().retain(|b| b.level < level));
    }
}
