#!/usr/bin/env python3
"""The benchmark runner: BENCH.md's workloads W1-W9 and W1s, measured side by side.

Every variant of a workload runs on the same server and data, interleaved
(A B C, B C A, C A B, ...), for several rounds; the report quotes the median
of each variant and the median of the per-round ratios. Nothing here starts
servers: `benches/run.sh` does, and points psql and pgbench at them through
the PG* environment.

    runner.py measure --mode short|full --workloads w1,w2 --out part.json
    runner.py report part.json [more.json] --out results.md
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PGBENCH_DIR = os.path.join(HERE, "pgbench")
SQL_DIR = os.path.join(HERE, "sql")

MODES = {
    "short": dict(rounds=3, seconds=2, w1_sync=["off"], clients=[1, 2], w2_rows=20_000,
                  w3_rows=20_000, entities=100_000, ids=1_000_000, w7_transitions=60_000,
                  w1s_transitions=10_000, w1s_rounds=3, w8_timers=10_000, w9_entities=200_000,
                  w9_stats_calls=3, w9_keys_calls=20),
    "full": dict(rounds=5, seconds=8, w1_sync=["on", "off"], clients=[1, 2], w2_rows=100_000,
                 w3_rows=100_000, entities=1_000_000, ids=1_000_000, w7_transitions=1_000_000,
                 w1s_transitions=20_000, w1s_rounds=7, w8_timers=100_000, w9_entities=1_200_000,
                 w9_stats_calls=3, w9_keys_calls=20),
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def psql(*args, sql=None, env=None):
    """Runs psql with ON_ERROR_STOP; returns stdout."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", *args]
    if sql is not None:
        cmd += ["-c", sql]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"psql {' '.join(args)} {sql or ''}: {done.stderr.strip()}")
    return done.stdout


def timed_ms(sql, before=()):
    """Server round trip of one statement, from psql's \\timing; the
    statements `before` run untimed first, in the same session."""
    warm = [a for b in before for a in ("-c", b)]
    out = psql(*warm, "-c", "\\timing on", sql=sql)
    found = re.findall(r"Time: ([\d.]+) ms", out)
    if not found:
        raise RuntimeError(f"no timing for {sql}: {out}")
    return float(found[-1])


def timed_calls_ms(sql, calls, before=()):
    """Server round trips of `calls` runs of one statement in one session,
    from psql's \\timing, in order; the statements `before` run untimed
    first, in the same session."""
    warm = [a for b in before for a in ("-c", b)]
    out = psql(*warm, "-c", "\\timing on", *[a for _ in range(calls) for a in ("-c", sql)])
    found = [float(x) for x in re.findall(r"Time: ([\d.]+) ms", out)]
    if len(found) != calls:
        raise RuntimeError(f"{len(found)} timings for {calls} runs of {sql[:200]}: {out[-2000:]}")
    return found


def pgbench_tps(script, clients=1, seconds=2, defines=None, pgoptions=None):
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
           "-T", str(seconds), "-f", os.path.join(PGBENCH_DIR, script)]
    for k, v in (defines or {}).items():
        cmd += ["-D", f"{k}={v}"]
    env = dict(os.environ)
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or not found or (failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"pgbench {script}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(found.group(1))


def interleaved(variants, rounds, measure, before_round=None):
    """{variant: [value per round]}, each round in a rotated order."""
    values = {v: [] for v in variants}
    for r in range(rounds):
        if before_round:
            before_round(r)
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            values[v].append(measure(v))
    return values


def settings():
    names = ["server_version", "synchronous_commit", "fsync", "shared_buffers", "max_wal_size",
             "jit", "wal_level"]
    shown = {n: psql(sql=f"SHOW {n}").strip() for n in names}
    shown["version"] = psql(sql="SELECT version()").strip()
    return shown


# Each workload returns a dict: title, unit, higher_is_better, values
# {variant: [...]}, baseline, optional notes [text] and columns {name:
# {variant: [...]}} (more medians shown beside the figure), and targets
# [(variant, against, limit, text)] where ratio = cost(variant) /
# cost(against) must be <= limit.

def w1(m):
    scripts = {"floor": "w1_floor.pgbench", "plpgsql": "w1_plpgsql.pgbench",
               "fsm UPDATE": "w1_fsm_update.pgbench", "fsm.fire": "w1_fsm_fire.pgbench"}
    tables = []
    for sync in m["w1_sync"]:
        for clients in m["clients"]:
            log(f"W1 synchronous_commit={sync} clients={clients}")
            values = interleaved(list(scripts), m["rounds"], lambda v: pgbench_tps(
                scripts[v], clients, m["seconds"], pgoptions=f"-c synchronous_commit={sync}"))
            tables.append(dict(
                id="W1", title=f"W1 lifecycle (insert + 3 transitions per transaction), "
                               f"synchronous_commit={sync}, {clients} client(s)",
                unit="tx/s", higher_is_better=True, values=values, baseline="floor",
                targets=[("fsm UPDATE", "floor", 1.0, "≤ 1.0× floor"),
                         ("fsm.fire", "floor", 1.1, "≤ 1.1× floor"),
                         ("fsm UPDATE", "plpgsql", 1 / 1.5, "≥ 1.5× plpgsql throughput"),
                         ("fsm.fire", "plpgsql", 1 / 1.5, "≥ 1.5× plpgsql throughput")]))
    return tables


# W1s: the server's own cost of one single-row transition. Each variant is a
# PL/pgSQL function looping over one-row statements inside one transaction
# (one call, one round trip), timed against the same loop of plain UPDATEs
# on a table with its triggers disabled; the figure is the difference per
# transition. The baseline is the same for every variant (a plain UPDATE
# of status, nothing else): for plpgsql and fsm UPDATE that is exactly their
# loop with the triggers disabled, and fsm.fire, which has no trigger-less
# form, is held against what its UPDATE does to the row. Each variant gets
# its own baseline table, of its own kind (the plpgsql and fsm tables with
# `ALTER TABLE ... DISABLE TRIGGER USER`, the floor's a table without
# triggers), so the subtraction leaves exactly what the checks and the
# history row add.
#
# Every loop runs on tables made afresh each round, each of its rows moved
# once (created -> paid, event pay): no row is updated twice in the
# transaction, so no HOT chain or dead versions of one row grow under the
# loop. Each timed call runs in a fresh session that first loads fsm (so the
# executor hook it installs is there for every variant, baselines included)
# and warms up on rows outside the timed range (PL/pgSQL compilation, plan
# caches, fsm's binding cache), so one-off costs stay out of the figure.

W1S_WARM = 200

# (loop table, loop body, baseline table) per variant; `i` is the loop's
# integer, cast to the key type bigint everywhere (fsm.fire wants the exact
# key type).
W1S_VARIANTS = {
    "floor": ("w1s_floor", """
        WITH u AS (UPDATE bench.w1s_floor SET status = 'paid' WHERE id = i::bigint RETURNING id)
        INSERT INTO bench.w1s_floor_history (id, entity_key, event, from_state, to_state, actor)
        SELECT gen_random_uuid(), id, 'pay', 'created', 'paid', current_setting('fsm.actor', true) FROM u;""",
              "w1sb_bare"),
    "plpgsql": ("w1s_pl", "UPDATE bench.w1s_pl SET status = 'paid' WHERE id = i::bigint;", "w1sb_pl"),
    "fsm UPDATE": ("w1s_fsm", "UPDATE bench.w1s_fsm SET status = 'paid' WHERE id = i::bigint;", "w1sb_fsm"),
    "fsm.fire": ("w1s_fire", "PERFORM fsm.fire('bench.w1s_fire', i::bigint, 'pay');", "w1sb_fire"),
    # Informational, no target: the same call as an assignment, which
    # PL/pgSQL evaluates as a simple expression without running a SELECT
    # through the executor as PERFORM does; the difference between the two
    # is what the caller's statement costs, not fsm.
    "fsm.fire (s := …)": ("w1s_fire_into", "s := fsm.fire('bench.w1s_fire_into', i::bigint, 'pay');",
                          "w1sb_fire_into"),
}


def w1s_loop_sql(table, body):
    """A function bench.loop_<table>(first, last) running `body` for each i."""
    return f"""CREATE OR REPLACE FUNCTION bench.loop_{table}(first integer, last integer) RETURNS void
               LANGUAGE plpgsql AS $loop$
               DECLARE
                   s text;
               BEGIN
                   FOR i IN first .. last LOOP
                       {body}
                   END LOOP;
               END $loop$"""


def w1s(m):
    n, warm = m["w1s_transitions"], W1S_WARM
    loops = {}  # (variant, "loop" | "baseline") -> table whose function runs it
    for v, (table, body, base) in W1S_VARIANTS.items():
        psql(sql=w1s_loop_sql(table, body))
        psql(sql=w1s_loop_sql(base, f"UPDATE bench.{base} SET status = 'paid' WHERE id = i::bigint;"))
        loops[(v, "loop")], loops[(v, "baseline")] = table, base
    tables = sorted(set(loops.values()))

    def fresh_tables(r):
        log(f"W1s round {r + 1}: fresh tables")
        psql(sql="SELECT bench.drop_variants('w1s'), bench.drop_variants('w1sb')")
        psql(sql="SELECT bench.make_variants('w1s', ARRAY['floor', 'pl', 'fsm', 'fire', 'fire_into'])")
        psql(sql="SELECT bench.make_variants('w1sb', ARRAY['bare', 'pl', 'fsm', 'fire', 'fire_into'])")
        for t in tables:
            # Inserted with the triggers on, so every table starts alike
            # (the attached and plpgsql ones with their insert history).
            psql(sql=f"INSERT INTO bench.{t} (id, status) SELECT g, 'created' "
                     f"FROM generate_series(1, {n + warm}) g")
        # The floor writes its own history: the insert rows the others' triggers wrote.
        psql(sql=f"INSERT INTO bench.w1s_floor_history (id, entity_key, to_state) "
                 f"SELECT gen_random_uuid(), g, 'created' FROM generate_series(1, {n + warm}) g")
        for t in ("w1sb_pl", "w1sb_fsm", "w1sb_fire", "w1sb_fire_into"):
            psql(sql=f"ALTER TABLE bench.{t} DISABLE TRIGGER USER")
        # No autovacuum of these tables (and their history tables) while
        # the round's other loops run: each loop leaves one dead version of
        # every row, enough to start it on a small table.
        every = psql(sql="SELECT oid::regclass FROM pg_class WHERE relnamespace = 'bench'::regnamespace "
                         "AND relkind = 'r' AND relname ~ '^w1sb?_'").split()
        psql(sql="; ".join(f"ALTER TABLE {t} SET (autovacuum_enabled = false)" for t in every))
        psql(sql=f"VACUUM ANALYZE {', '.join(every)}")
        psql(sql="CHECKPOINT")

    def run(key):
        fn = f"bench.loop_{loops[key]}"
        ms = timed_ms(f"SELECT {fn}(1, {n})",
                      before=("SELECT fsm.uuid7()", f"SELECT {fn}({n + 1}, {n + warm})"))
        return ms * 1000 / n

    log("W1s")
    per = interleaved(list(loops), m["w1s_rounds"], run, fresh_tables)
    psql(sql="SELECT bench.drop_variants('w1s'), bench.drop_variants('w1sb')")
    values = {v: [x - y for x, y in zip(per[(v, "loop")], per[(v, "baseline")])] for v in W1S_VARIANTS}
    return [dict(
        id="W1s", title=f"W1s server cost of one single-row transition "
                        f"(PL/pgSQL loop of {n:,} one-row transitions in one transaction)",
        unit="µs added per transition", higher_is_better=False, values=values, baseline="plpgsql",
        columns={"loop, µs per transition": {v: per[(v, "loop")] for v in W1S_VARIANTS},
                 "baseline, µs per UPDATE": {v: per[(v, "baseline")] for v in W1S_VARIANTS}},
        notes=["Loop: the variant's statement for each of the table's rows, once each (created -> paid); "
               "floor: `WITH u AS (UPDATE … RETURNING id) INSERT INTO …_history SELECT gen_random_uuid(), …`; "
               "plpgsql and fsm UPDATE: `UPDATE t SET status = 'paid' WHERE id = i`; "
               "fsm.fire: `PERFORM fsm.fire(t, i, 'pay')`; fsm.fire (s := …): `s := fsm.fire(t, i, 'pay')` "
               "(informational: PL/pgSQL evaluates an assignment without the SELECT that PERFORM runs).",
               "Baseline, the same for every variant: the same loop of plain "
               "`UPDATE t SET status = 'paid' WHERE id = i` on a table of the variant's own kind with "
               "its triggers disabled (`DISABLE TRIGGER USER`; the floor's has none). For plpgsql and "
               "fsm UPDATE that is their own loop without triggers; fsm.fire has no trigger-less form, "
               "so it is held against the UPDATE it replaces.",
               "Added = loop − baseline, per round; fresh tables each round; each call in a session that "
               f"loaded fsm and warmed up on {warm} rows outside the timed range."],
        targets=[("fsm UPDATE", "plpgsql", 0.5, "adds ≤ 0.5× what plpgsql adds"),
                 ("fsm UPDATE", "floor", 1.0, "adds less than the floor"),
                 ("fsm.fire", "fsm UPDATE", 1.2, "≤ 1.2× fsm UPDATE")])]


def w2(m):
    rows = m["w2_rows"]
    log("W2 setup")
    for v in ("bare", "fsm"):
        psql(sql=f"TRUNCATE bench.w2_{v}")
    psql(sql=f"INSERT INTO bench.w2_bare (id, status) SELECT g, 'created' FROM generate_series(1, {rows}) g")
    psql(sql=f"INSERT INTO bench.w2_fsm (id, status) SELECT g, 'created' FROM generate_series(1, {rows}) g")
    psql(sql="VACUUM ANALYZE bench.w2_bare, bench.w2_fsm")
    log("W2")
    values = interleaved(["unattached", "attached"], m["rounds"], lambda v: pgbench_tps(
        "w2_bare.pgbench" if v == "unattached" else "w2_fsm.pgbench", 1, m["seconds"],
        defines={"rows": rows}, pgoptions="-c synchronous_commit=off"))
    return [dict(id="W2", title=f"W2 UPDATE of another column, one row of {rows:,} "
                                f"(synchronous_commit=off: the CPU cost alone)", unit="tx/s",
                 higher_is_better=True, values=values, baseline="unattached",
                 targets=[("attached", "unattached", 1.02, "≤ 1.02×")])]


W3_SQL = {
    "bare UPDATE": "UPDATE bench.w3_bare SET status = 'paid' WHERE status = 'created'",
    "floor": """WITH u AS (UPDATE bench.w3_floor SET status = 'paid' WHERE status = 'created' RETURNING id)
                INSERT INTO bench.w3_floor_history (id, entity_key, event, from_state, to_state, actor)
                SELECT gen_random_uuid(), id, 'pay', 'created', 'paid', current_setting('fsm.actor', true) FROM u""",
    "plpgsql": "UPDATE bench.w3_pl SET status = 'paid' WHERE status = 'created'",
    "fsm": "UPDATE bench.w3_fsm SET status = 'paid' WHERE status = 'created'",
    "floor (partitioned)": """WITH u AS (UPDATE bench.w3_floorpart SET status = 'paid' WHERE status = 'created' RETURNING id)
                INSERT INTO bench.w3_floorpart_history (id, entity_key, event, from_state, to_state, actor)
                SELECT gen_random_uuid(), id, 'pay', 'created', 'paid', current_setting('fsm.actor', true) FROM u""",
    "fsm (partitioned)": "UPDATE bench.w3_fsmpart SET status = 'paid' WHERE status = 'created'",
}


def w3(m):
    rows = m["w3_rows"]

    def fresh_tables(r):
        log(f"W3 round {r + 1}: fresh tables")
        psql(sql="SELECT bench.drop_variants('w3')")
        psql(sql="SELECT bench.make_variants('w3', ARRAY['bare', 'floor', 'pl', 'fsm'])")
        psql(sql="SELECT bench.make_partitioned_variants('w3', 4)")
        for t in ("bare", "floor", "pl", "fsm", "floorpart", "fsmpart"):
            psql(sql=f"INSERT INTO bench.w3_{t} (id, status) SELECT g, 'created' FROM generate_series(1, {rows}) g")
        psql(sql="VACUUM ANALYZE")
        psql(sql="CHECKPOINT")

    values = interleaved(list(W3_SQL), m["rounds"], lambda v: timed_ms(W3_SQL[v]), fresh_tables)
    return [dict(id="W3", title=f"W3 one UPDATE moving {rows:,} rows", unit="ms",
                 higher_is_better=False, values=values, baseline="floor",
                 targets=[("fsm", "floor", 1.0, "≤ 1.0× floor"),
                          ("fsm (partitioned)", "floor (partitioned)", 1.0,
                           "≤ 1.0× floor, both on a table of 4 hash partitions"),
                          ("fsm", "plpgsql", 0.5, "≥ 2× faster than plpgsql"),
                          ("fsm", "bare UPDATE", 2.5, "stretch: ≤ 2.5× bare UPDATE")])]


def w4_w5(m):
    n = m["entities"]
    log(f"W4/W5 setup: {n:,} entities")
    started = time.time()
    rows = psql("-v", f"entities={n}", "-f", os.path.join(SQL_DIR, "reads_data.sql")).split()[-1]
    log(f"  {rows} history rows per world in {time.time() - started:.0f} s")
    w4 = interleaved(["hand-written SQL", "fsm.current_states", "state column alone"], m["rounds"],
                     lambda v: pgbench_tps({"hand-written SQL": "w4_sql.pgbench",
                                            "fsm.current_states": "w4_fsm.pgbench",
                                            "state column alone": "w4_column.pgbench"}[v],
                                           1, m["seconds"]))
    tables = [dict(id="W4", title=f"W4 current state of 10,000 random keys out of {n:,} "
                                  f"({int(rows):,} history rows)",
                   unit="queries/s", higher_is_better=True, values=w4, baseline="hand-written SQL",
                   targets=[("fsm.current_states", "hand-written SQL", 1.0, "≤ 1.0× LATERAL"),
                            ("fsm.current_states", "state column alone", 2.0,
                             "stretch: ≤ 2× the column alone")])]
    for what, sql_script, fsm_script in (("whole history", "w5_sql_all.pgbench", "w5_fsm_all.pgbench"),
                                         ("one-hour window", "w5_sql_hour.pgbench", "w5_fsm_hour.pgbench")):
        log(f"W5 {what}")
        values = interleaved(["hand-written SQL", "fsm.history"], m["rounds"], lambda v: pgbench_tps(
            sql_script if v == "hand-written SQL" else fsm_script, 1, m["seconds"],
            defines={"entities": n}))
        tables.append(dict(id="W5", title=f"W5 one entity's history: {what}", unit="queries/s",
                           higher_is_better=True, values=values, baseline="hand-written SQL",
                           targets=[("fsm.history", "hand-written SQL", 1.1, "≤ 1.1×")]))
    return tables


def w6(m, pg18=False):
    n = m["ids"]
    variants = {"empty loop": "g", "gen_random_uuid()": "gen_random_uuid()", "fsm.uuid7()": "fsm.uuid7()"}
    if pg18:
        variants["uuidv7()"] = "uuidv7()"
    log(f"W6 {'on PostgreSQL 18' if pg18 else ''}")
    values = interleaved(list(variants), m["rounds"] + 2, lambda v: timed_ms(
        f"SELECT count({variants[v]}) FROM generate_series(1, {n}) g"))
    targets = [("fsm.uuid7()", "gen_random_uuid()", 0.2, "≥ 5× faster than gen_random_uuid()")]
    if pg18:
        targets.append(("fsm.uuid7()", "uuidv7()", 0.2, "≥ 5× faster than uuidv7()"))
    server = psql(sql="SHOW server_version").strip()
    return [dict(id="W6", title=f"W6 {n:,} ids (PostgreSQL {server})", unit="ms",
                 higher_is_better=False, values=values, baseline="gen_random_uuid()",
                 net_of="empty loop", targets=targets)]


def w7(m):
    n = m["w7_transitions"]
    log(f"W7: {n:,} transitions in one session")
    out = psql("-v", f"transitions={n}", "-f", os.path.join(SQL_DIR, "w7.sql")).split()[-1]
    before, after, rows = (int(x) for x in out.split("|"))
    return [dict(id="W7", title=f"W7 backend memory over {n:,} transitions in one session",
                 memory=dict(before_kb=before, after_kb=after, history_rows=rows), targets=[])]


# W8: timers. n entities entered `waiting` 2 to 3 hours ago (imported
# history), so their one-hour timeout is due; one `SELECT fsm.tick()` fires
# them all. The hand-written alternative keeps a timers table beside the
# table (written when an entity enters the state: a cost this workload does
# not count) and fires what is due in one statement. Fresh worlds each
# round (benches/sql/w8.sql); each call in a session that already loaded
# fsm and, for tick, its bindings (`fsm.tick(0)` fires nothing).

W8_SQL = {
    "hand-written UPDATE": """WITH due AS (DELETE FROM bench.w8_timers WHERE due <= now() RETURNING entity_key),
     moved AS (UPDATE bench.w8_floor t SET status = 'expired' FROM due
                WHERE t.id = due.entity_key AND t.status = 'waiting' RETURNING t.id)
INSERT INTO bench.w8_floor_history (id, entity_key, event, from_state, to_state, actor)
SELECT gen_random_uuid(), id, 'expire', 'waiting', 'expired', current_setting('fsm.actor', true) FROM moved""",
    "fsm.tick()": "SELECT fsm.tick()",
}
W8_WARM = {"hand-written UPDATE": "SELECT fsm.uuid7()", "fsm.tick()": "SELECT fsm.tick(0)"}
# What each variant must have done: every entity expired, one history row each.
W8_CHECK = {
    "hand-written UPDATE": "SELECT (SELECT count(*) FROM bench.w8_floor WHERE status = 'expired'), "
                           "(SELECT count(*) FROM bench.w8_floor_history WHERE event = 'expire'), "
                           "(SELECT count(*) FROM bench.w8_timers)",
    "fsm.tick()": "SELECT (SELECT count(*) FROM bench.w8_fsm WHERE status = 'expired'), "
                  "(SELECT count(*) FROM bench.w8_fsm_status_history WHERE event = 'expire'), "
                  "(SELECT count(*) FROM fsm.timers WHERE tbl = 'bench.w8_fsm'::regclass)",
}


def w8(m):
    n = m["w8_timers"]
    psql("-f", os.path.join(SQL_DIR, "w8.sql"))

    def fresh_tables(r):
        log(f"W8 round {r + 1}: fresh tables, {n:,} due timers")
        psql(sql=f"SELECT bench.fresh_w8({n})")
        psql(sql="VACUUM ANALYZE bench.w8_fsm, bench.w8_fsm_status_history, bench.w8_floor, "
                 "bench.w8_floor_history, bench.w8_timers")
        psql(sql="CHECKPOINT")
        pending = int(psql(sql="SELECT count(*) FROM fsm.timers WHERE tbl = 'bench.w8_fsm'::regclass "
                               "AND due <= now()"))
        if pending != n:
            raise RuntimeError(f"W8: {pending} due timers in bench.w8_fsm, not {n}")

    def run(v):
        ms = timed_ms(W8_SQL[v], before=(W8_WARM[v],))
        done = psql(sql=W8_CHECK[v]).strip()
        if done != f"{n}|{n}|0":
            raise RuntimeError(f"W8 {v}: expired rows | history rows | timers left = {done}, not {n}|{n}|0")
        return ms

    log("W8")
    values = interleaved(list(W8_SQL), m["rounds"], run, fresh_tables)
    psql(sql="SELECT bench.drop_variants('w8')")
    return [dict(
        id="W8", title=f"W8 timers: one call firing {n:,} due timeouts"
                       + (" (short mode: BENCH.md's figure is 100,000)" if n < 100_000 else ""),
        unit="ms", higher_is_better=False, values=values, baseline="hand-written UPDATE",
        columns={"µs per timer": {v: [x * 1000 / n for x in xs] for v, xs in values.items()}},
        notes=["fsm.tick(): `SELECT fsm.tick()` on a table attached to a machine whose state `waiting` has "
               "`{\"timeout\": {\"after\": \"1 hour\", \"event\": \"expire\"}}`; every row entered it 2 to 3 "
               "hours ago (history imported with uuid7 ids at those moments). The event has no guard or action, "
               "so tick fires the state's due timers in one batch: it reads them (state column + last "
               "state-changing history row) with their row versions, then one UPDATE locks the rows still at "
               "those versions (SKIP LOCKED) and moves them through the trigger, whose history rows go in one "
               "INSERT. (A timer whose event has a guard or an action fires one by one, in a subtransaction "
               "each, as `fsm.fire` would: not measured here.)",
               "Hand-written: the same table without fsm, plus a timers table (entity_key primary key, due, "
               "an index on due) kept by the application, and one statement: `WITH due AS (DELETE FROM timers "
               "WHERE due <= now() RETURNING entity_key), moved AS (UPDATE t SET status = 'expired' FROM due "
               "WHERE t.id = due.entity_key AND t.status = 'waiting' RETURNING t.id) INSERT INTO history "
               "SELECT gen_random_uuid(), id, 'expire', 'waiting', 'expired', … FROM moved`. Writing the "
               "timers table when entities enter the state is the hand-written design's cost and is not "
               "counted here; fsm stores no timer.",
               "Fresh tables each round; both checked after each call (every row expired, one history row "
               "each, no timer left)."],
        targets=[("fsm.tick()", "hand-written UPDATE", 1.2, "≤ 1.2× the hand-written UPDATE")])]


# W9: analytics over an imported history (benches/sql/w9_data.sql), a
# one-week window in the middle of three weeks. Each function is held
# against two hand-written queries on the same history table giving the
# same answer: one that reads what fsm reads (each entity's last row before
# the window, then the window's rows), and the plainer one that runs the
# window functions over every row before `until` and keeps the stays that
# reach into the window. Stays are runs of one state (a self-transition
# neither ends nor begins one); moments are the ids' milliseconds.

W9_SINCE, W9_UNTIL = "2026-03-09 00:00:00+00", "2026-03-16 00:00:00+00"
W9_STATES = ["active", "cancelled", "done", "new", "paused"]
W9_HISTORY = "bench.w9_fsm_status_history"


def w9_state_stats_sql(form):
    """state_stats by hand: `carried` reads each entity's last row before
    the window and the window's rows; `full` every row before until."""
    since, until, h = f"timestamptz '{W9_SINCE}'", f"timestamptz '{W9_UNTIL}'", W9_HISTORY
    if form == "carried":
        rows = f"""SELECT * FROM (
    SELECT DISTINCT ON (h.entity_key) h.entity_key, h.id, h.to_state FROM {h} h
     WHERE h.id < fsm.uuid7({since}) ORDER BY h.entity_key, h.id DESC) carried
  UNION ALL
  SELECT h.entity_key, h.id, h.to_state FROM {h} h
   WHERE h.id >= fsm.uuid7({since}) AND h.id < fsm.uuid7({until})"""
        seen = "SELECT * FROM stays"
    else:
        rows = f"SELECT h.entity_key, h.id, h.to_state FROM {h} h WHERE h.id < fsm.uuid7({until})"
        seen = f"SELECT * FROM stays WHERE ended IS NULL OR ended >= {since}"
    states = ", ".join(f"'{s}'" for s in W9_STATES)
    return f"""WITH runs AS (
  SELECT r.*, lag(r.to_state) OVER (PARTITION BY r.entity_key ORDER BY r.id) AS before FROM (
  {rows}) r),
stays AS (
  SELECT r.entity_key, r.to_state AS state, fsm.uuid7_time(r.id) AS started,
         fsm.uuid7_time(lead(r.id) OVER w) AS ended, lead(r.to_state) OVER w AS next
    FROM runs r WHERE r.before IS DISTINCT FROM r.to_state
  WINDOW w AS (PARTITION BY r.entity_key ORDER BY r.id)),
seen AS ({seen}),
per_state AS (
  SELECT state,
         count(*) FILTER (WHERE started >= {since}) AS entered,
         count(*) FILTER (WHERE ended IS NULL) AS still_in,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ended - GREATEST(started, {since}))
             FILTER (WHERE ended IS NOT NULL) AS median_stay,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY ended - GREATEST(started, {since}))
             FILTER (WHERE ended IS NOT NULL) AS p95_stay
    FROM seen GROUP BY state),
next AS (
  SELECT state, jsonb_object_agg(next, n ORDER BY next) AS next
    FROM (SELECT state, next, count(*) AS n FROM seen WHERE next IS NOT NULL GROUP BY state, next) n
   GROUP BY state)
SELECT m.state, COALESCE(p.entered, 0) AS entered, COALESCE(p.still_in, 0) AS still_in,
       p.median_stay, p.p95_stay, COALESCE(n.next, '{{}}') AS next
  FROM unnest(ARRAY[{states}]) AS m(state)
  LEFT JOIN per_state p USING (state) LEFT JOIN next n USING (state)
 ORDER BY m.state COLLATE "C\""""


def w9_time_in_state_sql(form, keys):
    """time_in_state by hand for the keys (an array literal), in their
    order: `carried` as w9_state_stats_sql's, by key; `full` every row of
    the keys before until."""
    since, until, h = f"timestamptz '{W9_SINCE}'", f"timestamptz '{W9_UNTIL}'", W9_HISTORY
    if form == "carried":
        rows = f"""SELECT k.ord, c.id, c.to_state FROM k CROSS JOIN LATERAL (
    SELECT h.id, h.to_state FROM {h} h WHERE h.entity_key = k.key AND h.id < fsm.uuid7({since})
     ORDER BY h.id DESC LIMIT 1) c
  UNION ALL
  SELECT k.ord, h.id, h.to_state FROM k JOIN {h} h ON h.entity_key = k.key
   WHERE h.id >= fsm.uuid7({since}) AND h.id < fsm.uuid7({until})"""
        part, join, seen = "ord", "k.ord = s.ord", ""
    else:
        rows = f"""SELECT h.entity_key, h.id, h.to_state FROM {h} h
   WHERE h.entity_key = ANY ({keys}) AND h.id < fsm.uuid7({until})"""
        part, join, seen = "entity_key", "k.key = s.entity_key", \
            f"\n WHERE s.ended IS NULL OR s.ended >= {since}"
    duration = f"sum(COALESCE(s.ended, {until}) - GREATEST(s.started, {since}))"
    entered = f"count(*) FILTER (WHERE s.started >= {since})"
    return f"""WITH k AS (SELECT k.key, k.ord FROM unnest({keys}) WITH ORDINALITY AS k(key, ord)),
runs AS (
  SELECT r.*, lag(r.to_state) OVER (PARTITION BY r.{part} ORDER BY r.id) AS before FROM (
  {rows}) r),
stays AS (
  SELECT r.{part}, r.to_state AS state, fsm.uuid7_time(r.id) AS started,
         fsm.uuid7_time(lead(r.id) OVER w) AS ended
    FROM runs r WHERE r.before IS DISTINCT FROM r.to_state
  WINDOW w AS (PARTITION BY r.{part} ORDER BY r.id))
SELECT k.key AS entity_key, s.state, {duration} AS duration, {entered} AS entered
  FROM stays s JOIN k ON {join}{seen}
 GROUP BY k.ord, k.key, s.state
HAVING {entered} > 0 OR {duration} > '0'
 ORDER BY k.ord, s.state COLLATE "C\""""


def w9_difference(fsm_sql, hand_sql):
    """Rows only fsm returns and rows only the hand-written query returns
    (multisets: EXCEPT ALL both ways), at most 5 of each, and their counts."""
    out = {}
    for name, a, b in (("only fsm", fsm_sql, hand_sql), ("only hand-written", hand_sql, fsm_sql)):
        diff = f"(({a}) EXCEPT ALL ({b}))"
        count = int(psql(sql=f"SELECT count(*) FROM {diff} d"))
        sample = psql(sql=f"SELECT d::text FROM {diff} d LIMIT 5").split("\n") if count else []
        out[name] = (count, [x for x in sample if x])
    return out


def w9(m):
    n = m["w9_entities"]
    log(f"W9 setup: {n:,} entities")
    started = time.time()
    rows = int(psql("-v", f"entities={n}", "-f", os.path.join(SQL_DIR, "w9_data.sql")).split()[-1])
    log(f"  {rows:,} history rows in {time.time() - started:.0f} s")
    keys = "'" + psql(sql="SELECT keys::text FROM bench.w9_keys").strip() + "'::bigint[]"
    nkeys = int(psql(sql="SELECT cardinality(keys) FROM bench.w9_keys"))
    window = f"timestamptz '{W9_SINCE}', timestamptz '{W9_UNTIL}'"
    functions = {
        "state_stats": (f"SELECT * FROM fsm.state_stats('bench.w9_fsm', {window})",
                        w9_state_stats_sql, m["w9_stats_calls"],
                        f"fsm.state_stats over {rows:,} history rows ({n:,} entities), one-week window"),
        "time_in_state": (f"SELECT * FROM fsm.time_in_state('bench.w9_fsm', {keys}, {window})",
                          lambda form: w9_time_in_state_sql(form, keys), m["w9_keys_calls"],
                          f"fsm.time_in_state of {nkeys:,} keys over {rows:,} history rows, one-week window"),
    }
    forms = {"hand-written (last row before + window)": "carried",
             "hand-written (every row before until)": "full"}
    # One untimed call each: fsm keeps its analytics plans with
    # CURSOR_OPT_CUSTOM_PLAN, so they are planned at each call for its
    # arguments, as the hand-written queries are; the first call also
    # prepares fsm's plan.
    warm = {"fsm": 1, "hand-written": 1}
    tables = []
    for name, (fsm_sql, hand, calls, title) in functions.items():
        sqls = {f"fsm.{name}": fsm_sql, **{label: hand(form) for label, form in forms.items()}}
        notes = []
        for label in forms:
            diff = w9_difference(fsm_sql, sqls[label])
            same = all(count == 0 for count, _ in diff.values())
            log(f"W9 {name}: fsm and {label}: {'same rows' if same else diff}")
            if same:
                notes.append(f"Checked once, untimed: fsm.{name} and {label} return the same rows "
                             f"(EXCEPT ALL both ways: none).")
            else:
                notes.append(f"**fsm.{name} and {label} DIFFER**: " + "; ".join(
                    f"{count} rows {side}" + (f", e.g. {', '.join(sample)}" if sample else "")
                    for side, (count, sample) in diff.items()))
        result_rows = int(psql(sql=f"SELECT count(*) FROM ({fsm_sql}) r"))
        first = {v: [] for v in sqls}

        def run(v):
            k = warm["fsm" if v.startswith("fsm.") else "hand-written"]
            # r::text reads every column: with a bare count(*) the planner
            # removes the hand-written query's LEFT JOINs to per_state and
            # next (unique on state, no column used) and computes nothing.
            times = timed_calls_ms(f"SELECT count(*) FROM ({sqls[v]}) r WHERE r::text IS NOT NULL",
                                   k + calls, before=("SELECT fsm.uuid7()",))
            first[v].append(times[0])
            return statistics.median(times[k:])

        log(f"W9 {name}")
        values = interleaved(list(sqls), m["rounds"], run)
        tables.append(dict(
            id="W9", where=name, title=f"W9 {title} ({result_rows:,} result rows)",
            unit="ms", higher_is_better=False, values=values, baseline=next(iter(forms)),
            columns={"first call in a session, ms": first},
            notes=notes + [
                f"Window [{W9_SINCE}, {W9_UNTIL}) inside history from 2026-03-02 to about 2026-03-29; "
                f"each statement wrapped in `SELECT count(*) FROM (…) r WHERE r::text IS NOT NULL`, "
                f"which reads every column (a bare count(*) lets the planner drop the hand-written "
                f"query's LEFT JOINs and compute nothing).",
                f"Figure: median of {calls} timed calls per round in one session, after "
                f"{warm['fsm']} untimed call for fsm and {warm['hand-written']} for the hand-written queries "
                f"(both planned at each call: fsm keeps its analytics plans with CURSOR_OPT_CUSTOM_PLAN). "
                f"`first call` is the session's first, with fsm's plan preparation.",
                "Hand-written (last row before + window): each entity's last row before since (DISTINCT ON, "
                "or LATERAL … ORDER BY id DESC LIMIT 1 per key) UNION ALL the window's rows, lag() to drop "
                "self-transitions, lead() for each stay's end and next state. Hand-written (every row before "
                "until): the same window functions over every row before until, keeping the stays that end "
                "at or after since or are still held."],
            targets=[(f"fsm.{name}", label, 1.0, f"≤ 1.0× {label}") for label in forms]))
    psql(sql="SELECT bench.drop_variants('w9')")
    return tables


WORKLOADS = {"w1": w1, "w1s": w1s, "w2": w2, "w3": w3, "w4": w4_w5, "w6": w6, "w7": w7, "w8": w8, "w9": w9}


def measure(args):
    m = MODES[args.mode]
    wanted = args.workloads.split(",")
    psql("-f", os.path.join(SQL_DIR, "setup.sql"))
    part = dict(mode=args.mode, settings=settings(), tables=[])
    for name in wanted:
        if name == "w6" and args.pg18:
            part["tables"] += w6(m, pg18=True)
        else:
            part["tables"] += WORKLOADS[name](m)
    with open(args.out, "w") as f:
        json.dump(part, f, indent=1)


# ---- report ---------------------------------------------------------------

def cost(table, v, r):
    """Per-round cost of variant v: time, or 1/throughput."""
    x = table["values"][v][r]
    if table.get("net_of"):
        x -= table["values"][table["net_of"]][r]
    return 1 / x if table["higher_is_better"] else x


def ratio(table, v, against):
    rounds = len(table["values"][v])
    return statistics.median(cost(table, v, r) / cost(table, against, r) for r in range(rounds))


def render_table(t):
    lines = [f"### {t['title']}", ""]
    if "memory" in t:
        mem = t["memory"]
        growth = (mem["after_kb"] - mem["before_kb"]) / 1024
        lines += ["| backend RssAnon before | after | growth | history rows | target |",
                  "|---|---|---|---|---|",
                  f"| {mem['before_kb'] / 1024:.1f} MB | {mem['after_kb'] / 1024:.1f} MB | "
                  f"{growth:+.1f} MB | {mem['history_rows']:,} | < 10 MB: "
                  f"{'met' if growth < 10 else 'MISSED'} |", ""]
        return lines
    base = t["baseline"]
    net = t.get("net_of")
    columns = t.get("columns", {})
    head = f"| variant | median {t['unit']} |"
    if net:
        head += f" net of {net} |"
    for name in columns:
        head += f" median {name} |"
    head += f" cost vs {base} |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for v, xs in t["values"].items():
        row = f"| {v} | {statistics.median(xs):,.1f} |"
        if net:
            row += " |" if v == net else \
                f" {statistics.median(x - y for x, y in zip(xs, t['values'][net])):,.1f} |"
        for col in columns.values():
            row += f" {statistics.median(col[v]):,.1f} |"
        row += " |" if v == net else f" {ratio(t, v, base):.2f}× |"
        lines.append(row)
    lines.append("")
    for _, what, shown, text, met in target_rows(t):
        lines.append(f"- {what}: {shown}; target {text}: **{'met' if met else 'MISSED'}**")
    rounds = len(next(iter(t["values"].values())))
    if t.get("notes"):
        lines += [""] + [f"Note: {n}" for n in t["notes"]]
    lines += ["", f"({rounds} interleaved rounds; cost ratios are medians of per-round ratios"
                  f"{'; ' + net + ' subtracted per round' if net else ''}.)", ""]
    return lines


def target_rows(t):
    """(workload, comparison, measured, target, met) for each target of a table."""
    rows = []
    if "memory" in t:
        mem = t["memory"]
        growth = (mem["after_kb"] - mem["before_kb"]) / 1024
        rows.append((t["id"], "backend memory growth", f"{growth:+.1f} MB", "< 10 MB", growth < 10))
        return rows
    for v, against, limit, text in t["targets"]:
        r = ratio(t, v, against)
        shown = f"{r:.2f}× the cost" if limit >= 1 or r >= 1 else f"{1 / r:.2f}× faster"
        rows.append((t["id"], f"{v} vs {against}", shown, text, r <= limit))
    return rows


def summary(parts):
    """One line per target, over every table: the README's table."""
    lines = ["## Summary", "", "| workload | comparison | measured | target | |", "|---|---|---|---|---|"]
    for p in parts:
        for t in p["tables"]:
            where = t["id"]
            if t["id"] == "W1":
                where += f" ({t['title'].split(', ', 1)[1]})"
            elif t["id"] == "W5":
                where += f" ({t['title'].split(': ', 1)[1]})"
            elif t["id"] == "W6":
                where += f" (PostgreSQL {p['settings']['server_version'].split()[0]})"
            elif t.get("where"):
                where += f" ({t['where']})"
            for _, what, shown, text, met in target_rows(t):
                lines.append(f"| {where} | {what} | {shown} | {text} | {'met' if met else '**missed**'} |")
    return lines + [""]


def report(args):
    parts = []
    for path in args.parts:
        with open(path) as f:
            parts.append(json.load(f))
    first = parts[0]
    lines = [f"# fsm benchmarks, {time.strftime('%Y-%m-%d')} ({first['mode']} mode)", ""]
    lines += ["Produced by `bash benches/run.sh" + (" --full" if first["mode"] == "full" else "")
              + "`. Ratios are measured side by side in one run (BENCH.md).", ""]
    if args.commit:
        lines += [f"Commit: `{args.commit}`. Machine: {args.machine}.", ""]
    lines += summary(parts)
    for p in parts:
        s = p["settings"]
        lines += [f"Server: {s['version']}", "",
                  "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in s.items() if k not in ("version",)]
        lines.append("")
        for t in p["tables"]:
            lines += render_table(t)
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--mode", choices=MODES, default="short")
    m.add_argument("--workloads", default="w1,w1s,w2,w3,w4,w6,w7,w8,w9",
                   help="comma-separated; w4 also runs W5 (same data)")
    m.add_argument("--pg18", action="store_true", help="W6 against PostgreSQL 18's uuidv7()")
    m.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("parts", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--commit", default="")
    r.add_argument("--machine", default="")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
