//! The arguments of a raw V1 function, read through one checked type.
//!
//! `Args` is built once from the `FunctionCallInfo` PostgreSQL passes, and
//! every read checks the argument's position and NULL flag, so the bodies
//! of `fire`, `create_machine` and the read functions never touch the raw
//! pointer: a NULL becomes `None` (or 22004 where the argument is required)
//! and a datum is only ever read as the type the function was declared with.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::{required, ErrorKind, FsmError, FsmResult};

/// The arguments of one call.
pub struct Args {
    fcinfo: pg_sys::FunctionCallInfo,
    nargs: usize,
}

impl Args {
    /// # Safety
    /// `fcinfo` is the live call information PostgreSQL passed to a V1
    /// function, valid for as long as the returned value.
    pub unsafe fn new(fcinfo: pg_sys::FunctionCallInfo) -> Args {
        // SAFETY: the caller passes a valid fcinfo.
        let nargs = unsafe { (*fcinfo).nargs } as usize;
        Args { fcinfo, nargs }
    }

    /// Argument `n` (from 0), or `None` when NULL or not passed.
    pub fn datum(&self, n: usize) -> Option<pg_sys::Datum> {
        if n >= self.nargs {
            return None;
        }
        // SAFETY: n < nargs, so args[n] is initialized by the caller.
        let arg = unsafe { *(*self.fcinfo).args.as_ptr().add(n) };
        (!arg.isnull).then_some(arg.value)
    }

    /// The actual type of argument `n`: what a polymorphic argument
    /// (`anyelement`, `anyarray`) was called with. 42804 when the call
    /// carries no expression to tell (a call from C without one).
    pub fn type_of(&self, n: usize) -> FsmResult<pg_sys::Oid> {
        // SAFETY: flinfo is set for every call through the function manager;
        // get_fn_expr_argtype checks n and a missing expression itself.
        let type_oid = unsafe { pg_sys::get_fn_expr_argtype((*self.fcinfo).flinfo, n as i32) };
        if type_oid == pg_sys::InvalidOid {
            return Err(FsmError::new(
                ErrorKind::DatatypeMismatch,
                format!("the type of argument {} cannot be determined", n + 1),
            ));
        }
        Ok(type_oid)
    }

    /// A `regclass` argument that must name an existing relation: NULL is
    /// 22004, an oid that names nothing is 42P01.
    pub fn relation(&self, n: usize, name: &str) -> FsmResult<pg_sys::Oid> {
        existing_relation(pg_sys::Oid::from(
            required(self.datum(n), name)?.value() as u32
        ))
    }

    /// A `text` (or `name`) argument as a Rust string.
    pub fn text(&self, n: usize) -> Option<String> {
        // SAFETY: the function is declared with a text argument at n; the
        // value is detoasted into the current memory context.
        self.datum(n).map(|d| unsafe { text_datum_to_string(d) })
    }

    /// A `name` argument as a Rust string.
    pub fn name(&self, n: usize) -> Option<String> {
        // SAFETY: the function is declared with a name argument at n: a
        // NUL-terminated string of at most NAMEDATALEN bytes.
        self.datum(n).map(|d| unsafe {
            CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                .to_string_lossy()
                .into_owned()
        })
    }

    /// A `boolean` argument.
    pub fn bool(&self, n: usize) -> Option<bool> {
        self.datum(n).map(|d| d.value() != 0)
    }

    /// An `integer` argument (an int4 is passed by value).
    pub fn int4(&self, n: usize) -> Option<i32> {
        self.datum(n).map(|d| d.value() as i32)
    }

    /// A `jsonb` argument, as the datum the caller passed.
    pub fn jsonb(&self, n: usize) -> Option<crate::json::Jsonb> {
        // SAFETY: the function is declared with a jsonb argument at n.
        self.datum(n)
            .map(|d| unsafe { crate::json::Jsonb::from_datum(d) })
    }
}

/// `oid` if it names a relation; 42P01 otherwise (`fire(0, …)`).
pub fn existing_relation(oid: pg_sys::Oid) -> FsmResult<pg_sys::Oid> {
    if !relation_exists(oid) {
        return Err(FsmError::new(
            ErrorKind::UndefinedTable,
            format!("relation with oid {} does not exist", u32::from(oid)),
        ));
    }
    Ok(oid)
}

/// Whether `oid` names a relation, by the syscache (never an error).
pub fn relation_exists(oid: pg_sys::Oid) -> bool {
    // SAFETY: a syscache probe by oid; returns 0 for a missing relation.
    oid != pg_sys::InvalidOid && unsafe { pg_sys::get_rel_relkind(oid) } != 0
}

/// A text datum as a Rust string (invalid UTF-8 cannot occur in a UTF-8
/// database; it is replaced, never trusted, in others).
///
/// # Safety
/// `d` is a datum of type text (or varchar), possibly toasted.
pub unsafe fn text_datum_to_string(d: pg_sys::Datum) -> String {
    // SAFETY: per the contract, d is a text datum; detoasting copies it.
    unsafe {
        let text = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        let len = pgrx::varsize_any_exhdr(text);
        let data = pgrx::vardata_any(text) as *const u8;
        String::from_utf8_lossy(std::slice::from_raw_parts(data, len)).into_owned()
    }
}
