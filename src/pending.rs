//! History rows of written rows, held until their statement ends and then
//! appended with one `INSERT … SELECT FROM unnest(…)` per binding.
//!
//! Why: appending through SPI once per row costs more than the row's own
//! UPDATE; one INSERT per statement costs about what the hand-written floor
//! pays (W3 in BENCH.md). The AFTER row triggers hold a row only once the
//! change is written, and make its id then, so ids keep the order of the
//! moves and no row is held for a change that was not written.
//!
//! When held rows are appended:
//! - at the end of every executor run of a writing statement
//!   (`ExecutorFinish`, after its AFTER triggers fired), whatever table it
//!   named: an UPDATE through a partitioned parent, MERGE, a nested
//!   statement;
//! - after every utility statement (COPY);
//! - when `FLUSH_AT` rows are held, so memory stays bounded;
//! - before commit and PREPARE TRANSACTION, for any other path (logical
//!   replication's apply worker fires triggers outside the executor, and
//!   the statement during which this library is loaded ran its executor
//!   before the hook was installed);
//! - before a read function looks at history.
//!
//! Rows are tagged with the subtransaction level that wrote them: a
//! subtransaction abort drops the rows it held, a RELEASE hands them to
//! the parent level. Keys of by-reference types are copied into a memory
//! context of our own, emptied whenever nothing is held.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pgrx::pg_sys;

use crate::binding::Binding;
use crate::history::{self, Held, Who};
use crate::key::{Key, TypeStorage};
use crate::machine::{EventId, StateId};

/// Rows held in all before they are appended.
const FLUSH_AT: usize = 10_000;

/// Rows of one binding, held at one subtransaction level, moved by one
/// role with one `fsm.actor`: both are taken when the move happens, not
/// from whoever appends the rows later.
struct Batch {
    binding: Rc<Binding>,
    level: i32,
    who: Who,
    rows: Vec<Held>,
}

thread_local! {
    static HELD: RefCell<Vec<Batch>> = const { RefCell::new(Vec::new()) };
    static HELD_COUNT: Cell<usize> = const { Cell::new(0) };
    /// Rows held at which `hold` flushes: `FLUSH_AT` above what the last
    /// flush left to outer levels.
    static FLUSH_NEXT: Cell<usize> = const { Cell::new(FLUSH_AT) };
    /// Where held keys live; a child of TopTransactionContext, so it dies
    /// with the transaction at the latest.
    static KEYS: Cell<pg_sys::MemoryContext> = const { Cell::new(std::ptr::null_mut()) };
    static PREVIOUS_FINISH: Cell<pg_sys::ExecutorFinish_hook_type> = const { Cell::new(None) };
    static PREVIOUS_UTILITY: Cell<pg_sys::ProcessUtility_hook_type> = const { Cell::new(None) };
}

fn nest_level() -> i32 {
    // SAFETY: reads the current transaction state.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }
}

/// Holds the history row of one written change until its statement ends.
/// `event` and `from` are `None` for an INSERT.
pub fn hold(b: &Rc<Binding>, key: Key, event: Option<EventId>, from: Option<StateId>, to: StateId) {
    let row = Held {
        id: crate::uuid7::next_bytes(),
        key: keep(key.datum(), b.key.storage),
        event,
        from,
        to,
    };
    let level = nest_level();
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        let batch = match held
            .iter_mut()
            .position(|x| Rc::ptr_eq(&x.binding, b) && x.level == level && x.who.is_now())
        {
            Some(i) => &mut held[i],
            None => {
                held.push(Batch {
                    binding: b.clone(),
                    level,
                    who: Who::now(),
                    rows: Vec::new(),
                });
                held.last_mut().expect("just pushed")
            }
        };
        batch.rows.push(row);
    });
    let count = HELD_COUNT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if count >= FLUSH_NEXT.with(Cell::get) {
        flush();
    }
}

/// A copy of a key datum in the held keys' context (the tuple it came
/// from does not outlive the trigger call).
fn keep(key: pg_sys::Datum, storage: TypeStorage) -> pg_sys::Datum {
    if storage.by_value {
        return key;
    }
    let context = KEYS.with(|k| {
        if k.get().is_null() {
            // SAFETY: a new child of the live TopTransactionContext.
            k.set(unsafe {
                pg_sys::AllocSetContextCreateExtended(
                    pg_sys::TopTransactionContext,
                    c"fsm held history keys".as_ptr(),
                    pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                    pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                    pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
                )
            });
        }
        k.get()
    });
    // SAFETY: a datum of the key type: `len` bytes, or a varlena that
    // pg_detoast_datum_copy copies (detoasted) into the current context.
    unsafe {
        let saved = pg_sys::MemoryContextSwitchTo(context);
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

/// Appends the rows held at the current subtransaction level or deeper.
/// Rows an outer level holds (an UPDATE whose AFTER trigger runs a
/// statement inside `BEGIN … EXCEPTION`) wait for their own level: appended
/// here, they would be lost with an inner subtransaction that rolls back
/// while their moves stay. The batches are taken out first, so an
/// append's own statement (which ends in `ExecutorFinish` too) finds
/// nothing to do.
pub fn flush() -> bool {
    if HELD_COUNT.with(Cell::get) == 0 {
        return false;
    }
    let level = nest_level();
    let batches: Vec<Batch> = HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.iter().all(|b| b.level >= level) {
            return std::mem::take(&mut *held);
        }
        let (mine, outer) = std::mem::take(&mut *held)
            .into_iter()
            .partition(|b| b.level >= level);
        *held = outer;
        mine
    });
    let left: usize = HELD.with(|held| held.borrow().iter().map(|b| b.rows.len()).sum());
    HELD_COUNT.with(|c| c.set(left));
    FLUSH_NEXT.with(|n| n.set(left + FLUSH_AT));
    if batches.is_empty() {
        return false;
    }
    // Before commit (or in a statement whose executor started before this
    // library was loaded, so no hook of ours saw it finish) there is no
    // active snapshot; SPI needs one.
    // SAFETY: reads and pushes the snapshot stack of a live transaction;
    // an ERROR in between is cleaned up by transaction abort.
    let pushed = unsafe {
        let missing = !pg_sys::ActiveSnapshotSet();
        if missing {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        }
        missing
    };
    for batch in &batches {
        history::append_rows(&batch.binding, &batch.who, &batch.rows);
    }
    if pushed {
        // SAFETY: pops the snapshot pushed above.
        unsafe { pg_sys::PopActiveSnapshot() };
    }
    drop(batches);
    release_keys();
    // What follows in this transaction (a read function, tick) sees the
    // rows just appended.
    // SAFETY: inside a transaction that just wrote.
    unsafe { pg_sys::CommandCounterIncrement() };
    true
}

/// Empties the held keys' context once nothing refers to it.
fn release_keys() {
    if HELD_COUNT.with(Cell::get) != 0 {
        return;
    }
    KEYS.with(|k| {
        if !k.get().is_null() {
            // SAFETY: no held row points into it any more.
            unsafe { pg_sys::MemoryContextReset(k.get()) };
        }
    });
}

fn forget_all() {
    let _ = HELD.try_with(|held| held.borrow_mut().clear());
    let _ = HELD_COUNT.try_with(|c| c.set(0));
    let _ = FLUSH_NEXT.try_with(|c| c.set(FLUSH_AT));
    // TopTransactionContext, its parent, is being reset or deleted.
    let _ = KEYS.try_with(|k| k.set(std::ptr::null_mut()));
}

/// Registers the executor and utility hooks and the transaction
/// callbacks; once per backend.
pub fn register_callbacks() {
    // SAFETY: _PG_init runs once per backend, before any other code of
    // ours; the previous hooks are kept and called.
    unsafe {
        PREVIOUS_FINISH.with(|p| p.set(pg_sys::ExecutorFinish_hook));
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREVIOUS_UTILITY.with(|p| p.set(pg_sys::ProcessUtility_hook));
        pg_sys::ProcessUtility_hook = Some(process_utility);
        pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
    }
}

/// PostgreSQL's standard hook functions, called without pgrx's
/// `pg_guard_ffi_boundary`: an ERROR they raise (anyone's: a `DO` block's
/// `RAISE`, an AFTER trigger's refusal) longjmps past the hook untouched,
/// as if no hook of ours were installed.
mod standard {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn standard_ExecutorFinish(query: *mut pg_sys::QueryDesc);
        #[allow(clippy::too_many_arguments)]
        pub fn standard_ProcessUtility(
            statement: *mut pg_sys::PlannedStmt,
            query: *const std::ffi::c_char,
            read_only_tree: bool,
            context: pg_sys::ProcessUtilityContext::Type,
            params: pg_sys::ParamListInfo,
            environment: *mut pg_sys::QueryEnvironment,
            destination: *mut pg_sys::DestReceiver,
            completion: *mut pg_sys::QueryCompletion,
        );
    }
}

/// The hooks call down the chain first, outside any boundary of ours, so
/// an error raised there is never caught or re-raised by fsm; only the
/// flush of held rows, fsm's own work, runs in a boundary.
unsafe extern "C-unwind" fn executor_finish(query: *mut pg_sys::QueryDesc) {
    // SAFETY: the hook chain's contract: call the previous hook or the
    // standard function with the same query. This frame holds nothing to
    // drop, so an ERROR may longjmp past it.
    unsafe {
        match PREVIOUS_FINISH.with(Cell::get) {
            Some(previous) => previous(query),
            None => standard::standard_ExecutorFinish(query),
        }
    }
    if HELD_COUNT.with(Cell::get) == 0 {
        return;
    }
    // Only after a statement that writes: a read-only query (a guard's
    // SELECT while an UPDATE's AFTER triggers fire) must not write.
    // SAFETY: the query descriptor and its plan live until ExecutorEnd.
    let writes = unsafe {
        (*query).operation != pg_sys::CmdType::CMD_SELECT
            || (!(*query).plannedstmt.is_null() && (*(*query).plannedstmt).hasModifyingCTE)
    };
    if writes {
        // SAFETY: the rest of this extern function's body.
        unsafe { crate::boundary::guarded(flush) };
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    statement: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    environment: *mut pg_sys::QueryEnvironment,
    destination: *mut pg_sys::DestReceiver,
    completion: *mut pg_sys::QueryCompletion,
) {
    // Rows earlier statements left held (the statement that loaded this
    // library ran its executor before the hook existed) are appended
    // first: a DROP of their table must not find them held.
    // SAFETY: reads the transaction state.
    if HELD_COUNT.with(Cell::get) != 0 && unsafe { pg_sys::IsTransactionState() } {
        // SAFETY: a body of this extern function's, before the chain.
        unsafe { crate::boundary::guarded(flush) };
    }
    // SAFETY: as above, the same arguments passed down the chain.
    unsafe {
        match PREVIOUS_UTILITY.with(Cell::get) {
            Some(previous) => previous(
                statement,
                query,
                read_only_tree,
                context,
                params,
                environment,
                destination,
                completion,
            ),
            None => standard::standard_ProcessUtility(
                statement,
                query,
                read_only_tree,
                context,
                params,
                environment,
                destination,
                completion,
            ),
        }
    }
    // COMMIT and ROLLBACK end the transaction inside the call: nothing is
    // held then (pre-commit appended it, abort dropped it).
    // SAFETY: reads the transaction state.
    if !unsafe { pg_sys::IsTransactionState() } {
        return;
    }
    if HELD_COUNT.with(Cell::get) != 0 {
        // SAFETY: the rest of this extern function's body.
        unsafe { crate::boundary::guarded(flush) };
    }
}

/// Not `#[pg_guard]`: a flush's ERROR at commit (a history table's own
/// trigger refusing) must leave as raised, through the boundary.
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
            if HELD_COUNT.with(Cell::get) != 0 =>
        {
            // SAFETY: this extern function's body.
            unsafe { crate::boundary::guarded(flush) };
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE
        | pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            // SAFETY: this extern function's body.
            unsafe {
                crate::boundary::guarded(|| {
                    forget_all();
                    crate::transition::forget_unfinished_actions();
                })
            };
            crate::boundary::at_transaction_end();
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
    // The subtransaction ending is still the current one here.
    let level = nest_level();
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => held.retain(|b| b.level < level),
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                for batch in held.iter_mut().filter(|b| b.level >= level) {
                    batch.level = level - 1;
                }
            }
            _ => {}
        }
        let count = held.iter().map(|b| b.rows.len()).sum();
        let _ = HELD_COUNT.try_with(|c| c.set(count));
    });
}
