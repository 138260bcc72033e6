//! The state column's type. `text` and `varchar` hold state names as they
//! are, and the trigger reads them without conversion. An enum (whose
//! labels must cover the states) or an integer type (where every state
//! name is an integer) is converted through the type's own output and
//! input functions: per row only for such columns, and never with a cast
//! that could truncate.

use std::borrow::Cow;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};

use crate::error::{clip, ErrorKind, FsmError, FsmResult};

/// How the trigger and `fire` read and write one state column.
pub enum StateColumn {
    Text,
    Converted {
        /// Schema-qualified, for casts in SQL.
        sql_type: String,
        output: pg_sys::Oid,
        input: pg_sys::Oid,
        ioparam: pg_sys::Oid,
    },
}

/// What kind of type a state column may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Enum,
    Integer,
}

fn kind_of(type_oid: pg_sys::Oid) -> Option<Kind> {
    match type_oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID => Some(Kind::Text),
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => Some(Kind::Integer),
        // SAFETY: a syscache lookup by oid.
        _ if unsafe { pg_sys::type_is_enum(type_oid) } => Some(Kind::Enum),
        _ => None,
    }
}

/// The types a state column may have, for messages.
pub const ALLOWED: &str = "text, varchar, an enum or an integer type";

impl StateColumn {
    /// `None` unless the type may hold states.
    pub fn of(type_oid: pg_sys::Oid) -> Option<StateColumn> {
        if kind_of(type_oid)? == Kind::Text {
            return Some(StateColumn::Text);
        }
        let (mut output, mut input, mut ioparam, mut varlena) = (
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            false,
        );
        // SAFETY: syscache lookups of an existing type's I/O functions.
        unsafe {
            pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
            pg_sys::getTypeInputInfo(type_oid, &mut input, &mut ioparam);
        }
        Some(StateColumn::Converted {
            sql_type: crate::sql::qualified_type(type_oid, -1),
            output,
            input,
            ioparam,
        })
    }

    /// The state name a non-NULL datum of the column holds.
    ///
    /// # Safety
    /// `datum` is a non-NULL value of the column's type, alive for `'t`.
    pub unsafe fn name<'t>(&self, datum: pg_sys::Datum) -> Cow<'t, str> {
        match self {
            // SAFETY: a text or varchar datum (varchar is binary
            // compatible with text).
            StateColumn::Text => Cow::Borrowed(unsafe {
                <&str as FromDatum>::from_datum(datum, false).unwrap_or_default()
            }),
            StateColumn::Converted { output, .. } => {
                // SAFETY: the type's output function returns a palloc'd
                // NUL-terminated string.
                let text = unsafe { CStr::from_ptr(pg_sys::OidOutputFunctionCall(*output, datum)) };
                Cow::Owned(text.to_string_lossy().into_owned())
            }
        }
    }

    /// A datum of the column's type holding state `name` (every state fits
    /// the column: checked at attach and when a machine is replaced).
    pub fn datum(&self, name: &str) -> pg_sys::Datum {
        match self {
            StateColumn::Text => name.into_datum().expect("text datum"),
            StateColumn::Converted { input, ioparam, .. } => {
                let text = CString::new(name).expect("state names hold no NUL");
                // SAFETY: the type's input function with its I/O parameter
                // and no typmod; it raises a clean error for a bad value.
                unsafe {
                    pg_sys::OidInputFunctionCall(*input, text.as_ptr().cast_mut(), *ioparam, -1)
                }
            }
        }
    }

    /// How SQL writes a text parameter into the column: as it is for text,
    /// with an explicit cast (text converts to no other type implicitly).
    pub fn assigned_sql(&self, parameter: &str) -> String {
        match self {
            StateColumn::Text => parameter.to_owned(),
            StateColumn::Converted { sql_type, .. } => format!("{parameter}::{sql_type}"),
        }
    }
}

/// 42804 unless the column's type may hold states, and every state of the
/// machine is a value of it: an enum's labels must cover the states, and in
/// an integer column every state name must be an integer it holds (written
/// as the type writes it, so "007" is refused).
pub fn check_states_fit(
    type_oid: pg_sys::Oid,
    states: &[&str],
    column: &str,
    table: &str,
) -> FsmResult<()> {
    let shown_type = crate::sql::qualified_type(type_oid, -1);
    let Some(kind) = kind_of(type_oid) else {
        return Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "column \"{}\" of {table} is of type {shown_type}, not {ALLOWED}",
                clip(column)
            ),
        ));
    };
    let misfit = match kind {
        Kind::Text => None,
        Kind::Integer => states.iter().find(|s| {
            let canonical = match type_oid {
                pg_sys::INT2OID => s.parse::<i16>().map(|v| v.to_string()),
                pg_sys::INT4OID => s.parse::<i32>().map(|v| v.to_string()),
                _ => s.parse::<i64>().map(|v| v.to_string()),
            };
            canonical.as_deref() != Ok(**s)
        }),
        Kind::Enum => {
            let labels = enum_labels(type_oid)?;
            states.iter().find(|s| !labels.iter().any(|l| l == **s))
        }
    };
    match misfit {
        None => Ok(()),
        Some(state) => Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "state \"{}\" is not a value of column {table}.{} (type {shown_type})",
                clip(state),
                clip(column)
            ),
        )
        .hint(match kind {
            Kind::Enum => format!(
                "Add it: ALTER TYPE {shown_type} ADD VALUE '{}'.",
                clip(state).replace('\'', "''")
            ),
            _ => "In an integer column, every state name must be an integer.".into(),
        })),
    }
}

/// The labels of an enum type.
fn enum_labels(type_oid: pg_sys::Oid) -> FsmResult<Vec<String>> {
    pgrx::Spi::connect(|client| {
        let rows = client.select(
            "SELECT e.enumlabel::pg_catalog.text FROM pg_catalog.pg_enum e \
              WHERE e.enumtypid OPERATOR(pg_catalog.=) $1",
            None,
            &[type_oid.into()],
        )?;
        let mut labels = Vec::new();
        for row in rows {
            labels.extend(row.get::<String>(1)?);
        }
        Ok(labels)
    })
}
