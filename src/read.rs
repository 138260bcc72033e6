//! The read functions: `fsm.history`, `fsm.changes`, `fsm.current_states`
//! and `fsm.states_at`, set-returning C functions.
//!
//! Rights first (API.md §8): the caller must hold SELECT on the table at
//! the call, and where row level security applies to the caller, only the
//! history of rows the caller can see is returned. The history tables
//! themselves are read as their owner, so no grant on them is needed (and
//! none is ever given automatically).
//!
//! Each call runs one query through a plan kept per binding, and copies
//! the result tuples into the caller's tuplestore after checking that
//! their shape is the function's declared result (a history table altered
//! by its owner must give a clean error, never be read as another type).
//! They are declared in `sql/functions.sql`.
//!
//! Time windows are answered from the UUIDv7 order of the history ids
//! (`id >= fsm.uuid7(since)`, `id < fsm.uuid7(until)`), so the primary key
//! serves them and no timestamp index is needed.

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;

use crate::args::Args;
use crate::binding::{self, Binding, Statement};
use crate::cache;
use crate::error::{required, ErrorKind, FsmError, FsmResult};
use crate::key::Key;
use crate::spi_plan::{connected, KeptPlan};
use crate::sql::{current_user, ident};

v1_function!(fsm_history, pg_finfo_fsm_history, history);
v1_function!(fsm_changes, pg_finfo_fsm_changes, changes);
v1_function!(
    fsm_current_states,
    pg_finfo_fsm_current_states,
    current_states
);
v1_function!(fsm_states_at, pg_finfo_fsm_states_at, states_at);

/// The bindings `history` and `changes` read: the one `col` names, or
/// every binding of the table.
fn named_or_all<'a>(
    bindings: &'a [Rc<Binding>],
    col: Option<&str>,
) -> FsmResult<&'a [Rc<Binding>]> {
    let Some(col) = col else {
        return Ok(bindings);
    };
    let i = binding::position_of(bindings, col)?;
    Ok(&bindings[i..=i])
}

/// `fsm.history(tbl, key, since, until, lim, col)`: one entity's history,
/// newest first.
unsafe fn history(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let key = required(args.datum(1), "key")?;
    let key_type = args.type_of(1)?;
    let [since, until, limit] = [2, 3, 4].map(|n| args.datum(n));
    let col = args.name(5);
    let bindings = cache::attached_bindings(relid)?;
    let chosen = named_or_all(&bindings, col.as_deref())?;
    let b = &chosen[0];
    // Every column read, not only the first: a role may read one bound
    // column of the table and not another.
    chosen.iter().try_for_each(|b| check_select(b))?;
    let statement = Statement::History {
        since: since.is_some(),
        until: until.is_some(),
        limit: limit.is_some(),
        all: col.is_none(),
    };
    let rls = row_security_applies(relid);
    let prepare = |b: &Binding| -> FsmResult<Query> {
        // SAFETY: the converted datum is of the key type.
        let key = unsafe { Key::of_key_type(b.key.convert(key, key_type, false)?) };
        if rls && !key_visible(b, key) {
            return Ok(None);
        }
        let plan = b.plans.get(statement, || {
            let types = vec![
                b.key.oid(),
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::INT4OID,
            ];
            (history_sql(chosen, statement), types)
        });
        Ok(Some((plan, vec![Some(key.datum()), since, until, limit])))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}

/// One query over the history tables of `bindings`.
fn history_sql(bindings: &[Rc<Binding>], statement: Statement) -> String {
    let Statement::History {
        since,
        until,
        limit,
        ..
    } = statement
    else {
        unreachable!("history_sql is only built for Statement::History")
    };
    newest_first(
        bindings,
        |b| {
            format!(
                "SELECT h.id, fsm.uuid7_time(h.id), h.event, h.from_state, h.to_state, h.payload, h.actor, h.db_user \
                   FROM {} h WHERE h.entity_key {} $1{}",
                b.history_table,
                b.key.equality_sql,
                id_window(since.then_some(2), until.then_some(3))
            )
        },
        limit.then_some(4),
    )
}

/// `AND` conditions on `h.id` for a window whose `since` (inclusive) and
/// `until` (exclusive) moments are the numbered parameters given.
fn id_window(since: Option<u8>, until: Option<u8>) -> String {
    let mut sql = String::new();
    if let Some(n) = since {
        sql.push_str(&format!(
            " AND h.id OPERATOR(pg_catalog.>=) fsm.uuid7(${n})"
        ));
    }
    if let Some(n) = until {
        sql.push_str(&format!(" AND h.id OPERATOR(pg_catalog.<) fsm.uuid7(${n})"));
    }
    sql
}

/// The union of `per_binding`'s query over `bindings`, newest first (the
/// first column is the history id), with the limit in parameter `limit`.
fn newest_first(
    bindings: &[Rc<Binding>],
    per_binding: impl Fn(&Binding) -> String,
    limit: Option<u8>,
) -> String {
    let queries: Vec<String> = bindings.iter().map(|b| per_binding(b)).collect();
    let limit = limit.map(|n| format!(" LIMIT ${n}")).unwrap_or_default();
    match queries.as_slice() {
        [one] => format!("{one} ORDER BY h.id DESC{limit}"),
        several => format!(
            "SELECT * FROM ({}) h ORDER BY 1 DESC{limit}",
            several.join(" UNION ALL ")
        ),
    }
}

/// `fsm.changes(tbl, since, until, event, lim, col)`: what changed on the
/// table, newest first, with each entity's key as text. Under row level
/// security, only the history of rows the caller can see now.
unsafe fn changes(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let [since, until, event, limit] = [1, 2, 3, 4].map(|n| args.datum(n));
    let col = args.name(5);
    let bindings = cache::attached_bindings(relid)?;
    let chosen = named_or_all(&bindings, col.as_deref())?;
    let b = &chosen[0];
    // Every column read, not only the first: a role may read one bound
    // column of the table and not another.
    chosen.iter().try_for_each(|b| check_select(b))?;
    let rls = row_security_applies(relid);
    let statement = Statement::Changes {
        since: since.is_some(),
        until: until.is_some(),
        event: event.is_some(),
        limit: limit.is_some(),
        all: col.is_none(),
        visible: rls,
    };
    let prepare = |b: &Binding| -> FsmResult<Query> {
        let visible = if rls {
            match all_visible_keys(b) {
                Some(keys) => Some(keys),
                None => return Ok(None),
            }
        } else {
            None
        };
        let plan = b.plans.get(statement, || {
            let types = vec![
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TEXTOID,
                pg_sys::INT4OID,
                b.key.storage.array_type,
            ];
            (changes_sql(chosen, statement), types)
        });
        Ok(Some((plan, vec![since, until, event, limit, visible])))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}

fn changes_sql(bindings: &[Rc<Binding>], statement: Statement) -> String {
    let Statement::Changes {
        since,
        until,
        event,
        limit,
        visible,
        ..
    } = statement
    else {
        unreachable!("changes_sql is only built for Statement::Changes")
    };
    newest_first(
        bindings,
        |b| {
            let mut sql = format!(
                "SELECT h.id, fsm.uuid7_time(h.id), h.entity_key::pg_catalog.text, h.event, h.from_state, \
                        h.to_state, h.payload, h.actor, h.db_user \
                   FROM {} h WHERE true{}",
                b.history_table,
                id_window(since.then_some(1), until.then_some(2))
            );
            if event {
                sql.push_str(" AND h.event OPERATOR(pg_catalog.=) $3");
            }
            if visible {
                sql.push_str(&format!(
                    " AND h.entity_key {} ANY ($5)",
                    b.key.equality_sql
                ));
            }
            sql
        },
        limit.then_some(4),
    )
}

/// `fsm.current_states(tbl, keys, col)`: the state of each existing key,
/// in the order given, with its last transition. Keys come back as the
/// caller passed them.
unsafe fn current_states(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let keys = required(args.datum(1), "keys")?;
    let keys_type = args.type_of(1)?;
    let bindings = cache::attached_bindings(relid)?;
    let b = binding::named_or_only(&bindings, args.name(2).as_deref())?;
    check_select(b)?;
    let rls = row_security_applies(relid);
    let prepare = |b: &Binding| -> FsmResult<Query> {
        let Some((converted, visible)) = keys_to_read(b, keys, keys_type, rls)? else {
            return Ok(None);
        };
        let plan = b.plans.get(Statement::CurrentStates { keys_type }, || {
            let sql = format!(
                "SELECT k.orig, t.{col}::pg_catalog.text, fsm.uuid7_time(h.id), h.event, h.id \
                   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) WITH ORDINALITY AS k(key, orig, ord) \
                   JOIN {table} t ON t.{key} {eq} k.key \
                   LEFT JOIN LATERAL (SELECT h.id, h.event FROM {history} h \
                                       WHERE h.entity_key {eq} t.{key} ORDER BY h.id DESC LIMIT 1) h ON true \
                  WHERE $3 IS NULL OR k.ord OPERATOR(pg_catalog.=) ANY ($3) \
                  ORDER BY k.ord",
                col = ident(&b.column),
                table = b.table_sql,
                key = ident(&b.key_column),
                eq = b.key.equality_sql,
                history = b.history_table,
            );
            (sql, vec![b.key.storage.array_type, keys_type, pg_sys::INT8ARRAYOID])
        });
        Ok(Some((plan, vec![Some(converted), Some(keys), visible])))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}

/// `keys` (an array of `keys_type`) as an array of the key type, and, under
/// row level security, the positions (from 1) of the keys whose rows the
/// caller can see (`None`: no filter). `None` when the caller sees none.
pub fn keys_to_read(
    b: &Binding,
    keys: pg_sys::Datum,
    keys_type: pg_sys::Oid,
    rls: bool,
) -> FsmResult<Option<(pg_sys::Datum, Option<pg_sys::Datum>)>> {
    let converted = b.key.convert(keys, keys_type, true)?;
    if !rls {
        return Ok(Some((converted, None)));
    }
    Ok(visible_positions(b, converted).map(|visible| (converted, Some(visible))))
}

/// `fsm.states_at(tbl, keys, at, col)`: the state each key was in at `at`
/// (its last history row of that millisecond or before that changed the
/// state), in the order given, with the moment it entered it. Keys with no history by then are
/// left out; under row level security, so are keys whose rows the caller
/// cannot see now.
unsafe fn states_at(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let keys = required(args.datum(1), "keys")?;
    let keys_type = args.type_of(1)?;
    let at = required(args.datum(2), "at")?;
    let bindings = cache::attached_bindings(relid)?;
    let b = binding::named_or_only(&bindings, args.name(3).as_deref())?;
    check_select(b)?;
    let rls = row_security_applies(relid);
    let prepare = |b: &Binding| -> FsmResult<Query> {
        let Some((converted, visible)) = keys_to_read(b, keys, keys_type, rls)? else {
            return Ok(None);
        };
        let plan = b.plans.get(Statement::StatesAt { keys_type }, || {
            // A transition counts from its millisecond on: the bound is the
            // first id of the millisecond after `at`'s. The state is the one
            // the last row that changed it entered (a self-transition after
            // it leaves the state, and its `since`, as they were).
            let sql = format!(
                "SELECT k.orig, h.to_state, fsm.uuid7_time(h.id) \
                   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) WITH ORDINALITY AS k(key, orig, ord) \
                   CROSS JOIN LATERAL (SELECT h.id, h.to_state FROM {history} h \
                                        WHERE h.entity_key {eq} k.key \
                                          AND (h.from_state IS NULL OR h.from_state OPERATOR(pg_catalog.<>) h.to_state) \
                                          AND h.id OPERATOR(pg_catalog.<) \
                                              fsm.uuid7($4 OPERATOR(pg_catalog.+) '1 millisecond'::pg_catalog.interval) \
                                        ORDER BY h.id DESC LIMIT 1) h \
                  WHERE $3 IS NULL OR k.ord OPERATOR(pg_catalog.=) ANY ($3) \
                  ORDER BY k.ord",
                eq = b.key.equality_sql,
                history = b.history_table,
            );
            let types = vec![
                b.key.storage.array_type,
                keys_type,
                pg_sys::INT8ARRAYOID,
                pg_sys::TIMESTAMPTZOID,
            ];
            (sql, types)
        });
        Ok(Some((
            plan,
            vec![Some(converted), Some(keys), visible, Some(at)],
        )))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}

/// 42501 unless the caller may SELECT the table now: the whole table, or
/// its key and every bound column.
pub fn check_select(b: &Binding) -> FsmResult<()> {
    let user = current_user();
    // SAFETY: ACL checks by oid and attribute number of a live relation.
    let allowed = unsafe {
        pg_sys::pg_class_aclcheck(b.relid, user, pg_sys::ACL_SELECT as pg_sys::AclMode)
            == pg_sys::AclResult::ACLCHECK_OK
            || [b.key_attnum, b.attnum].iter().all(|&attnum| {
                pg_sys::pg_attribute_aclcheck(
                    b.relid,
                    attnum,
                    user,
                    pg_sys::ACL_SELECT as pg_sys::AclMode,
                ) == pg_sys::AclResult::ACLCHECK_OK
            })
    };
    if allowed {
        return Ok(());
    }
    Err(FsmError::new(
        ErrorKind::InsufficientPrivilege,
        format!("permission denied for table {}", b.table),
    )
    .hint("Reading fsm history needs SELECT on the table."))
}

/// Whether row level security filters what the current user sees of the table.
pub fn row_security_applies(relid: pg_sys::Oid) -> bool {
    // SAFETY: checks the current user's row security for a live relation.
    let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, false) };
    rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
}

/// Whether the caller can see the row of `key` (its policies applied).
fn key_visible(b: &Binding, key: Key) -> bool {
    let plan = b.plans.get(Statement::KeyVisible, || {
        (
            format!(
                "SELECT 1 FROM {} t WHERE t.{} {} $1",
                b.table_sql,
                ident(&b.key_column),
                b.key.equality_sql
            ),
            vec![b.key.oid()],
        )
    });
    plan.execute(&[Some(key.datum())], true) > 0
}

/// The positions (from 1) in `keys` (an array of the key type) of the keys
/// whose rows the caller can see; `None` when there is none.
fn visible_positions(b: &Binding, keys: pg_sys::Datum) -> Option<pg_sys::Datum> {
    let plan = b.plans.get(Statement::KeysVisible, || {
        (
            format!(
                "SELECT pg_catalog.array_agg(k.ord) \
                   FROM pg_catalog.unnest($1) WITH ORDINALITY AS k(key, ord) \
                  WHERE EXISTS (SELECT FROM {} t WHERE t.{} {} k.key)",
                b.table_sql,
                ident(&b.key_column),
                b.key.equality_sql
            ),
            vec![b.key.storage.array_type],
        )
    });
    plan.first_datum(&[Some(keys)])
}

/// Every key whose row the caller can see, as an array of the key type;
/// `None` when there is none.
pub fn all_visible_keys(b: &Binding) -> Option<pg_sys::Datum> {
    let plan = b.plans.get(Statement::AllVisibleKeys, || {
        (
            format!(
                "SELECT pg_catalog.array_agg(t.{}) FROM {} t",
                ident(&b.key_column),
                b.table_sql
            ),
            vec![],
        )
    });
    plan.first_datum(&[])
}

/// The query of one call: its plan and arguments, or `None` for an empty
/// result.
pub type Query = Option<(Rc<KeptPlan>, Vec<Option<pg_sys::Datum>>)>;

/// Runs the query `prepare` gives (inside SPI, as the caller, where the key
/// conversion and row security checks run) as the history tables' owner,
/// and hands every result row to the caller as the function's result set,
/// after checking the rows have the declared result's column types.
///
/// # Safety
/// `fcinfo` is the valid call information of a set-returning function.
pub unsafe fn materialize(
    fcinfo: pg_sys::FunctionCallInfo,
    b: &Binding,
    prepare: impl FnOnce(&Binding) -> FsmResult<Query>,
) -> FsmResult<pg_sys::Datum> {
    let mut prepare = Some(prepare);
    // SAFETY: per the contract.
    unsafe {
        materialize_each(fcinfo, std::slice::from_ref(&b), Failing::Raise, |b| {
            prepare.take().expect("one binding")(b)
        })
    }
}

/// What [`materialize_each`] does when one binding's query fails.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// The call fails.
    Raise,
    /// That binding's rows are left out, with a WARNING naming the table
    /// and the SQLSTATE: for a view over every table, which one table's
    /// owner must not break for everyone.
    Skip,
}

/// As [`materialize`], one query per binding, their rows in that order.
///
/// # Safety
/// `fcinfo` is the valid call information of a set-returning function.
pub unsafe fn materialize_each<B: std::ops::Deref<Target = Binding>>(
    fcinfo: pg_sys::FunctionCallInfo,
    bindings: &[B],
    failing: Failing,
    mut prepare: impl FnMut(&Binding) -> FsmResult<Query>,
) -> FsmResult<pg_sys::Datum> {
    // SAFETY: per the contract.
    let rsinfo = unsafe { result_set(fcinfo) };
    // History rows this transaction still holds (see `pending`) are
    // appended first; the queries then read with the transaction's
    // snapshot brought up to date (not read-only), so they see them.
    let fresh = crate::pending::flush();
    connected(|| -> FsmResult<()> {
        for b in bindings {
            let mut read = || -> FsmResult<()> {
                let Some((plan, args)) = prepare(b)? else {
                    return Ok(());
                };
                let rows = crate::sql::as_history_owner(b, || plan.execute(&args, !fresh));
                if rows == 0 {
                    return Ok(());
                }
                // SAFETY: SPI_tuptable holds `rows` tuples of one descriptor;
                // setDesc is the call's result descriptor; the tuplestore
                // copies each tuple into its own memory once the shapes are
                // checked equal.
                unsafe {
                    let table = pg_sys::SPI_tuptable;
                    check_shape((*table).tupdesc, rsinfo.setDesc, b)?;
                    for i in 0..rows as usize {
                        pg_sys::tuplestore_puttuple(rsinfo.setResult, *(*table).vals.add(i));
                    }
                }
                Ok(())
            };
            if failing == Failing::Raise {
                read()?;
                continue;
            }
            let attempt = crate::savepoint::attempt(|| read().unwrap_or_else(|e| e.raise()));
            if let Err(CaughtError::PostgresError(e) | CaughtError::ErrorReport(e)) = attempt {
                pgrx::warning!(
                    "fsm: {} is left out: reading it failed ({})",
                    b.table,
                    crate::boundary::sqlstate_of(&e)
                );
            }
        }
        Ok(())
    })?;
    Ok(pg_sys::Datum::from(0))
}

/// Sets up the caller's tuplestore in the per-query context and returns
/// the call's result set information.
///
/// The result descriptor is the one the executor expects when it gives one
/// (a function in FROM: the same column types as the declaration, already
/// resolved), which spares building it again from `pg_proc` on every call;
/// otherwise it is resolved from the declaration.
///
/// # Safety
/// `fcinfo` is the valid call information of a set-returning function.
pub unsafe fn result_set<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a pg_sys::ReturnSetInfo {
    // SAFETY: per the contract; resultinfo, when set, is a ReturnSetInfo
    // (InitMaterializedSRF checks its node tag before anything else).
    unsafe {
        let rsinfo = (*fcinfo).resultinfo as *const pg_sys::ReturnSetInfo;
        let expected = !rsinfo.is_null()
            && (*rsinfo).type_ == pg_sys::NodeTag::T_ReturnSetInfo
            && !(*rsinfo).expectedDesc.is_null();
        let flags = if expected {
            pg_sys::MAT_SRF_USE_EXPECTED_DESC as pg_sys::bits32
        } else {
            0
        };
        pg_sys::InitMaterializedSRF(fcinfo, flags);
        &*rsinfo
    }
}

/// 42804 unless `found` has exactly the column types of `expected`.
///
/// # Safety
/// Both are valid tuple descriptors.
unsafe fn check_shape(
    found: pg_sys::TupleDesc,
    expected: pg_sys::TupleDesc,
    b: &Binding,
) -> FsmResult<()> {
    // SAFETY: per the contract.
    if unsafe { same_column_types(found, expected) } {
        return Ok(());
    }
    // SAFETY: per the contract; attrs has natts entries.
    let (found, expected) = unsafe { (descriptor_types(found), descriptor_types(expected)) };
    Err(FsmError::new(
        ErrorKind::DatatypeMismatch,
        format!(
            "the history of {} does not have the columns fsm reads: a history table was altered",
            b.table
        ),
    )
    .detail(format!(
        "Found column types {:?}, expected {:?} (type oids).",
        found.iter().map(|t| u32::from(*t)).collect::<Vec<_>>(),
        expected.iter().map(|t| u32::from(*t)).collect::<Vec<_>>()
    ))
    .hint("Restore the history table's column types, or detach and attach again."))
}

/// Whether `a` and `b` have the same number of columns of the same types,
/// compared in place (this runs once per call of every read function).
///
/// # Safety
/// Both are valid tuple descriptors.
unsafe fn same_column_types(a: pg_sys::TupleDesc, b: pg_sys::TupleDesc) -> bool {
    // SAFETY: per the contract; the wrappers do not free what they borrow.
    let (a, b) = unsafe {
        (
            pgrx::PgTupleDesc::from_pg_unchecked(a),
            pgrx::PgTupleDesc::from_pg_unchecked(b),
        )
    };
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.atttypid == y.atttypid)
}

/// # Safety
/// `desc` is a valid tuple descriptor.
unsafe fn descriptor_types(desc: pg_sys::TupleDesc) -> Vec<pg_sys::Oid> {
    // SAFETY: per the contract; the wrapper does not free what it borrows.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
    desc.iter().map(|a| a.atttypid).collect()
}
