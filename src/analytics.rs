//! The analytics functions: `fsm.time_in_state` and `fsm.state_stats`,
//! set-returning C functions over a binding's history.
//!
//! Both are exact over the window [since, until): the state an entity was
//! already in at `since` is carried in from its last history row before
//! the window and counts from `since`; a state still held at `until`
//! counts up to `until`. A stay is a run of history rows in one state: a
//! self-transition does not leave the state, so it neither ends a stay
//! nor counts as entering. Moments are the milliseconds inside the
//! UUIDv7 ids, and the window is read through their order (no timestamp
//! index), as the read functions do (see `read`), with the same rights:
//! SELECT on the table at the call, and under row level security only the
//! history of rows the caller can see.

use pgrx::pg_sys;
use pgrx::IntoDatum;

use crate::args::Args;
use crate::binding::{self, Binding, Statement};
use crate::cache;
use crate::error::{required, ErrorKind, FsmError, FsmResult};
use crate::read::{
    all_visible_keys, check_select, keys_to_read, materialize, row_security_applies, Query,
};

v1_function!(fsm_time_in_state, pg_finfo_fsm_time_in_state, time_in_state);
v1_function!(fsm_state_stats, pg_finfo_fsm_state_stats, state_stats);

/// The stays of the rows in `rows` (`part`, `id`, `to_state`, ordered by
/// id within each `part`): `part` when `keep_part`, `state`, `started`,
/// `ended` (NULL while held), `next` (the state it left for). Leaving out
/// a `part` nothing reads keeps the materialized stays, and every sort of
/// them, narrower.
fn stays_sql(rows: &str, part: &str, keep_part: bool) -> String {
    let part_column = if keep_part {
        format!("c.{part}, ")
    } else {
        String::new()
    };
    format!(
        "changed AS ( \
           SELECT r.{part}, r.id, r.to_state FROM ( \
             SELECT r.*, pg_catalog.lag(r.to_state) OVER (PARTITION BY r.{part} ORDER BY r.id) AS before \
               FROM ({rows}) r) r \
            WHERE r.before IS NULL OR r.before OPERATOR(pg_catalog.<>) r.to_state), \
         stays AS ( \
           SELECT {part_column}c.to_state AS state, fsm.uuid7_time(c.id) AS started, \
                  fsm.uuid7_time(pg_catalog.lead(c.id) OVER e) AS ended, \
                  pg_catalog.lead(c.to_state) OVER e AS next \
             FROM changed c WINDOW e AS (PARTITION BY c.{part} ORDER BY c.id))"
    )
}

/// 22023 when a window ends before it starts.
fn check_window(since: pg_sys::Datum, until: pg_sys::Datum) -> FsmResult<()> {
    // A timestamptz is an int64 passed by value.
    if (since.value() as i64) > (until.value() as i64) {
        return Err(FsmError::new(
            ErrorKind::InvalidParameter,
            "the window ends (until) before it starts (since)",
        ));
    }
    Ok(())
}

/// `fsm.time_in_state(tbl, keys, since, until, col)`: per key (in the
/// order given) and state, how long the entity was in it within the
/// window and how many times it entered it there.
unsafe fn time_in_state(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let keys = required(args.datum(1), "keys")?;
    let keys_type = args.type_of(1)?;
    let since = required(args.datum(2), "since")?;
    let until = required(args.datum(3), "until")?;
    check_window(since, until)?;
    let bindings = cache::attached_bindings(relid)?;
    let b = binding::named_or_only(&bindings, args.name(4).as_deref())?;
    check_select(b)?;
    let rls = row_security_applies(relid);
    let prepare = |b: &Binding| -> FsmResult<Query> {
        let Some((converted, visible)) = keys_to_read(b, keys, keys_type, rls)? else {
            return Ok(None);
        };
        let plan = b.plans.get_custom(Statement::TimeInState { keys_type }, || {
            let rows = format!(
                "SELECT k.ord, c.id, c.to_state FROM k CROSS JOIN LATERAL ( \
                   SELECT h.id, h.to_state FROM {history} h \
                    WHERE h.entity_key {eq} k.key AND h.id OPERATOR(pg_catalog.<) fsm.uuid7($4) \
                    ORDER BY h.id DESC LIMIT 1) c \
                 UNION ALL \
                 SELECT k.ord, h.id, h.to_state FROM k JOIN {history} h ON h.entity_key {eq} k.key \
                  WHERE h.id OPERATOR(pg_catalog.>=) fsm.uuid7($4) \
                    AND h.id OPERATOR(pg_catalog.<) fsm.uuid7($5)",
                eq = b.key.equality_sql,
                history = b.history_table,
            );
            let sql = format!(
                "WITH k AS ( \
                   SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) \
                          WITH ORDINALITY AS k(key, orig, ord) \
                    WHERE $3 IS NULL OR k.ord OPERATOR(pg_catalog.=) ANY ($3)), \
                 {stays} \
                 SELECT k.orig, s.state, s.duration, s.entered FROM ( \
                   SELECT s.ord, s.state, \
                          pg_catalog.sum(pg_catalog.timestamptz_mi( \
                              LEAST(COALESCE(s.ended, $5), $5), GREATEST(s.started, $4))) AS duration, \
                          pg_catalog.count(*) FILTER (WHERE s.started OPERATOR(pg_catalog.>=) $4) AS entered \
                     FROM stays s GROUP BY s.ord, s.state) s \
                   JOIN k ON k.ord OPERATOR(pg_catalog.=) s.ord \
                  WHERE s.entered OPERATOR(pg_catalog.>) 0 \
                     OR s.duration OPERATOR(pg_catalog.>) '0'::pg_catalog.interval \
                  ORDER BY s.ord, s.state COLLATE pg_catalog.\"C\"",
                stays = stays_sql(&rows, "ord", true),
            );
            let types = vec![
                b.key.storage.array_type,
                keys_type,
                pg_sys::INT8ARRAYOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
            ];
            (sql, types)
        });
        Ok(Some((
            plan,
            vec![
                Some(converted),
                Some(keys),
                visible,
                Some(since),
                Some(until),
            ],
        )))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}

/// `fsm.state_stats(tbl, since, until, col)`: per state of the machine (and
/// any state only the history knows), in name order, over the window: how
/// many stays began in it, how many are held at its end, the median and
/// 95th percentile of the stays that ended in it (counted from `since` for
/// a stay carried in), and where those went next. `since` NULL: from the
/// first history row; `until` NULL: every row there is (a stay still held
/// is counted in `still_in`; only ended stays have a duration).
unsafe fn state_stats(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let relid = args.relation(0, "tbl")?;
    let since = args.datum(1);
    let until = args.datum(2);
    if let (Some(since), Some(until)) = (since, until) {
        check_window(since, until)?;
    }
    let bindings = cache::attached_bindings(relid)?;
    let b = binding::named_or_only(&bindings, args.name(3).as_deref())?;
    check_select(b)?;
    let rls = row_security_applies(relid);
    let prepare = |b: &Binding| -> FsmResult<Query> {
        let visible = if rls {
            match all_visible_keys(b) {
                Some(keys) => Some(keys),
                None => return Ok(None),
            }
        } else {
            None
        };
        let plan = b.plans.get_custom(Statement::StateStats { visible: rls }, || {
            let only_visible = if rls {
                format!(" AND h.entity_key {} ANY ($4)", b.key.equality_sql)
            } else {
                String::new()
            };
            let rows = format!(
                "SELECT * FROM ( \
                   SELECT DISTINCT ON (h.entity_key) h.entity_key, h.id, h.to_state FROM {history} h \
                    WHERE $1 IS NOT NULL AND h.id OPERATOR(pg_catalog.<) fsm.uuid7($1){only_visible} \
                    ORDER BY h.entity_key, h.id DESC) carried \
                 UNION ALL \
                 SELECT h.entity_key, h.id, h.to_state FROM {history} h \
                  WHERE ($1 IS NULL OR h.id OPERATOR(pg_catalog.>=) fsm.uuid7($1)) \
                    AND ($2 IS NULL OR h.id OPERATOR(pg_catalog.<) fsm.uuid7($2)){only_visible}",
                history = b.history_table,
            );
            let sql = format!(
                "WITH {stays}, \
                 per_state AS ( \
                   SELECT s.state, \
                          pg_catalog.count(*) FILTER (WHERE $1 IS NULL OR s.started OPERATOR(pg_catalog.>=) $1) AS entered, \
                          pg_catalog.count(*) FILTER (WHERE s.ended IS NULL) AS still_in, \
                          pg_catalog.percentile_cont(0.5::pg_catalog.float8) WITHIN GROUP ( \
                              ORDER BY pg_catalog.timestamptz_mi(s.ended, GREATEST(s.started, COALESCE($1, s.started)))) \
                              FILTER (WHERE s.ended IS NOT NULL) AS median_stay, \
                          pg_catalog.percentile_cont(0.95::pg_catalog.float8) WITHIN GROUP ( \
                              ORDER BY pg_catalog.timestamptz_mi(s.ended, GREATEST(s.started, COALESCE($1, s.started)))) \
                              FILTER (WHERE s.ended IS NOT NULL) AS p95_stay \
                     FROM stays s GROUP BY s.state), \
                 next AS ( \
                   SELECT n.state, pg_catalog.jsonb_object_agg(n.next, n.count ORDER BY n.next) AS next \
                     FROM (SELECT s.state, s.next, pg_catalog.count(*) AS count FROM stays s \
                            WHERE s.next IS NOT NULL GROUP BY s.state, s.next) n \
                    GROUP BY n.state), \
                 states AS ( \
                   SELECT m.state FROM pg_catalog.unnest($3) AS m(state) \
                   UNION ALL \
                   SELECT p.state FROM per_state p WHERE p.state OPERATOR(pg_catalog.<>) ALL ($3)) \
                 SELECT st.state, COALESCE(p.entered, 0), COALESCE(p.still_in, 0), p.median_stay, p.p95_stay, \
                        COALESCE(n.next, '{{}}'::pg_catalog.jsonb) \
                   FROM states st \
                   LEFT JOIN per_state p ON p.state OPERATOR(pg_catalog.=) st.state \
                   LEFT JOIN next n ON n.state OPERATOR(pg_catalog.=) st.state \
                  ORDER BY st.state COLLATE pg_catalog.\"C\"",
                stays = stays_sql(&rows, "entity_key", false),
            );
            let types = vec![
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TEXTARRAYOID,
                b.key.storage.array_type,
            ];
            (sql, types)
        });
        let states: Vec<&str> = b.machine.states.iter().map(|s| s.name.as_str()).collect();
        Ok(Some((
            plan,
            vec![since, until, states.into_datum(), visible],
        )))
    };
    // SAFETY: a valid fcinfo of a set-returning call.
    unsafe { materialize(fcinfo, b, prepare) }
}
