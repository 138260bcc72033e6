//! The boundary every entry point of ours runs its body in (the raw V1
//! functions; the hooks' own work), and what it does to errors.
//!
//! pgrx turns an ERROR that PostgreSQL raises under our code into a Rust
//! panic, and at the function's boundary reports a *new* ERROR built from
//! its message, detail and hint only: a SQLSTATE pgrx does not know
//! becomes XX000, and CONTEXT, the cursor position, the internal query and
//! the error fields are lost. An error that is not ours (a guard's own
//! `RAISE … USING ERRCODE`, a CHECK of the row `fire` updates) must leave
//! exactly as it was raised, or `EXCEPTION WHEN SQLSTATE '…'` handlers stop
//! matching. So:
//!
//! - an error context callback of the boundary copies every ERROR as
//!   PostgreSQL reports it, whole (its context so far, positions, fields);
//! - when that error reaches the boundary, it is thrown again from the copy
//!   with `ThrowErrorData`, after the callback is popped, so the callbacks
//!   outside the boundary add their context lines as they would have;
//! - fsm's own errors (an `ErrorReport` raised from Rust) and panics are
//!   reported by pgrx, while the callback is still on the stack, so it can
//!   give them their error fields (`error::fields`).
//!
//! Copies live in one memory context of ours, emptied whenever no boundary
//! is active, so memory stays bounded however many errors are caught.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;

/// PostgreSQL functions called without pgrx's `pg_guard_ffi_boundary`, so
/// an ERROR they raise leaves through PostgreSQL's longjmp untouched.
mod raw {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn ThrowErrorData(edata: *mut pg_sys::ErrorData);
    }
}

/// One active boundary: the last ERROR reported while it was on the stack.
struct Frame {
    caught: Cell<*mut pg_sys::ErrorData>,
}

thread_local! {
    /// Boundaries active now (nested calls: an action that fires).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where copies live; a child of TopMemoryContext, made on first use.
    static COPIES: Cell<pg_sys::MemoryContext> = const { Cell::new(std::ptr::null_mut()) };
    /// Whether `COPIES` holds anything.
    static DIRTY: Cell<bool> = const { Cell::new(false) };
    /// SQLSTATE (packed) and message of the last ERROR copied, for code
    /// that catches an error inside a boundary and reports its SQLSTATE
    /// (`on_error`): pgrx's own report of it may say XX000.
    static LAST: std::cell::RefCell<Option<(i32, String)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `body` as the whole body of an `extern "C-unwind"` function: a
/// value is returned; an ERROR PostgreSQL raised inside leaves as raised;
/// fsm's own errors and panics are reported by pgrx with their fields.
///
/// # Safety
/// Called directly by an `extern "C-unwind"` function, as its whole body:
/// an ERROR leaves through PostgreSQL's longjmp, past this frame and the
/// caller's, which hold nothing to drop then.
#[inline(always)]
pub unsafe fn guarded<R>(body: impl FnOnce() -> R) -> R {
    if DEPTH.get() == 0 && DIRTY.get() {
        // SAFETY: no boundary is active, so no copy is referred to.
        unsafe { pg_sys::MemoryContextReset(COPIES.get()) };
        DIRTY.set(false);
    }
    DEPTH.set(DEPTH.get() + 1);
    let frame = Frame {
        caught: Cell::new(std::ptr::null_mut()),
    };
    let mut callback = pg_sys::ErrorContextCallback {
        // SAFETY: error_context_stack is the backend's; read and written on
        // its one thread.
        previous: unsafe { pg_sys::error_context_stack },
        callback: Some(on_report),
        arg: (&raw const frame).cast_mut().cast(),
    };
    // SAFETY: as above; `callback` and `frame` outlive their place on the
    // stack, which is popped below on every way out.
    unsafe { pg_sys::error_context_stack = &mut callback };
    let outcome = catch_unwind(AssertUnwindSafe(body));
    DEPTH.set(DEPTH.get() - 1);
    match outcome {
        Ok(value) => {
            // SAFETY: as above.
            unsafe { pg_sys::error_context_stack = callback.previous };
            crate::error::fields::forget();
            value
        }
        Err(payload) => {
            let caught = frame.caught.get();
            let raised_here = match payload.downcast_ref::<CaughtError>() {
                Some(CaughtError::PostgresError(report)) => {
                    // SAFETY: a copy made by `on_report`, alive until the
                    // next reset, which needs DEPTH 0 and a new entry.
                    !caught.is_null() && unsafe { same_error(caught, report.message()) }
                }
                _ => false,
            };
            if raised_here {
                // SAFETY: as above.
                unsafe { pg_sys::error_context_stack = callback.previous };
                // The payload is dropped first: nothing may be left to drop.
                drop(payload);
                // SAFETY: the copy is thrown again, as PostgreSQL raised
                // it, to the caller's handler; ThrowErrorData copies it
                // into the error stack before the longjmp.
                unsafe { raw::ThrowErrorData(caught) };
                unreachable!("ThrowErrorData of an ERROR does not return");
            }
            // Ours, or a panic: pgrx reports it here, the callback still
            // on the stack to set its fields.
            // SAFETY: the caller's contract.
            unsafe {
                pg_sys::submodules::panic::pgrx_extern_c_guard(move || resume_unwind(payload))
            }
        }
    }
}

/// Whether the copy is the error pgrx caught (pgrx keeps its message).
///
/// # Safety
/// `caught` is a live copy made by `on_report`.
unsafe fn same_error(caught: *mut pg_sys::ErrorData, message: &str) -> bool {
    // SAFETY: the caller's contract.
    let e = unsafe { &*caught };
    let copied = if e.message.is_null() {
        "<null error message>".into()
    } else {
        // SAFETY: a NUL-terminated string of the copy.
        unsafe { std::ffi::CStr::from_ptr(e.message) }.to_string_lossy()
    };
    copied == message
}

/// The real SQLSTATE (five characters) of an error pgrx caught inside a
/// boundary and reported as `report`: pgrx's own code for it is XX000
/// when the SQLSTATE is not one it knows.
pub fn sqlstate_of(report: &pgrx::pg_sys::panic::ErrorReportWithLevel) -> String {
    let known = report.sql_error_code() as i32;
    LAST.with(|last| match last.borrow().as_ref() {
        Some((code, message)) if message == report.message() => crate::error::sqlstate_text(*code),
        _ => crate::error::sqlstate_text(known),
    })
}

/// The memory context copies live in.
fn copies() -> pg_sys::MemoryContext {
    if COPIES.get().is_null() {
        // SAFETY: a new child of TopMemoryContext, kept for the backend.
        COPIES.set(unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::TopMemoryContext,
                c"fsm caught errors".as_ptr(),
                0,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        });
    }
    COPIES.get()
}

/// The boundary's error context callback: sets fsm's fields on its own
/// errors, then copies every ERROR for the frame. Guarded: a failure in it
/// (out of memory) becomes a recursive ERROR, which PostgreSQL handles.
///
/// # Safety
/// Called by PostgreSQL from `errfinish`, with an error being reported and
/// `arg` the `Frame` of a live boundary.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_report(arg: *mut std::ffi::c_void) {
    // SAFETY: inside errfinish, the error being reported is current.
    unsafe { crate::error::fields::set_on_current_error() };
    // SAFETY: CopyErrorData copies the current error's data; it refuses
    // ErrorContext, which errfinish has switched to.
    let data = unsafe {
        let previous = pg_sys::MemoryContextSwitchTo(copies());
        let data = pg_sys::CopyErrorData();
        pg_sys::MemoryContextSwitchTo(previous);
        data
    };
    DIRTY.set(true);
    // SAFETY: the copy just made.
    let e = unsafe { &*data };
    if e.elevel < pgrx::PgLogLevel::ERROR as i32 {
        // SAFETY: ours, referred to by nothing.
        unsafe { pg_sys::FreeErrorData(data) };
        return;
    }
    let message = if e.message.is_null() {
        String::from("<null error message>")
    } else {
        // SAFETY: a NUL-terminated string of the copy.
        unsafe { std::ffi::CStr::from_ptr(e.message) }
            .to_string_lossy()
            .into_owned()
    };
    LAST.with(|last| *last.borrow_mut() = Some((e.sqlerrcode, message)));
    // SAFETY: the caller's contract: `arg` is a live frame.
    let frame = unsafe { &*(arg as *const Frame) };
    let previous = frame.caught.replace(data);
    if !previous.is_null() {
        // SAFETY: an earlier copy of this frame, no longer referred to.
        unsafe { pg_sys::FreeErrorData(previous) };
    }
}

/// At the end of a top-level transaction no boundary of it is active.
pub fn at_transaction_end() {
    let _ = DEPTH.try_with(|d| d.set(0));
}
