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
}

impl FsmError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FsmError {
        FsmError {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
        }
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
        }
    }
}

pub type FsmResult<T> = Result<T, FsmError>;

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
