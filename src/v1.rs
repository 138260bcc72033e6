//! Functions written against PostgreSQL's raw V1 calling convention, for
//! the paths where pgrx's argument and result conversions would cost more
//! than the work itself (the trigger, the read functions, `uuid7()`). Their
//! SQL declarations are in `sql/`.

/// Exports `$name` as a V1 function running `$body`, an
/// `unsafe fn(FunctionCallInfo) -> FsmResult<Datum>`. An `Err` is raised
/// with its SQLSTATE (and its error fields: `error::fields`); a Rust panic
/// becomes an ERROR, as in any pgrx function; an ERROR PostgreSQL raised
/// inside leaves as raised (`boundary`).
macro_rules! v1_function {
    ($name:ident, $finfo:ident, $body:path) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        /// # Safety
        /// Called by PostgreSQL's function manager with a valid `fcinfo`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(
            fcinfo: pgrx::pg_sys::FunctionCallInfo,
        ) -> pgrx::pg_sys::Datum {
            let body = move || {
                // SAFETY: PostgreSQL passes a valid fcinfo for this call.
                unsafe { $body(fcinfo) }.unwrap_or_else(|e| e.raise())
            };
            // SAFETY: the whole body of this extern function.
            unsafe { $crate::boundary::guarded(body) }
        }
    };
}
