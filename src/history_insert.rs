//! One history row written into its table without the executor: the
//! heap insert, the table's constraints and its index entries, as
//! PostgreSQL's logical replication applies a row (`execReplication.c`).
//!
//! Why: a transition made by a one-row statement appends one history row,
//! and running an INSERT through SPI for it (plan cache check, executor
//! start and end, a query descriptor, a snapshot) costs more than the
//! writes themselves (W1s in BENCH.md).
//!
//! Only while the history table is still what `attach` made can the row go
//! in this way and mean exactly what the INSERT means: a plain table (not
//! partitioned), with our ten columns in order and of our types (none of
//! them an identity or generated column), no INSERT trigger (foreign keys
//! and deferrable constraints are triggers too), no rule, no row level
//! security, owned by the role the binding writes as, INSERT granted to
//! it, and a transaction that may write. Anything
//! else (a history table its owner partitioned, extended or guarded)
//! makes [`insert`] return `false`, and the caller runs the INSERT, which
//! applies all of it. CHECK and NOT NULL constraints, unique and exclusion
//! indexes, partial and expression indexes are applied here as the
//! executor applies them.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::binding::Binding;

/// The history table's columns as `attach` creates them; `None` stands for
/// the key type.
const COLUMNS: [(&CStr, Option<pg_sys::Oid>); 10] = [
    (c"id", Some(pg_sys::UUIDOID)),
    (c"entity_key", None),
    (c"event", Some(pg_sys::TEXTOID)),
    (c"from_state", Some(pg_sys::TEXTOID)),
    (c"to_state", Some(pg_sys::TEXTOID)),
    (c"payload", Some(pg_sys::JSONBOID)),
    (c"actor", Some(pg_sys::TEXTOID)),
    (c"db_user", Some(pg_sys::TEXTOID)),
    (c"machine_version", Some(pg_sys::INT4OID)),
    (c"idempotency_key", Some(pg_sys::TEXTOID)),
];

/// The values of one history row, in the order of [`COLUMNS`] (`None` for
/// NULL).
pub type Values = [Option<pg_sys::Datum>; COLUMNS.len()];

/// Writes the row `values` gives into `b`'s history table as the table's
/// owner, as the INSERT would (a restricted operation: CHECK constraints
/// and index expressions run with the owner's rights, never the caller's).
/// `values` is called as the caller, in a memory context freed on return.
/// `false`, with nothing written and `values` not called, when the table
/// is no longer plain (see the module's comment): then the caller must
/// INSERT.
pub fn insert(b: &Binding, values: impl FnOnce() -> Values) -> bool {
    // SAFETY: opens a relation by oid with the lock an INSERT takes; a
    // dropped relation raises an ERROR, which aborts the statement.
    let relation = unsafe {
        pg_sys::table_open(
            b.history_relid,
            pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
        )
    };
    // SAFETY: an open relation.
    if !unsafe { is_plain(relation, b) } {
        // SAFETY: closes what was opened above; the lock is kept to the end
        // of the transaction, as the INSERT that follows would keep it.
        unsafe { pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE) };
        return false;
    }
    // SAFETY: the sequence of ExecSimpleRelationInsert for a table with no
    // trigger and no generated column, over an executor state of our own:
    // a result relation with its indexes open, a virtual slot of the
    // relation's descriptor holding one datum of each column's type (the
    // caller's contract, checked against the descriptor by `is_plain`),
    // the constraints, the heap insert, the index entries. Everything is
    // allocated in the executor state's memory, freed at the end; on an
    // ERROR, (sub)transaction abort releases the relation, its indexes and
    // that memory.
    unsafe {
        let estate = pg_sys::CreateExecutorState();
        let saved = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
            as *mut pg_sys::ResultRelInfo;
        pg_sys::InitResultRelInfo(result, relation, 0, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(result, false);
        let slot =
            pg_sys::ExecInitExtraTupleSlot(estate, (*relation).rd_att, &pg_sys::TTSOpsVirtual);
        for (i, value) in values().iter().enumerate() {
            *(*slot).tts_values.add(i) = value.unwrap_or(pg_sys::Datum::from(0));
            *(*slot).tts_isnull.add(i) = value.is_none();
        }
        pg_sys::ExecStoreVirtualTuple(slot);
        let write = || {
            if !(*(*relation).rd_att).constr.is_null() {
                pg_sys::ExecConstraints(result, slot, estate);
            }
            pg_sys::simple_table_tuple_insert(relation, slot);
            if (*result).ri_NumIndices > 0 {
                insert_index_entries(result, slot, estate);
            }
        };
        // The owner's expressions (a CHECK, an index expression or
        // predicate) run as the owner, with search_path pinned when the
        // table has any (decided once per binding load: runs_owner_code).
        crate::sql::as_history_owner(b, write);
        close_indexes(result);
        pg_sys::ExecResetTupleTable((*estate).es_tupleTable, false);
        pg_sys::MemoryContextSwitchTo(saved);
        pg_sys::FreeExecutorState(estate);
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
    true
}

/// Whether anything of the history table `relid` runs its owner's code
/// when a row is written or read as the owner: it is partitioned (its
/// partitions may add their own), it forces row level security on its
/// owner, or it has a rule, an INSERT trigger, a CHECK constraint, a
/// default other than `db_user`'s `CURRENT_USER`, a column of a domain
/// type, an index expression, an index predicate other than `IS NULL`
/// tests of columns, or an index whose operator family is not built in. Then that code
/// runs with `search_path` pinned (`sql::as_table_owner`); a table as attach
/// made it has none, and spares the cost. `true` when in doubt.
pub fn runs_owner_code(relid: pg_sys::Oid) -> bool {
    // SAFETY: the table is opened (locked) and its indexes' relcache
    // entries pinned while their fields and lists are read; all are closed
    // before returning.
    unsafe {
        // The lock any read or write of it takes anyway, kept to the end of
        // the transaction; a dropped table raises, as the query would.
        let relation = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let form = &*(*relation).rd_rel;
        let mut code = form.relkind == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char
            || (form.relrowsecurity && form.relforcerowsecurity)
            || !(*relation).rd_rules.is_null();
        let triggers = (*relation).trigdesc;
        if !code && !triggers.is_null() {
            let t = &*triggers;
            code = t.trig_insert_before_row
                || t.trig_insert_after_row
                || t.trig_insert_instead_row
                || t.trig_insert_before_statement
                || t.trig_insert_after_statement;
        }
        let constraints = (*(*relation).rd_att).constr;
        if !code && !constraints.is_null() {
            let c = &*constraints;
            let db_user = COLUMNS
                .iter()
                .position(|(n, _)| *n == c"db_user")
                .map(|i| i as i16 + 1);
            code = c.num_check > 0
                || (0..c.num_defval as usize).any(|i| Some((*c.defval.add(i)).adnum) != db_user);
        }
        // A domain's CHECK runs on every value written into its column.
        if !code {
            let desc = pgrx::PgTupleDesc::from_pg_unchecked((*relation).rd_att);
            code = desc.iter().any(|attribute| {
                !attribute.attisdropped
                    && pg_sys::get_typtype(attribute.atttypid)
                        == pg_sys::TYPTYPE_DOMAIN as std::ffi::c_char
            });
        }
        if !code {
            let indexes = pg_sys::RelationGetIndexList(relation);
            let count = if indexes.is_null() {
                0
            } else {
                (*indexes).length as usize
            };
            for i in 0..count {
                let index = pg_sys::RelationIdGetRelation((*(*indexes).elements.add(i)).oid_value);
                if index.is_null() {
                    code = true;
                    break;
                }
                let expressions = pg_sys::RelationGetIndexExpressions(index);
                let predicate = pg_sys::RelationGetIndexPredicate(index);
                // An operator family that is not built in (a key type of
                // someone's, a custom operator class) compares with its
                // owner's functions.
                let custom_family = has_custom_family(index);
                pg_sys::RelationClose(index);
                if custom_family || !expressions.is_null() || !only_null_tests_of_columns(predicate)
                {
                    code = true;
                    break;
                }
            }
        }
        pg_sys::relation_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        code
    }
}

/// Whether an index compares with an operator family that is not built in
/// (a key type of someone's, a custom operator class): its functions are
/// its owner's code.
///
/// # Safety
/// `index` is an open index relation.
unsafe fn has_custom_family(index: pg_sys::Relation) -> bool {
    // SAFETY: an open index's pg_index row and per-key-column families.
    unsafe {
        let key_columns = (*(*index).rd_index).indnkeyatts as usize;
        (0..key_columns)
            .any(|k| u32::from(*(*index).rd_opfamily.add(k)) >= pg_sys::FirstNormalObjectId)
    }
}

/// Whether `predicate` (an implicitly ANDed list, or NIL) holds only
/// `column IS [NOT] NULL` tests, which call no function.
///
/// # Safety
/// `predicate` is NIL or a List of expression nodes.
unsafe fn only_null_tests_of_columns(predicate: *mut pg_sys::List) -> bool {
    // SAFETY: per the contract; nodes are read by their tags.
    unsafe {
        pgrx::PgList::<pg_sys::Node>::from_pg(predicate)
            .iter_ptr()
            .all(|node| {
                !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_NullTest && {
                    let arg = (*(node as *mut pg_sys::NullTest)).arg as *mut pg_sys::Node;
                    !arg.is_null() && (*arg).type_ == pg_sys::NodeTag::T_Var
                }
            })
    }
}

/// The index entries of the row just inserted from `slot`, unique and
/// exclusion constraints checked. No index can ask for a deferred recheck:
/// a deferrable constraint comes with an INSERT trigger, which `is_plain`
/// refuses.
///
/// # Safety
/// As in [`insert`]: the result relation's indexes are open and `slot`
/// holds the inserted row with its tid.
unsafe fn insert_index_entries(
    result: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
) {
    // SAFETY: per the contract; not an UPDATE, duplicates are errors.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::ExecInsertIndexTuples(
            result,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        #[cfg(feature = "pg18")]
        pg_sys::ExecInsertIndexTuples(
            result,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
        );
    }
}

/// Closes the indexes `ExecOpenIndices` opened, keeping their locks to
/// the end of the transaction (`ExecCloseIndices` would release them): the
/// next transition finds them held and takes no lock again. The table's
/// own lock, which every DDL that could drop or rebuild an index conflicts
/// with, is held that long anyway.
///
/// # Safety
/// `result`'s indexes are open.
unsafe fn close_indexes(result: *mut pg_sys::ResultRelInfo) {
    // SAFETY: ri_IndexRelationDescs and ri_IndexRelationInfo have
    // ri_NumIndices entries, the relations open.
    unsafe {
        for i in 0..(*result).ri_NumIndices as usize {
            let index = *(*result).ri_IndexRelationDescs.add(i);
            if !index.is_null() {
                // From PostgreSQL 17 an index access method may keep state
                // across inserts (BRIN holds a buffer pin) until this call,
                // as ExecCloseIndices makes it.
                #[cfg(feature = "pg18")]
                pg_sys::index_insert_cleanup(index, *(*result).ri_IndexRelationInfo.add(i));
                pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            }
        }
    }
}

/// Whether `relation` is still the plain history table `attach` made, so
/// a row written by [`insert`] means what the INSERT would, and its owner
/// may still INSERT into it (the INSERT checks that).
///
/// # Safety
/// `relation` is open.
unsafe fn is_plain(relation: pg_sys::Relation, b: &Binding) -> bool {
    // SAFETY: an open relation's relcache entry, descriptor and trigger
    // description stay valid while it is open; the descriptor is borrowed,
    // not freed.
    unsafe {
        let form = &*(*relation).rd_rel;
        if form.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || form.relowner != b.history_owner
            || (pg_sys::XactReadOnly
                && form.relpersistence != pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char)
            || form.relispartition
            || form.relrowsecurity
            || !(*relation).rd_rules.is_null()
        {
            return false;
        }
        let triggers = (*relation).trigdesc;
        if !triggers.is_null() {
            let t = &*triggers;
            if t.trig_insert_before_row
                || t.trig_insert_after_row
                || t.trig_insert_instead_row
                || t.trig_insert_before_statement
                || t.trig_insert_after_statement
                || t.trig_insert_new_table
            {
                return false;
            }
        }
        let desc = pgrx::PgTupleDesc::from_pg_unchecked((*relation).rd_att);
        if desc.len() != COLUMNS.len() {
            return false;
        }
        for (i, (name, type_oid)) in COLUMNS.iter().enumerate() {
            let Some(attribute) = desc.get(i) else {
                return false;
            };
            let (type_oid, typmod) = match type_oid {
                Some(t) => (*t, -1),
                None => (b.key.oid(), b.key.typmod),
            };
            // An identity or generated column refuses or replaces the
            // value the INSERT gives it.
            if attribute.attisdropped
                || attribute.attidentity != 0
                || attribute.attgenerated != 0
                || attribute.atttypid != type_oid
                || attribute.atttypmod != typmod
                || CStr::from_ptr(attribute.attname.data.as_ptr()) != *name
            {
                return false;
            }
        }
        pg_sys::pg_class_aclcheck(
            (*relation).rd_id,
            b.history_owner,
            pg_sys::ACL_INSERT as pg_sys::AclMode,
        ) == pg_sys::AclResult::ACLCHECK_OK
    }
}
