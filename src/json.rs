//! jsonb values as the caller gave them, and their faithful reading.
//!
//! A payload is stored and handed to guards and actions as the caller's own
//! jsonb datum: no number is rounded and no depth limit applies, because it
//! is never rebuilt. It is read into a `serde_json::Value` only where Rust
//! must look inside (a payload schema, a definition), with arbitrary
//! precision numbers, and a document nested deeper than serde_json reads
//! is refused with 54001 rather than failing inside the extension.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use serde_json::Value;

use crate::error::{ErrorKind, FsmError, FsmResult};

/// A jsonb datum, valid in the memory context it was made or passed in.
#[derive(Clone, Copy)]
pub struct Jsonb(pg_sys::Datum);

impl Jsonb {
    /// # Safety
    /// `d` is a non-NULL datum of type jsonb that lives as long as this value.
    pub unsafe fn from_datum(d: pg_sys::Datum) -> Jsonb {
        Jsonb(d)
    }

    /// A new jsonb datum from a value, in the current memory context.
    pub fn from_value(value: &Value) -> FsmResult<Jsonb> {
        let text = CString::new(value.to_string()).map_err(|_| {
            FsmError::new(
                ErrorKind::InvalidParameter,
                "a JSON value holds a NUL character",
            )
        })?;
        // SAFETY: jsonb_in reads a NUL-terminated string and returns a new
        // jsonb datum (or raises a clean input error).
        let datum = unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(text.as_ptr()))],
            )
        };
        datum
            .map(Jsonb)
            .ok_or_else(|| FsmError::new(ErrorKind::InvalidParameter, "jsonb_in returned NULL"))
    }

    pub fn datum(self) -> pg_sys::Datum {
        self.0
    }

    /// The value with every number exactly as stored. `what` names the
    /// document in errors ("payload", "definition").
    pub fn to_value(self, what: &str) -> FsmResult<Value> {
        // SAFETY: self.0 is a jsonb datum; jsonb_out returns a palloc'd
        // NUL-terminated string in the current memory context.
        let text = unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(self.0)])
                .map(|out| CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>()))
        };
        let text = text
            .ok_or_else(|| FsmError::new(ErrorKind::InvalidParameter, "jsonb_out returned NULL"))?;
        parse(&text.to_string_lossy(), what)
    }
}

/// Parses JSON text, mapping serde_json's refusals to SQLSTATEs.
pub fn parse(text: &str, what: &str) -> FsmResult<Value> {
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            FsmError::new(
                ErrorKind::StatementTooComplex,
                format!("the {what} is nested more than 128 levels deep"),
            )
            .hint("fsm reads at most 128 levels of nesting where it must look inside a document.")
        } else {
            FsmError::new(
                ErrorKind::InvalidParameter,
                format!("the {what} cannot be read: {e}"),
            )
        }
    })
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn numbers_are_read_exactly() {
        // jsonb_out writes numbers in plain notation, as here.
        let huge = format!("1{}", "0".repeat(400));
        let text = format!(
            r#"{{"n":123456789012345678901234567890,"e":{huge},"f":0.100000000000000000001}}"#
        );
        assert_eq!(parse(&text, "payload").unwrap().to_string(), text);
    }

    #[test]
    fn deep_nesting_is_refused_with_54001() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&deep, "payload").unwrap_err();
        assert_eq!(e.kind, ErrorKind::StatementTooComplex);
        assert_eq!(e.message, "the payload is nested more than 128 levels deep");
    }

    #[test]
    fn malformed_text_is_22023() {
        assert_eq!(
            parse("{", "definition").unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }
}
