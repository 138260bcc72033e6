//! What the utility hook checks after a statement, for the DDL that the
//! event triggers (sql/catalog.sql) cannot judge from the catalog alone:
//! `ALTER TABLE <bound> ATTACH PARTITION p` brings p's rows into a bound
//! table at once, without its triggers, so each must already hold a state
//! (as at `attach`); otherwise the statement fails with 23514.

use pgrx::pg_sys;

use crate::cache;
use crate::error::FsmResult;
use crate::machines::check_rows_hold_states;

/// After `statement` ran: refuses it when it attached a partition whose
/// rows are not all in states of the parent's machines.
///
/// # Safety
/// `statement` is the utility statement just executed, in a transaction.
pub unsafe fn check_after(statement: *mut pg_sys::PlannedStmt) -> FsmResult<()> {
    // SAFETY: the caller's contract.
    let Some((parent, partition)) = (unsafe { attached_partition(statement) }) else {
        return Ok(());
    };
    // The library stays loaded in a backend after DROP EXTENSION fsm.
    // SAFETY: a catalog lookup by name.
    if unsafe { pg_sys::get_extension_oid(c"fsm".as_ptr(), true) } == pg_sys::InvalidOid {
        return Ok(());
    }
    // The parent may itself be a partition of a bound table (its bindings
    // are then seen from it): the rows enter the bound table all the same.
    let bindings = cache::table_bindings(parent)?;
    for b in bindings.iter() {
        check_rows_hold_states(partition, &b.column, &b.machine, &b.machine_name)?;
    }
    Ok(())
}

/// The parent and the partition of an `ALTER TABLE … ATTACH PARTITION`.
///
/// # Safety
/// As [`check_after`].
unsafe fn attached_partition(
    statement: *mut pg_sys::PlannedStmt,
) -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    // SAFETY: a planned utility statement's node tree, read by node tag.
    unsafe {
        let node = (*statement).utilityStmt;
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_AlterTableStmt {
            return None;
        }
        let alter = node.cast::<pg_sys::AlterTableStmt>();
        let commands = pgrx::PgList::<pg_sys::AlterTableCmd>::from_pg((*alter).cmds);
        let attach = commands
            .iter_ptr()
            .find(|c| (**c).subtype == pg_sys::AlterTableType::AT_AttachPartition)?;
        let partition_cmd = (*attach).def.cast::<pg_sys::PartitionCmd>();
        if partition_cmd.is_null() {
            return None;
        }
        // The statement took its locks on both; the names resolve as they
        // did for it.
        let parent = relation_of((*alter).relation)?;
        let partition = relation_of((*partition_cmd).name)?;
        Some((parent, partition))
    }
}

/// # Safety
/// `name` is NULL or a RangeVar.
unsafe fn relation_of(name: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
    if name.is_null() {
        return None;
    }
    // SAFETY: a missing_ok lookup of a RangeVar; no lock is taken.
    let relid = unsafe {
        pg_sys::RangeVarGetRelidExtended(
            name,
            pg_sys::NoLock as pg_sys::LOCKMODE,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    };
    (relid != pg_sys::InvalidOid).then_some(relid)
}
