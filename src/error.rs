//! One error type for the whole extension, and the one place where each kind
//! of failure is given its SQLSTATE.
//!
//! `fire` and the trigger raise the same kinds, so a client sees the same
//! SQLSTATE whichever way it moved the row. Functions return
//! `Result<T, ErrorReport>`; the trigger calls [`FsmError::raise`], because a
//! trigger that returns `Err` would surface as XX000.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// The kinds of failure, one per SQLSTATE (see the README's error table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 42P17: the definition breaks a rule.
    InvalidDefinition,
    /// 42704: unknown machine, event or binding.
    UndefinedObject,
    /// P0002: no row has that key.
    KeyNotFound,
    /// 55000: the event is not allowed from the current state.
    NotAllowed,
    /// 23514: a guard said no, or rows hold values that are not states.
    CheckViolation,
    /// 42501: a role is missing, or a protected column was changed directly.
    InsufficientPrivilege,
    /// 22023: the payload fails its schema, or `to` is not a target.
    InvalidParameter,
    /// 40001: `expect` does not match the current state.
    ExpectMismatch,
    /// 55006: a machine is still attached somewhere.
    ObjectInUse,
    /// 42710: a machine or binding with that name exists already.
    DuplicateObject,
    /// 42P07: the history table's name is taken.
    DuplicateTable,
    /// 42809: `attach` was given something other than a table.
    WrongObjectType,
    /// 42804: the column's type cannot hold states, or a function returns the wrong type.
    DatatypeMismatch,
    /// 42703: no such column.
    UndefinedColumn,
    /// 42883: a guard or action function does not exist with the expected arguments.
    UndefinedFunction,
    /// 42P16: the table lacks a single-column primary key.
    InvalidTableDefinition,
    /// 22004: a required argument is NULL.
    NullValueNotAllowed,
    /// 23502: a row's key is NULL.
    NotNullViolation,
    /// 42P01: no relation has that oid or name.
    UndefinedTable,
    /// 22008: a moment outside what a UUIDv7 can hold.
    DatetimeOverflow,
    /// 54001: JSON nested deeper than the extension can read.
    StatementTooComplex,
    /// 22P02: a key cannot be converted exactly to the table's key type.
    InvalidTextRepresentation,
    /// 0A000: something fsm does not do yet (attaching a partitioned table).
    FeatureNotSupported,
    /// 42725: an event name in several machines of a table, and no `col`.
    AmbiguousFunction,
    /// 42846: a key type has no cast to the table's key type, or no equality.
    CannotCoerce,
    /// 27000: a trigger changed the state `fire` wrote.
    TriggeredDataChange,
}

impl ErrorKind {
    pub fn sqlstate(self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            ErrorKind::InvalidDefinition => ERRCODE_INVALID_OBJECT_DEFINITION,
            ErrorKind::UndefinedObject => ERRCODE_UNDEFINED_OBJECT,
            ErrorKind::KeyNotFound => ERRCODE_NO_DATA_FOUND,
            ErrorKind::NotAllowed => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ErrorKind::CheckViolation => ERRCODE_CHECK_VIOLATION,
            ErrorKind::InsufficientPrivilege => ERRCODE_INSUFFICIENT_PRIVILEGE,
            ErrorKind::InvalidParameter => ERRCODE_INVALID_PARAMETER_VALUE,
            ErrorKind::ExpectMismatch => ERRCODE_T_R_SERIALIZATION_FAILURE,
            ErrorKind::ObjectInUse => ERRCODE_OBJECT_IN_USE,
            ErrorKind::DuplicateObject => ERRCODE_DUPLICATE_OBJECT,
            ErrorKind::DuplicateTable => ERRCODE_DUPLICATE_TABLE,
            ErrorKind::WrongObjectType => ERRCODE_WRONG_OBJECT_TYPE,
            ErrorKind::DatatypeMismatch => ERRCODE_DATATYPE_MISMATCH,
            ErrorKind::UndefinedColumn => ERRCODE_UNDEFINED_COLUMN,
            ErrorKind::UndefinedFunction => ERRCODE_UNDEFINED_FUNCTION,
            ErrorKind::InvalidTableDefinition => ERRCODE_INVALID_TABLE_DEFINITION,
            ErrorKind::NullValueNotAllowed => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ErrorKind::NotNullViolation => ERRCODE_NOT_NULL_VIOLATION,
            ErrorKind::UndefinedTable => ERRCODE_UNDEFINED_TABLE,
            ErrorKind::DatetimeOverflow => ERRCODE_DATETIME_FIELD_OVERFLOW,
            ErrorKind::StatementTooComplex => ERRCODE_STATEMENT_TOO_COMPLEX,
            ErrorKind::InvalidTextRepresentation => ERRCODE_INVALID_TEXT_REPRESENTATION,
            ErrorKind::CannotCoerce => ERRCODE_CANNOT_COERCE,
            ErrorKind::AmbiguousFunction => ERRCODE_AMBIGUOUS_FUNCTION,
            ErrorKind::FeatureNotSupported => ERRCODE_FEATURE_NOT_SUPPORTED,
            ErrorKind::TriggeredDataChange => ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FsmError {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Where a refused transition happened, for PostgreSQL's standard
    /// error fields (see [`fields`]).
    pub fields: Option<Box<Fields>>,
}

/// PostgreSQL's standard error fields of a refused transition: a client
/// reads them without parsing text (libpq `PG_DIAG_SCHEMA_NAME` …,
/// psycopg `e.diag.schema_name` …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub schema: String,
    pub table: String,
    /// The state column.
    pub column: String,
    /// `<machine>:<event>`, or `<machine>` where no event applies.
    pub constraint: String,
}

impl FsmError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FsmError {
        FsmError {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
            fields: None,
        }
    }

    /// Sets the error fields (see [`Fields`]).
    pub fn located(mut self, fields: Fields) -> FsmError {
        self.fields = Some(Box::new(fields));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> FsmError {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> FsmError {
        self.hint = Some(hint.into());
        self
    }

    /// Raises this error as a PostgreSQL ERROR; never returns.
    pub fn raise(self) -> ! {
        ErrorReport::from(self).report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

impl From<FsmError> for ErrorReport {
    fn from(e: FsmError) -> ErrorReport {
        fields::stash(e.kind.sqlstate(), e.fields);
        let mut report = ErrorReport::new(e.kind.sqlstate(), e.message, "fsm");
        if let Some(d) = e.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = e.hint {
            report = report.set_hint(h);
        }
        report
    }
}

impl From<pgrx::spi::SpiError> for FsmError {
    fn from(e: pgrx::spi::SpiError) -> FsmError {
        // SPI errors that reach here are misuse of the SPI API, not a
        // user's mistake: report them as internal, with their text.
        FsmError {
            kind: ErrorKind::InvalidParameter,
            message: format!("fsm internal SPI error: {e}"),
            detail: None,
            hint: None,
            fields: None,
        }
    }
}

/// The longest value echoed in a message, in bytes.
pub const CLIP_BYTES: usize = 64;

/// `s` cut to [`CLIP_BYTES`] at a character boundary, with an ellipsis and
/// the full length when cut: a message must stay readable whatever a caller
/// or a table row holds (a 3 MB key must not come back in an error).
pub fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    clip_to(s, CLIP_BYTES)
}

/// `s` cut to `max` bytes, as [`clip`] does: for our own sentences that
/// quote a value (a schema's complaint), which need more room.
pub fn clip_to(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &s[..end], s.len()))
}

pub type FsmResult<T> = Result<T, FsmError>;

/// A SQLSTATE's five characters ("P0001"), unpacked as PostgreSQL's
/// `unpack_sql_state` does: six bits per character, first character lowest.
pub fn sqlstate_text(code: impl Into<PackedSqlState>) -> String {
    let mut packed = code.into().0;
    (0..5)
        .map(|_| {
            let c = char::from(b'0' + (packed & 0x3F) as u8);
            packed >>= 6;
            c
        })
        .collect()
}

/// A SQLSTATE packed as PostgreSQL keeps it (`ErrorData.sqlerrcode`).
pub struct PackedSqlState(pub i32);

impl From<PgSqlErrorCode> for PackedSqlState {
    fn from(code: PgSqlErrorCode) -> PackedSqlState {
        PackedSqlState(code as i32)
    }
}

impl From<i32> for PackedSqlState {
    fn from(code: i32) -> PackedSqlState {
        PackedSqlState(code)
    }
}

/// A required SQL argument: NULL is refused with 22004.
pub fn required<T>(value: Option<T>, what: &str) -> FsmResult<T> {
    value.ok_or_else(|| {
        FsmError::new(
            ErrorKind::NullValueNotAllowed,
            format!("{what} must not be NULL"),
        )
    })
}

/// `Result<T, ErrorReport>` for `#[pg_extern]` functions.
pub type SqlResult<T> = Result<T, ErrorReport>;

/// The HINT of every refused transition: what may happen now instead.
pub fn allowed_hint(state: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        format!("No event is allowed from state \"{state}\".")
    } else {
        format!(
            "Events allowed from state \"{state}\": {}.",
            allowed.join(", ")
        )
    }
}

/// `Spi::get_one*` report a query that returned no row as an error; for a
/// lookup, "no row" is simply `None`.
pub trait NoRowIsNone<T> {
    fn no_row_is_none(self) -> FsmResult<Option<T>>;
}

impl<T> NoRowIsNone<T> for Result<Option<T>, pgrx::spi::SpiError> {
    fn no_row_is_none(self) -> FsmResult<Option<T>> {
        match self {
            Err(pgrx::spi::SpiError::InvalidPosition) => Ok(None),
            other => Ok(other?),
        }
    }
}

/// Carries an error's [`Fields`] to PostgreSQL. pgrx raises an ERROR by
/// unwinding to the function's boundary and reporting it there, with
/// message, detail and hint only; so the fields wait here, and an error
/// context callback of every entry point's boundary (`boundary`) sets
/// them while PostgreSQL builds the report (context callbacks run inside
/// `errfinish`, with the error's data current).
///
/// The fields are set only on an error of the SQLSTATE they were raised
/// with, and are forgotten when a (sub)transaction aborts, so an error
/// caught and followed by another never lends the next one its fields. An
/// fsm error raised inside a nested statement of ours leaves the outer
/// boundary as raised, fields included (`boundary`).
pub mod fields {
    use std::cell::RefCell;
    use std::ffi::CString;

    use pgrx::{pg_sys, PgSqlErrorCode};

    use super::Fields;

    /// The fields waiting for the error of SQLSTATE `code` (packed, as
    /// `geterrcode` returns it): `PG_DIAG_*` and value.
    struct Pending {
        code: i32,
        values: Vec<(u8, CString)>,
    }

    thread_local! {
        static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
    }

    /// Keeps `fields` for the error about to be raised with `sqlstate`
    /// (none: forget earlier ones).
    pub fn stash(sqlstate: PgSqlErrorCode, fields: Option<Box<Fields>>) {
        let pending = fields.map(|f| Pending {
            code: sqlstate as i32,
            values: [
                (pg_sys::PG_DIAG_SCHEMA_NAME, f.schema),
                (pg_sys::PG_DIAG_TABLE_NAME, f.table),
                (pg_sys::PG_DIAG_COLUMN_NAME, f.column),
                (pg_sys::PG_DIAG_CONSTRAINT_NAME, f.constraint),
            ]
            .into_iter()
            // Names from the catalog never hold NUL; skip one that would.
            .filter_map(|(field, value)| Some((field, CString::new(value).ok()?)))
            .collect(),
        });
        PENDING.with(|p| *p.borrow_mut() = pending);
    }

    /// Forgets the fields at every (sub)transaction abort: the error they
    /// were for is over. Called once per backend, from `_PG_init`.
    pub fn register() {
        // SAFETY: registers callbacks that live as long as the library.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
        }
    }

    /// Forgets the fields: the error they were for is over.
    pub fn forget() {
        let _ = PENDING.try_with(|p| {
            if p.borrow().is_some() {
                p.borrow_mut().take();
            }
        });
    }

    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn on_xact_event(
        event: pg_sys::XactEvent::Type,
        _arg: *mut std::ffi::c_void,
    ) {
        if event == pg_sys::XactEvent::XACT_EVENT_ABORT
            || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        {
            forget();
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
            forget();
        }
    }

    /// Sets the waiting fields on the ERROR being reported, when it is the
    /// one they were stashed for (same SQLSTATE) and carries none of its
    /// own: an error PostgreSQL raised with fields keeps them. Called by
    /// the boundary's error context callback (`boundary`).
    ///
    /// # Safety
    /// Called from an error context callback, inside `errfinish`.
    pub unsafe fn set_on_current_error() {
        if PENDING.with(|p| p.borrow().is_none()) {
            return;
        }
        // SAFETY: inside errfinish, the error being reported is current.
        let code = unsafe { pg_sys::geterrcode() };
        if !PENDING.with(|p| p.borrow().as_ref().is_some_and(|p| p.code == code)) {
            return;
        }
        // SAFETY: the caller's contract.
        if unsafe { current_error_has_fields() } {
            return;
        }
        PENDING.with(|p| {
            for (field, value) in p.borrow().iter().flat_map(|p| p.values.iter()) {
                // SAFETY: sets a field of the current error, which copies
                // the string into the error's memory context.
                unsafe { pg_sys::err_generic_string(i32::from(*field), value.as_ptr()) };
            }
        });
    }

    /// Whether the ERROR being reported carries a standard field already.
    ///
    /// # Safety
    /// Called from an error context callback, inside `errfinish`.
    unsafe fn current_error_has_fields() -> bool {
        // SAFETY: CopyErrorData copies the current error's data; it
        // refuses ErrorContext, which errfinish has switched to, so the
        // copy goes to TopMemoryContext and is freed before returning.
        unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            let data = pg_sys::CopyErrorData();
            pg_sys::MemoryContextSwitchTo(previous);
            let e = &*data;
            let has = [
                e.schema_name,
                e.table_name,
                e.column_name,
                e.datatype_name,
                e.constraint_name,
            ]
            .iter()
            .any(|value| !value.is_null());
            pg_sys::FreeErrorData(data);
            has
        }
    }
}
