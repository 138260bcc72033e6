//! `fsm.check_new_partitions(tbl)`, which the DDL event trigger
//! (`fsm.follow_table_changes`, sql/catalog.sql) calls after every CREATE
//! or ALTER TABLE that touched the partition tree of a bound partitioned
//! table: a partition attached in this transaction (`ATTACH PARTITION`, at
//! any level of the tree) brought its rows in at once, without the
//! triggers, so each must already hold a state, as at `attach`; otherwise
//! the statement fails with 23514.
//!
//! In the event trigger rather than in a hook, so it runs in every session
//! whether or not this library was loaded there before the statement.
//! Which partitions are new is told by their `pg_inherits` row: written by
//! the current transaction (`TransactionIdIsCurrentTransactionId`, which
//! covers subtransactions).

use pgrx::pg_sys;
use pgrx::IntoDatum;

use crate::args::Args;
use crate::cache;
use crate::error::{required, FsmResult};
use crate::machines::check_rows_hold_states;
use crate::spi_plan::{connected, KeptPlan};

v1_function!(
    fsm_check_new_partitions,
    pg_finfo_fsm_check_new_partitions,
    check_new_partitions
);

/// `fsm.check_new_partitions(tbl)`: 23514 unless every row of every
/// partition attached to `tbl`'s tree in this transaction holds a state of
/// each machine bound to `tbl`.
unsafe fn check_new_partitions(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let tbl = required(args.datum(0), "tbl")?;
    let relid = pg_sys::Oid::from(u32::try_from(tbl.value()).unwrap_or(0));
    let new_partitions = connected(|| -> FsmResult<Vec<pg_sys::Oid>> {
        let plan = KeptPlan::prepare(
            "SELECT i.inhrelid, i.xmin::pg_catalog.text \
               FROM pg_catalog.pg_partition_tree($1) p \
               JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) p.relid",
            &[pg_sys::REGCLASSOID],
        );
        let mut found = Vec::new();
        for row in plan.read_latest(&[relid.into_datum()]) {
            let (Some(child), Some(xmin)) = (row.oid(1)?, row.text(2)?) else {
                continue;
            };
            let xmin: u32 = xmin.parse().unwrap_or(0);
            // SAFETY: asks whether an xid is this transaction's (or one of
            // its subtransactions').
            if unsafe { pg_sys::TransactionIdIsCurrentTransactionId(xmin.into()) } {
                found.push(child);
            }
        }
        Ok(found)
    })?;
    if new_partitions.is_empty() {
        return Ok(pg_sys::Datum::from(0));
    }
    let bindings = cache::table_bindings(relid)?;
    for partition in new_partitions {
        for b in bindings.iter() {
            check_rows_hold_states(partition, &b.column, &b.machine, &b.machine_name)?;
        }
    }
    Ok(pg_sys::Datum::from(0))
}
