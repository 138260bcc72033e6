//! A thin layer over raw SPI for the hot path: plans prepared once per
//! backend and kept (`SPI_keepplan`), executed with raw datums.
//!
//! pgrx's `OwnedPreparedStatement` hides the plan pointer and wants pgrx
//! datum wrappers; the trigger already holds raw `Datum`s from the tuple, so
//! it passes them straight through here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::hash::Hash;
use std::ptr::NonNull;
use std::rc::Rc;

use pgrx::pg_sys;

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
        let query = CString::new(sql).expect("SQL without NUL bytes");
        let mut types = types.to_vec();
        // SAFETY: query and types outlive the call; SPI copies what it keeps.
        let plan =
            unsafe { pg_sys::SPI_prepare(query.as_ptr(), types.len() as i32, types.as_mut_ptr()) };
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
    pub fn first_row(&self, args: &[Option<pg_sys::Datum>]) -> Option<FirstRow> {
        if self.execute(args, false) == 0 {
            return None;
        }
        // SAFETY: at least one row is in SPI_tuptable after a successful execution.
        unsafe {
            let table = pg_sys::SPI_tuptable;
            Some(FirstRow {
                tuple: *(*table).vals,
                desc: (*table).tupdesc,
            })
        }
    }
}

/// The first row of a result, valid until the SPI connection that produced
/// it ends.
pub struct FirstRow {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl FirstRow {
    /// Column `n` (from 1), or `None` for NULL.
    pub fn get(&self, n: i32) -> Option<pg_sys::Datum> {
        let mut is_null = false;
        // SAFETY: tuple and descriptor come from SPI_tuptable; SPI_getbinval
        // checks n against the descriptor.
        let datum = unsafe { pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null) };
        (!is_null).then_some(datum)
    }

    /// Column `n` of a text type as a Rust string.
    pub fn text(&self, n: i32) -> Option<String> {
        // SAFETY: the caller's query makes column n a text value.
        self.get(n)
            .and_then(|d| unsafe { <String as pgrx::FromDatum>::from_datum(d, false) })
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
pub struct PlanCache<K>(RefCell<HashMap<K, Rc<KeptPlan>>>);

impl<K> Default for PlanCache<K> {
    fn default() -> Self {
        PlanCache(RefCell::new(HashMap::new()))
    }
}

impl<K: Hash + Eq> PlanCache<K> {
    /// The plan for `key`; `build` gives its SQL and argument types the
    /// first time. Must be called inside [`connected`]. The plan is handed
    /// out by `Rc` so a nested use (a guard firing on the same table) never
    /// finds the cache borrowed.
    pub fn get(&self, key: K, build: impl FnOnce() -> (String, Vec<pg_sys::Oid>)) -> Rc<KeptPlan> {
        if let Some(plan) = self.0.borrow().get(&key) {
            return plan.clone();
        }
        let (sql, types) = build();
        let plan = Rc::new(KeptPlan::prepare(&sql, &types));
        self.0.borrow_mut().insert(key, plan.clone());
        plan
    }
}
