//! A thin layer over raw SPI for the hot path: plans prepared once per
//! backend and kept (`SPI_keepplan`), executed with raw datums.
//!
//! pgrx's `OwnedPreparedStatement` hides the plan pointer and wants pgrx
//! datum wrappers; the trigger already holds raw `Datum`s from the tuple, so
//! it passes them straight through here.

use std::cell::RefCell;
use std::ffi::CString;
use std::hash::Hash;
use std::ptr::NonNull;
use std::rc::Rc;

use pgrx::pg_sys;
use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, FsmError, FsmResult};

/// Runs `f` inside an SPI connection: allocations made in it (text datums,
/// result tuples) are freed when it returns.
pub fn connected<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: SPI_connect/SPI_finish bracket the closure; an ERROR inside
    // unwinds past SPI_finish and SPI is cleaned up at (sub)transaction abort.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            pgrx::error!("fsm: SPI_connect failed");
        }
    }
    let result = f();
    // SAFETY: closes the connection opened above.
    unsafe {
        pg_sys::SPI_finish();
    }
    result
}

/// A plan that lives as long as this value, across transactions.
pub struct KeptPlan {
    plan: NonNull<pg_sys::_SPI_plan>,
    nargs: usize,
}

impl KeptPlan {
    /// Prepares `sql` with argument types `types`. Must be called inside
    /// [`connected`].
    pub fn prepare(sql: &str, types: &[pg_sys::Oid]) -> KeptPlan {
        KeptPlan::prepare_with(sql, types, 0)
    }

    /// As [`KeptPlan::prepare`], with the plan cache told to plan every
    /// execution for its arguments (`CURSOR_OPT_CUSTOM_PLAN`): for the
    /// analytics queries, where a generic plan cannot see whether a window
    /// bound is NULL and reads far more history than the call needs, and
    /// planning costs little beside the work.
    pub fn prepare_custom(sql: &str, types: &[pg_sys::Oid]) -> KeptPlan {
        KeptPlan::prepare_with(sql, types, pg_sys::CURSOR_OPT_CUSTOM_PLAN as i32)
    }

    fn prepare_with(sql: &str, types: &[pg_sys::Oid], cursor_options: i32) -> KeptPlan {
        let query = CString::new(sql).expect("SQL without NUL bytes");
        let mut types = types.to_vec();
        // SAFETY: query and types outlive the call; SPI copies what it keeps.
        let plan = unsafe {
            pg_sys::SPI_prepare_cursor(
                query.as_ptr(),
                types.len() as i32,
                types.as_mut_ptr(),
                cursor_options,
            )
        };
        let plan =
            NonNull::new(plan).unwrap_or_else(|| pgrx::error!("fsm: SPI_prepare failed for {sql}"));
        // SAFETY: a freshly prepared, unsaved plan.
        unsafe { pg_sys::SPI_keepplan(plan.as_ptr()) };
        KeptPlan {
            plan,
            nargs: types.len(),
        }
    }

    /// Executes the plan; returns the number of rows processed. Results, if
    /// any, are in `SPI_tuptable` until the SPI connection ends.
    pub fn execute(&self, args: &[Option<pg_sys::Datum>], read_only: bool) -> u64 {
        assert_eq!(args.len(), self.nargs, "argument count of a kept plan");
        let mut values: Vec<pg_sys::Datum> = args
            .iter()
            .map(|a| a.unwrap_or(pg_sys::Datum::from(0)))
            .collect();
        let nulls: Vec<std::ffi::c_char> = args
            .iter()
            .map(|a| if a.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
            .collect();
        // SAFETY: values and nulls have nargs entries; the plan is kept.
        let rc = unsafe {
            pg_sys::SPI_execute_plan(
                self.plan.as_ptr(),
                values.as_mut_ptr(),
                nulls.as_ptr(),
                read_only,
                0,
            )
        };
        if rc < 0 {
            pgrx::error!("fsm: SPI_execute_plan failed with code {rc}");
        }
        // SAFETY: set by the execution above.
        unsafe { pg_sys::SPI_processed }
    }

    /// Executes a one-row, one-column query and returns its datum.
    pub fn first_datum(&self, args: &[Option<pg_sys::Datum>]) -> Option<pg_sys::Datum> {
        self.first_row(args).and_then(|row| row.get(1))
    }

    /// Executes the plan and returns its first row, if any.
    pub fn first_row(&self, args: &[Option<pg_sys::Datum>]) -> Option<Row> {
        if self.execute(args, false) == 0 {
            return None;
        }
        result_rows().next()
    }

    /// Executes a read-only plan under a snapshot taken now, not the
    /// transaction's: catalog facts must be current even in REPEATABLE
    /// READ, where the transaction snapshot may predate an attach, a detach
    /// or an ALTER TABLE. Returns the rows, valid until SPI ends.
    pub fn read_latest(&self, args: &[Option<pg_sys::Datum>]) -> impl Iterator<Item = Row> {
        // SAFETY: a read-only SPI execution uses the active snapshot; the
        // one pushed here is popped right after (an ERROR in between pops
        // it at (sub)transaction abort).
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
        self.execute(args, true);
        // SAFETY: pushed above.
        unsafe { pg_sys::PopActiveSnapshot() };
        result_rows()
    }
}

/// The rows of the last SPI execution, valid until the SPI connection ends.
fn result_rows() -> impl Iterator<Item = Row> {
    // SAFETY: SPI_tuptable is the result of the last execution in this SPI
    // connection (or NULL); its `numvals` tuples share one descriptor.
    let (table, count) = unsafe {
        let table = pg_sys::SPI_tuptable;
        let count = if table.is_null() {
            0
        } else {
            (*table).numvals as usize
        };
        (table, count)
    };
    (0..count).map(move |i| {
        // SAFETY: i < numvals of a non-NULL tuptable.
        unsafe {
            Row {
                tuple: *(*table).vals.add(i),
                desc: (*table).tupdesc,
            }
        }
    })
}

/// One row of a result, valid until the SPI connection that produced it
/// ends. Its typed getters check the column's type before reading it, so
/// a datum is never read as a type it is not.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// Column `n` (from 1), or `None` for NULL; the caller reads it as the
    /// column's own type (see [`Row::type_of`]).
    pub fn get(&self, n: i32) -> Option<pg_sys::Datum> {
        let mut is_null = false;
        // SAFETY: tuple and descriptor come from SPI_tuptable; SPI_getbinval
        // checks n against the descriptor.
        let datum = unsafe { pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null) };
        (!is_null).then_some(datum)
    }

    /// The type of column `n` (InvalidOid when there is no such column).
    pub fn type_of(&self, n: i32) -> pg_sys::Oid {
        // SAFETY: SPI_gettypeid checks n against the descriptor.
        unsafe { pg_sys::SPI_gettypeid(self.desc, n) }
    }

    /// Column `n` as `expected`; an error when the query produced another
    /// type (a catalog or a history table changed under a kept plan).
    pub fn typed(&self, n: i32, expected: pg_sys::Oid) -> FsmResult<Option<pg_sys::Datum>> {
        let found = self.type_of(n);
        if found != expected {
            return Err(FsmError::new(
                ErrorKind::DatatypeMismatch,
                format!(
                    "column {n} of an fsm query has type oid {}, not {}",
                    u32::from(found),
                    u32::from(expected)
                ),
            ));
        }
        Ok(self.get(n))
    }

    /// Column `n`, of type text, as a Rust string.
    pub fn text(&self, n: i32) -> FsmResult<Option<String>> {
        // SAFETY: typed() checked that the column is text.
        Ok(self
            .typed(n, pg_sys::TEXTOID)?
            .map(|d| unsafe { crate::args::text_datum_to_string(d) }))
    }

    pub fn oid(&self, n: i32) -> FsmResult<Option<pg_sys::Oid>> {
        Ok(self
            .typed(n, pg_sys::OIDOID)?
            .map(|d| pg_sys::Oid::from(d.value() as u32)))
    }

    pub fn int2(&self, n: i32) -> FsmResult<Option<i16>> {
        Ok(self.typed(n, pg_sys::INT2OID)?.map(|d| d.value() as i16))
    }

    pub fn int4(&self, n: i32) -> FsmResult<Option<i32>> {
        Ok(self.typed(n, pg_sys::INT4OID)?.map(|d| d.value() as i32))
    }

    pub fn bool(&self, n: i32) -> FsmResult<Option<bool>> {
        Ok(self.typed(n, pg_sys::BOOLOID)?.map(|d| d.value() != 0))
    }

    pub fn jsonb(&self, n: i32) -> FsmResult<Option<crate::json::Jsonb>> {
        // SAFETY: typed() checked that the column is jsonb; the datum lives
        // as long as the SPI result.
        Ok(self
            .typed(n, pg_sys::JSONBOID)?
            .map(|d| unsafe { crate::json::Jsonb::from_datum(d) }))
    }
}

impl Drop for KeptPlan {
    fn drop(&mut self) {
        // SAFETY: the plan was kept by us and is freed once.
        unsafe {
            pg_sys::SPI_freeplan(self.plan.as_ptr());
        }
    }
}

/// Kept plans by key, prepared on first use.
pub struct PlanCache<K>(RefCell<FxHashMap<K, Rc<KeptPlan>>>);

impl<K> Default for PlanCache<K> {
    fn default() -> Self {
        PlanCache(RefCell::new(FxHashMap::default()))
    }
}

impl<K: Hash + Eq> PlanCache<K> {
    /// The plan for `key`; `build` gives its SQL and argument types the
    /// first time. Must be called inside [`connected`]. The plan is handed
    /// out by `Rc` so a nested use (a guard firing on the same table) never
    /// finds the cache borrowed.
    pub fn get(&self, key: K, build: impl FnOnce() -> (String, Vec<pg_sys::Oid>)) -> Rc<KeptPlan> {
        self.get_with(key, KeptPlan::prepare, build)
    }

    /// As [`PlanCache::get`], prepared by [`KeptPlan::prepare_custom`].
    pub fn get_custom(
        &self,
        key: K,
        build: impl FnOnce() -> (String, Vec<pg_sys::Oid>),
    ) -> Rc<KeptPlan> {
        self.get_with(key, KeptPlan::prepare_custom, build)
    }

    fn get_with(
        &self,
        key: K,
        prepare: fn(&str, &[pg_sys::Oid]) -> KeptPlan,
        build: impl FnOnce() -> (String, Vec<pg_sys::Oid>),
    ) -> Rc<KeptPlan> {
        if let Some(plan) = self.0.borrow().get(&key) {
            return plan.clone();
        }
        let (sql, types) = build();
        let plan = Rc::new(prepare(&sql, &types));
        self.0.borrow_mut().insert(key, plan.clone());
        plan
    }
}
