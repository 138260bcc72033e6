//! Work run inside an internal subtransaction, as PL/pgSQL runs a block
//! with an EXCEPTION clause: an ERROR inside rolls back exactly what the
//! work did and is handed back to the caller, who decides whether the
//! statement goes on (`on_error`) or fails after all.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Runs `work` in a subtransaction: released when it returns, rolled back
/// when it raises. Either way the caller's memory context and resource
/// owner are current again afterwards. A Rust panic is rolled back and
/// re-raised: it is a bug, not an error to recover from; so is an operator
/// intervention (class 57: a cancel, a statement timeout, a shutdown),
/// which must stop the whole statement, as PL/pgSQL's `WHEN OTHERS` lets
/// it.
pub fn attempt<R>(work: impl FnOnce() -> R) -> Result<R, CaughtError> {
    // SAFETY: called inside a transaction (from a function or a trigger);
    // the context and owner saved here outlive the subtransaction, and are
    // restored after it ends exactly as PL/pgSQL's exec_stmt_block does.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(saved.0);
        saved
    };
    // pgrx has copied the error's data and flushed PostgreSQL's error
    // state before a handler runs, so rolling back is safe in it.
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(work())))
        .catch_others(Err)
        .execute();
    // SAFETY: the subtransaction begun above is still the current one:
    // `work` leaves its own subtransactions ended, released or rolled back.
    unsafe {
        match outcome {
            Ok(_) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    }
    match outcome {
        Err(panic @ CaughtError::RustPanic { .. }) => panic.rethrow(),
        Err(CaughtError::PostgresError(e) | CaughtError::ErrorReport(e))
            if crate::boundary::sqlstate_of(&e).starts_with("57") =>
        {
            CaughtError::PostgresError(e).rethrow()
        }
        other => other,
    }
}
