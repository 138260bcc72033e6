//! Timers: a state's `timeout` makes its event due `after` that long in
//! the state. `fsm.tick(lim)` fires what is due; the view `fsm.timers`
//! lists what is pending.
//!
//! Nothing is stored for a timer, so nothing is written on the hot path:
//! an entity's timer is derived from its current state (the column) and
//! the moment it entered it (its last history row that changed the state;
//! a self-transition does not restart the clock). Leaving the state
//! therefore cancels the timer, and replacing the machine changes it.
//!
//! `tick` fires each due timer once, even when several sessions tick at
//! once: it locks an entity's row with SKIP LOCKED (another ticker has
//! it), checks again under the lock, with a statement snapshot taken after
//! the lock, that the entity is still in that state and due, then fires
//! the event as `fire` would, each in its own subtransaction: a timer that
//! fails (a guard says no, an action raises) is reported with a WARNING
//! and stays due, and the others fire. A timer is the table's own act: it
//! runs as the table's owner in a security-restricted operation (roles,
//! guards, actions, triggers and policies are the owner's), as VACUUM runs
//! a table's code; `tick` reaches the tables whose state column the
//! ticker may UPDATE.
//!
//! Most timers need nothing of their row: a state whose timeout event
//! takes, from it, a branch with no guard and no action (and whose roles
//! and payload schema pass for the owner) makes the same move for every
//! entity. A `tick` without a limit fires those in one statement per
//! state, through the trigger as a plain UPDATE is (one history INSERT):
//! the due entities are read with their row versions (ctid), then only
//! rows still at those versions are locked (SKIP LOCKED) and moved, so an
//! entity that changed since, or that another ticker holds, is left for
//! the next tick. When that statement fails (a trigger or constraint of
//! the table refuses one row), it is rolled back and the state's timers
//! are fired one by one as above, each refusal its own WARNING.

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::IntoDatum;

use crate::args::Args;
use crate::binding::{Binding, Statement};
use crate::cache;
use crate::error::{clip, clip_to, ErrorKind, FsmError, FsmResult};
use crate::key::Key;
use crate::machine::StateId;
use crate::read::{all_visible_keys, materialize_each, row_security_applies, Query};
use crate::spi_plan::{connected, KeptPlan};
use crate::sql::{as_user, ident, Restrict};
use crate::transition::{requirement_refusal, Payload};

v1_function!(fsm_tick, pg_finfo_fsm_tick, tick);
v1_function!(
    fsm_pending_timers,
    pg_finfo_fsm_pending_timers,
    pending_timers
);

/// The timed states of a binding's machine as three parallel arrays for
/// SQL: state names, their `after` intervals (as written) and events.
fn timed_states(b: &Binding) -> [Vec<&str>; 3] {
    let machine = &b.machine;
    let mut arrays = [Vec::new(), Vec::new(), Vec::new()];
    for s in &machine.states {
        if let Some(t) = &s.timeout {
            arrays[0].push(s.name.as_str());
            arrays[1].push(t.after.as_str());
            arrays[2].push(machine.event(t.event).name.as_str());
        }
    }
    arrays
}

/// Which tables a caller sees timers of.
#[derive(Clone, Copy)]
enum Reach {
    /// `fsm.timers`: the tables it may read (their schema's USAGE and
    /// SELECT on the table or on some of its columns).
    Read,
    /// `tick`: the tables whose state column it may also UPDATE, as
    /// `fire` needs.
    Tick,
}

/// Every binding whose machine has a timed state, table by table, of the
/// tables the caller reaches: the others are none of its business.
fn timed_bindings(reach: Reach) -> FsmResult<Vec<Rc<Binding>>> {
    let plan = KeptPlan::prepare(
        &format!(
            "SELECT DISTINCT b.tbl::pg_catalog.oid FROM fsm.binding b \
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) b.tbl::pg_catalog.oid \
              WHERE pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE') \
                AND pg_catalog.has_any_column_privilege(c.oid, 'SELECT'){} \
              ORDER BY 1",
            match reach {
                Reach::Read => "",
                Reach::Tick => " AND pg_catalog.has_column_privilege(c.oid, b.col, 'UPDATE')",
            }
        ),
        &[],
    );
    let tables: Vec<pg_sys::Oid> = plan
        .read_latest(&[])
        .map(|row| row.oid(1))
        .collect::<FsmResult<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut timed = Vec::new();
    for table in tables {
        for b in cache::table_bindings(table)?.iter() {
            if !b.on_partition() && b.machine.states.iter().any(|s| s.timeout.is_some()) {
                timed.push(b.clone());
            }
        }
    }
    Ok(timed)
}

/// The kept query of a binding's timers: key, state, event and due moment
/// of every entity in a timed state. With `due_only`, those due at `$4`,
/// soonest first, at most `$5`; with `visible`, only the keys in `$6`.
/// Columns 1 and 2 of the view's result (`tbl`, `col`) come from `$7`, `$8`.
fn candidates(b: &Binding, due_only: bool, visible: bool) -> Rc<KeptPlan> {
    b.plans.get(Statement::Timers { due_only, visible }, || {
        let (key, col, eq) = (ident(&b.key_column), ident(&b.column), &b.key.equality_sql);
        let mut sql = format!(
            "SELECT {head} t.{key}{key_text}, t.{col}::pg_catalog.text, x.event, \
                    fsm.uuid7_time(h.id) OPERATOR(pg_catalog.+) x.after::pg_catalog.interval AS due \
               FROM {table} t \
               JOIN ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) \
                    AS x(state, after, event) ON t.{col}::pg_catalog.text OPERATOR(pg_catalog.=) x.state \
               CROSS JOIN LATERAL (SELECT h.id FROM {history} h \
                                    WHERE h.entity_key {eq} t.{key} \
                                      AND (h.from_state IS NULL OR h.from_state OPERATOR(pg_catalog.<>) h.to_state) \
                                    ORDER BY h.id DESC LIMIT 1) h \
              WHERE NOT EXISTS ({fired_since})",
            fired_since = fired_since_entry(b, &format!("t.{key}"), "x.event"),
            head = if due_only { "" } else { "$7::pg_catalog.regclass, $8::pg_catalog.name," },
            key_text = if due_only { "" } else { "::pg_catalog.text" },
            table = b.table_sql,
            history = b.history_table,
        );
        if visible {
            sql.push_str(&format!(" AND t.{key} {eq} ANY ($6)"));
        }
        if due_only {
            sql.push_str(
                " AND fsm.uuid7_time(h.id) OPERATOR(pg_catalog.+) x.after::pg_catalog.interval \
                      OPERATOR(pg_catalog.<=) $4 ORDER BY due LIMIT $5",
            );
        } else {
            sql.push_str(" ORDER BY due");
        }
        let types = vec![
            pg_sys::TEXTARRAYOID,
            pg_sys::TEXTARRAYOID,
            pg_sys::TEXTARRAYOID,
            pg_sys::TIMESTAMPTZOID,
            pg_sys::INT8OID,
            b.key.storage.array_type,
            pg_sys::REGCLASSOID,
            pg_sys::NAMEOID,
        ];
        (sql, types)
    })
}

/// A subquery finding a row of the timeout event `event` (SQL) that left
/// the entity `key` (SQL) in its state after `h`, its entry into it: a
/// timeout that is a self-transition fires once per entry, not at every
/// tick (a self-transition does not restart the clock).
fn fired_since_entry(b: &Binding, key: &str, event: &str) -> String {
    format!(
        "SELECT FROM {history} s WHERE s.entity_key {eq} {key} \
            AND s.id OPERATOR(pg_catalog.>) h.id AND s.event OPERATOR(pg_catalog.=) {event} \
            AND s.from_state OPERATOR(pg_catalog.=) s.to_state",
        history = b.history_table,
        eq = b.key.equality_sql,
    )
}

/// The arguments of [`candidates`].
fn candidate_args(
    b: &Binding,
    now: Option<pg_sys::Datum>,
    limit: Option<i64>,
    visible: Option<pg_sys::Datum>,
) -> Vec<Option<pg_sys::Datum>> {
    let [states, afters, events] = timed_states(b);
    vec![
        states.into_datum(),
        afters.into_datum(),
        events.into_datum(),
        now,
        limit.into_datum(),
        visible,
        Some(pg_sys::Datum::from(b.bound_relid)),
        b.column.as_str().into_datum().map(|text| {
            // SAFETY: a text datum converted to name by the catalog's own function.
            unsafe {
                pgrx::fcinfo::direct_function_call_as_datum(pg_sys::text_name, &[Some(text)])
                    .expect("text_name returns a name")
            }
        }),
    ]
}

/// `fsm.tick(lim)`: fires the due timeout events, soonest first, at most
/// `lim` of them (NULL: all); returns how many fired.
///
/// # Errors
/// 22023 a negative `lim`. A timer that cannot fire is a WARNING, not an
/// error.
unsafe fn tick(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let limit = args.int4(0).map(i64::from);
    if limit.is_some_and(|l| l < 0) {
        return Err(FsmError::new(
            ErrorKind::InvalidParameter,
            "lim must not be negative",
        ));
    }
    // SAFETY: reads the statement's start time of a live transaction.
    let now = pg_sys::Datum::from(unsafe { pg_sys::GetCurrentStatementStartTimestamp() });
    // Rows this transaction still holds are history the timers read.
    crate::pending::flush();
    let fired = connected(|| -> FsmResult<i64> {
        let mut fired = 0i64;
        for b in timed_bindings(Reach::Tick)? {
            let left = limit.map(|l| l - fired);
            if left == Some(0) {
                break;
            }
            // What a refusal may say is decided for the ticker, before the
            // table's code runs as its owner.
            let shown = Shown::for_caller(&b);
            // A timer is the table's own act: its triggers, guards, actions
            // and policies run as the table's owner, in a security-restricted
            // operation with search_path pinned to pg_catalog, pg_temp, as
            // VACUUM and REFRESH MATERIALIZED VIEW run a table's code, never
            // as whoever ticks (a superuser from pg_cron), nor with names
            // resolved through the ticker's search_path.
            // One table's timers failing as a whole (its owner revoked its
            // own grant, a policy raises) is a WARNING; the others fire.
            let attempt = crate::savepoint::attempt(|| {
                crate::sql::as_table_owner(b.history_owner, || tick_binding(&b, left, now, shown))
                    .unwrap_or_else(|e| e.raise())
            });
            match attempt {
                Ok(n) => fired += n,
                Err(CaughtError::PostgresError(e) | CaughtError::ErrorReport(e)) => {
                    pgrx::warning!(
                        "fsm: the timers of {} did not fire: reading them failed ({})",
                        b.table,
                        crate::boundary::sqlstate_of(&e)
                    );
                }
                Err(panic) => panic.rethrow(),
            }
        }
        Ok(fired)
    })?;
    Ok(pg_sys::Datum::from(
        i32::try_from(fired).unwrap_or(i32::MAX),
    ))
}

/// What a ticker's WARNINGs may show of a row: its key and the refusal's
/// text (which names key and state) only to a ticker that may SELECT them.
#[derive(Clone, Copy)]
struct Shown {
    keys: bool,
}

impl Shown {
    fn for_caller(b: &Binding) -> Shown {
        use crate::transition::may_select;
        Shown {
            keys: may_select(b, &b.key_column) && may_select(b, &b.column),
        }
    }
}

/// Fires the due timers of one binding, at most `limit` (none: all); how
/// many fired. Runs as the table's owner.
fn tick_binding(
    b: &Binding,
    limit: Option<i64>,
    now: pg_sys::Datum,
    shown: Shown,
) -> FsmResult<i64> {
    let mut fired = 0i64;
    // Without a limit, the states whose timers all make one move fire in
    // one statement each (see the module's comment).
    let mut batched = Vec::new();
    if limit.is_none() {
        for (state, target) in batch_moves(b) {
            if let Some(moved) = fire_batch(b, state, target, now)? {
                fired += moved;
                batched.push(b.machine.state(state).name.as_str());
            }
        }
    }
    // Every timed state went in a batch: what a batch left (changed since,
    // held by another ticker) is for the next tick.
    let timed = b
        .machine
        .states
        .iter()
        .filter(|s| s.timeout.is_some())
        .count();
    if batched.len() == timed {
        return Ok(fired);
    }
    let plan = candidates(b, true, false);
    let due: Vec<(Key, String, String)> = plan
        .read_latest(&candidate_args(b, Some(now), limit, None))
        .filter_map(|row| {
            let key = match row.typed(1, b.key.oid()) {
                // SAFETY: column 1 is checked to be of the key type.
                Ok(Some(key)) => unsafe { Key::of_key_type(key) },
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let state = row.text(2).map(Option::unwrap_or_default);
            let event = row.text(3).map(Option::unwrap_or_default);
            Some(state.and_then(|state| Ok((key, state, event?))))
        })
        .collect::<FsmResult<Vec<_>>>()?;
    for (key, state, event) in due {
        // Left by its batch: changed since, or held by another ticker.
        if batched.contains(&state.as_str()) {
            continue;
        }
        if fire_one(b, key, &state, &event, now, shown) {
            fired += 1;
        }
    }
    Ok(fired)
}

/// The timed states whose due timers can fire in one statement, with the
/// state each moves to: the first branch of the timeout event from the
/// state has no guard and no action, and its roles and payload schema
/// (no payload) pass for the caller, so it is taken for every entity; it
/// leaves the state (a self-transition changes no column, so no trigger
/// would record it); and every event declared between the two states is
/// this one, so the trigger takes the same branch. Not on a protected
/// column, which only `fire` may change.
fn batch_moves(b: &Binding) -> Vec<(StateId, StateId)> {
    let machine = &b.machine;
    if b.protect {
        return Vec::new();
    }
    (0..machine.states.len() as StateId)
        .filter_map(|state| {
            let timeout = machine.state(state).timeout.as_ref()?;
            let branch = *machine.branches_from(timeout.event, state).first()?;
            let runtime = b.runtime(branch);
            if runtime.guard.is_some() || runtime.action.is_some() {
                return None;
            }
            let &[target] = machine.targets(state, branch) else {
                return None;
            };
            let event = machine.branches(branch).start;
            let same_event = machine
                .events_between(state, target)
                .iter()
                .all(|&e| machine.branches(e).start == event);
            let passes = matches!(
                requirement_refusal(b, branch, None, Payload::Check, || pg_sys::Datum::from(0)),
                Ok(None)
            );
            (target != state && same_event && passes).then_some((state, target))
        })
        .collect()
}

/// Fires the due timers of `state` in one statement (see the module's
/// comment): how many moved, or `None` when the statement failed and was
/// rolled back, so its timers are to fire one by one.
fn fire_batch(
    b: &Binding,
    state: StateId,
    target: StateId,
    now: pg_sys::Datum,
) -> FsmResult<Option<i64>> {
    let machine = &b.machine;
    let (state_name, target_name) = (
        machine.state(state).name.as_str(),
        machine.state(target).name.as_str(),
    );
    let after = match &machine.state(state).timeout {
        Some(t) => t.after.as_str(),
        None => return Ok(Some(0)),
    };
    let (key, col, eq) = (ident(&b.key_column), ident(&b.column), &b.key.equality_sql);
    let due = b.plans.get(Statement::TimerBatchDue, || {
        (
            format!(
                "SELECT pg_catalog.array_agg(t.{key}), pg_catalog.array_agg(t.ctid) FROM {table} t \
                   CROSS JOIN LATERAL (SELECT h.id FROM {history} h \
                                        WHERE h.entity_key {eq} t.{key} \
                                          AND (h.from_state IS NULL OR h.from_state OPERATOR(pg_catalog.<>) h.to_state) \
                                        ORDER BY h.id DESC LIMIT 1) h \
                  WHERE t.{col}::pg_catalog.text OPERATOR(pg_catalog.=) $1 \
                    AND fsm.uuid7_time(h.id) OPERATOR(pg_catalog.+) $2::pg_catalog.interval \
                        OPERATOR(pg_catalog.<=) $3",
                table = b.table_sql,
                history = b.history_table,
            ),
            vec![pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TIMESTAMPTZOID],
        )
    });
    let found = as_user(b.history_owner, Restrict::Restricted, || -> FsmResult<_> {
        let args = [state_name.into_datum(), after.into_datum(), Some(now)];
        match due.read_latest(&args).next() {
            Some(row) => Ok((
                row.typed(1, b.key.storage.array_type)?,
                row.typed(2, pg_sys::TIDARRAYOID)?,
            )),
            None => Ok((None, None)),
        }
    })?;
    let (Some(keys), Some(versions)) = found else {
        return Ok(Some(0));
    };
    let moves = b.plans.get(Statement::TimerBatchMove, || {
        (
            format!(
                "WITH locked AS ( \
                   SELECT t.{key} AS key FROM {table} t \
                     JOIN ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(key, version) \
                       ON t.{key} {eq} d.key AND t.ctid OPERATOR(pg_catalog.=) d.version \
                    WHERE t.{col}::pg_catalog.text OPERATOR(pg_catalog.=) $3 \
                      FOR NO KEY UPDATE OF t SKIP LOCKED) \
                 UPDATE {table} t SET {col} = {assigned} FROM locked WHERE t.{key} {eq} locked.key",
                table = b.table_sql,
                assigned = b.state_column.assigned_sql("$4"),
            ),
            vec![
                b.key.storage.array_type,
                pg_sys::TIDARRAYOID,
                pg_sys::TEXTOID,
                pg_sys::TEXTOID,
            ],
        )
    });
    let args = [
        Some(keys),
        Some(versions),
        state_name.into_datum(),
        target_name.into_datum(),
    ];
    match crate::savepoint::attempt(|| moves.execute(&args, false)) {
        Ok(moved) => Ok(Some(moved as i64)),
        Err(CaughtError::PostgresError(_) | CaughtError::ErrorReport(_)) => Ok(None),
        Err(panic) => panic.rethrow(),
    }
}

/// Fires one due timer in a subtransaction; whether it fired. Another
/// ticker holding the row, or the entity having moved, is no failure; a
/// refusal or an error rolls back what the timer did and is a WARNING.
fn fire_one(
    b: &Binding,
    key: Key,
    state: &str,
    event: &str,
    now: pg_sys::Datum,
    shown: Shown,
) -> bool {
    let attempt = crate::savepoint::attempt(|| {
        fire_if_due(b, key, state, event, now).unwrap_or_else(|e| e.raise())
    });
    match attempt {
        Ok(fired) => fired,
        Err(CaughtError::PostgresError(e) | CaughtError::ErrorReport(e)) if shown.keys => {
            pgrx::warning!(
                "timer of {} key {}: event \"{}\" did not fire: {}",
                b.table,
                b.key_text(key.datum()),
                clip(event),
                clip_to(e.message(), 200)
            );
            false
        }
        Err(CaughtError::PostgresError(e) | CaughtError::ErrorReport(e)) => {
            pgrx::warning!(
                "timer of {}: event \"{}\" did not fire for a row whose key you may not read ({})",
                b.table,
                clip(event),
                crate::boundary::sqlstate_of(&e)
            );
            false
        }
        Err(panic) => panic.rethrow(),
    }
}

/// Under the row's lock, with a snapshot taken after it: fires `event` if
/// the entity is still in `state` and its timer is due at `now`.
fn fire_if_due(
    b: &Binding,
    key: Key,
    state: &str,
    event: &str,
    now: pg_sys::Datum,
) -> FsmResult<bool> {
    let lock = b.plans.get(Statement::TimerLock, || {
        (
            format!(
                "SELECT t.{col}::pg_catalog.text FROM {table} t WHERE t.{key} {eq} $1 \
                  FOR NO KEY UPDATE SKIP LOCKED",
                col = ident(&b.column),
                table = b.table_sql,
                key = ident(&b.key_column),
                eq = b.key.equality_sql,
            ),
            vec![b.key.oid()],
        )
    });
    let Some(row) = lock.first_row(&[Some(key.datum())]) else {
        return Ok(false);
    };
    if row.text(1)?.as_deref() != Some(state) {
        return Ok(false);
    }
    let Some(after) = b
        .machine
        .state_id(state)
        .and_then(|s| b.machine.state(s).timeout.as_ref())
        .map(|t| t.after.as_str())
    else {
        return Ok(false);
    };
    let due = b.plans.get(Statement::TimerDue, || {
        (
            format!(
                "SELECT fsm.uuid7_time(h.id) OPERATOR(pg_catalog.+) $2::pg_catalog.interval \
                        OPERATOR(pg_catalog.<=) $3 AND NOT EXISTS ({}) \
                   FROM {} h WHERE h.entity_key {} $1 AND (h.from_state IS NULL OR h.from_state OPERATOR(pg_catalog.<>) h.to_state) \
                  ORDER BY h.id DESC LIMIT 1",
                fired_since_entry(b, "$1", "$4"),
                b.history_table,
                b.key.equality_sql
            ),
            vec![
                b.key.oid(),
                pg_sys::TEXTOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TEXTOID,
            ],
        )
    });
    let is_due = as_user(b.history_owner, Restrict::Restricted, || {
        due.read_latest(&[
            Some(key.datum()),
            after.into_datum(),
            Some(now),
            event.into_datum(),
        ])
        .next()
        .map(|row| row.bool(1))
        .transpose()
        .map(Option::flatten)
    })?;
    if is_due != Some(true) {
        return Ok(false);
    }
    crate::fire::fire_expecting(b, key, event, state)?;
    Ok(true)
}

/// The rows of the view `fsm.timers`: every pending timer of the tables
/// the caller may SELECT, soonest first per binding; of a table under row
/// level security, only for its owner (of the rows the owner can see).
unsafe fn pending_timers(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    let bindings = connected(|| timed_bindings(Reach::Read))?;
    let prepare = |b: &Binding| -> FsmResult<Query> {
        if crate::read::check_select(b).is_err() {
            return Ok(None);
        }
        let visible = if row_security_applies(b.bound_relid) {
            // Its policies are its owner's code: a view must not run them
            // as whoever reads it, unasked. Such a table's timers are
            // listed for its owner only.
            if !crate::sql::acts_as(b.history_owner) {
                return Ok(None);
            }
            match all_visible_keys(b) {
                Some(keys) => Some(keys),
                None => return Ok(None),
            }
        } else {
            None
        };
        let plan = candidates(b, false, visible.is_some());
        Ok(Some((plan, candidate_args(b, None, None, visible))))
    };
    // One table's owner (a policy that raises, a revoked grant) must not
    // break the view for everyone: its rows are left out, with a WARNING.
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize_each(fcinfo, &bindings, crate::read::Failing::Skip, prepare) }
}
