//! `fsm.history` and `fsm.current_states`: set-returning C functions.
//!
//! Each runs one query per call through a plan kept per binding and key
//! type (see `catalog::Statement`), with the caller's rights so table grants
//! and row security apply, and copies the result tuples straight into the
//! caller's tuplestore. Nothing is parsed or planned per call once a
//! backend has seen the table: this is what keeps them level with the
//! query a person would write by hand (W4, W5 in BENCH.md).
//!
//! They are declared in `sql/read.sql`.

use pgrx::fcinfo::{pg_getarg_datum, pg_getarg_type};
use std::rc::Rc;

use pgrx::pg_sys;

use crate::catalog::{self, Statement};
use crate::error::{required, FsmResult};
use crate::spi_plan::{connected, KeptPlan};

v1_function!(fsm_history, pg_finfo_fsm_history, history);
v1_function!(
    fsm_current_states,
    pg_finfo_fsm_current_states,
    current_states
);

/// `fsm.history(tbl, key, since, until, lim)`: one entity's history, newest first.
unsafe fn history(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    let (relid, key, key_type) = unsafe { table_and_key(fcinfo)? };
    let [since, until, limit] = [2, 3, 4].map(|n| unsafe { pg_getarg_datum(fcinfo, n) });
    let bindings = catalog::attached_bindings(relid)?;
    let statement = Statement::History {
        since: since.is_some(),
        until: until.is_some(),
        limit: limit.is_some(),
    };
    let plan = || {
        bindings[0].plans.get((statement, key_type), || {
            let types = vec![
                key_type,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::INT4OID,
            ];
            (
                history_sql(&bindings, since.is_some(), until.is_some(), limit.is_some()),
                types,
            )
        })
    };
    unsafe { materialize(fcinfo, plan, &[key, since, until, limit]) };
    Ok(pg_sys::Datum::from(0))
}

/// One query over the history tables of every column bound on the table.
fn history_sql(bindings: &[Rc<catalog::Binding>], since: bool, until: bool, limit: bool) -> String {
    let per_binding: Vec<String> = bindings
        .iter()
        .map(|b| {
            let mut sql = format!(
                "SELECT h.id, fsm.uuid7_time(h.id), h.event, h.from_state, h.to_state, h.payload, h.actor, h.db_user \
                   FROM {} h WHERE h.entity_key = $1::{}",
                b.history_table, b.key_type_sql
            );
            if since {
                sql.push_str(" AND h.id >= fsm.uuid7($2)");
            }
            if until {
                sql.push_str(" AND h.id < fsm.uuid7($3)");
            }
            sql
        })
        .collect();
    let limit = if limit { " LIMIT $4" } else { "" };
    match per_binding.as_slice() {
        [one] => format!("{one} ORDER BY h.id DESC{limit}"),
        several => format!(
            "SELECT * FROM ({}) h ORDER BY 1 DESC{limit}",
            several.join(" UNION ALL ")
        ),
    }
}

/// `fsm.current_states(tbl, keys)`: the state of each existing key, in the
/// order given, with its last transition. A table with several bound
/// columns answers for the first.
unsafe fn current_states(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    let (relid, keys, keys_type) = unsafe { table_and_key(fcinfo)? };
    let bindings = catalog::attached_bindings(relid)?;
    let b = &bindings[0];
    let plan = || {
        b.plans.get((Statement::CurrentStates, keys_type), || {
        let sql = format!(
            "SELECT k.key, t.{col}::text, fsm.uuid7_time(h.id), h.event, h.id \
               FROM pg_catalog.unnest($1) WITH ORDINALITY AS k(key, ord) \
               JOIN {table} t ON t.{key} = k.key::{key_type} \
               LEFT JOIN LATERAL (SELECT h.id, h.event FROM {history} h \
                                   WHERE h.entity_key = t.{key} ORDER BY h.id DESC LIMIT 1) h ON true \
              ORDER BY k.ord",
            col = crate::quote::ident(&b.column),
            table = b.table_sql,
            key = crate::quote::ident(&b.key_column),
            key_type = b.key_type_sql,
            history = b.history_table,
        );
        (sql, vec![keys_type])
    })
    };
    unsafe { materialize(fcinfo, plan, &[keys]) };
    Ok(pg_sys::Datum::from(0))
}

/// The table argument (first) and the key argument (second) with its type.
unsafe fn table_and_key(
    fcinfo: pg_sys::FunctionCallInfo,
) -> FsmResult<(pg_sys::Oid, Option<pg_sys::Datum>, pg_sys::Oid)> {
    let relid = required(
        unsafe { pg_getarg_datum(fcinfo, 0) }.map(|d| pg_sys::Oid::from(d.value() as u32)),
        "tbl",
    )?;
    Ok((relid, unsafe { pg_getarg_datum(fcinfo, 1) }, unsafe {
        pg_getarg_type(fcinfo, 1)
    }))
}

/// Runs the plan `plan` gives (inside SPI, where it may be prepared) and
/// hands every result row to the caller as the function's result set. The
/// query's columns are the function's declared columns.
unsafe fn materialize(
    fcinfo: pg_sys::FunctionCallInfo,
    plan: impl FnOnce() -> Rc<KeptPlan>,
    args: &[Option<pg_sys::Datum>],
) {
    // SAFETY: sets up rsinfo's tuplestore in the per-query context, with the
    // result descriptor resolved for this call (polymorphic types included).
    unsafe { pg_sys::InitMaterializedSRF(fcinfo, 0) };
    let rsinfo = unsafe { &*((*fcinfo).resultinfo as *const pg_sys::ReturnSetInfo) };
    connected(|| {
        let rows = plan().execute(args, true);
        // SAFETY: SPI_tuptable holds `rows` tuples of the query's shape; the
        // tuplestore copies each into its own memory.
        unsafe {
            let table = pg_sys::SPI_tuptable;
            for i in 0..rows as usize {
                pg_sys::tuplestore_puttuple(rsinfo.setResult, *(*table).vals.add(i));
            }
        }
    });
}
