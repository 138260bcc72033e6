"""The step-by-step cases of tests/pgbouncer/run.sh, through pgbouncer in
transaction pooling mode (pool of 2 server connections) and, for comparison,
directly. Run by run.sh with DIRECT_DSN and BOUNCER_DSN set; raises (exit 1)
on the first mismatch and prints one line per check that held.

Which server backend a transaction lands on is forced, not left to chance:
`pin(pid)` opens two other clients and puts each in a transaction, so that
both backends of the pool are taken, then releases the one that is not
`pid`. The next transaction of any client must run on that freed backend.
"""

import json
import os
import threading
import time

import psycopg

DIRECT = os.environ["DIRECT_DSN"]
BOUNCER = os.environ["BOUNCER_DSN"]
SESSION = os.environ["SESSION_DSN"]  # the same database, pool_mode=session


def connect(dsn, **kw):
    # prepare_threshold=None: psycopg never makes named prepared statements
    # (pgbouncer 1.18 cannot carry them across backends; see case 8).
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(dsn, autocommit=True, **kw)


def check(what, got, want):
    if got != want:
        raise AssertionError(f"pgbouncer: FAILED {what}: got {got!r}, want {want!r}")
    print(f"pgbouncer: ok {what}: {got!r}")


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()


def backend(conn):
    return one(conn, "SELECT pg_backend_pid()")[0]


def last_row(key, tbl="orders_status_history"):
    """The newest history row of an entity, read directly."""
    with connect(DIRECT) as d:
        return one(d, f"SELECT event, to_state, actor, idempotency_key FROM {tbl}"
                      " WHERE entity_key = %s ORDER BY id DESC LIMIT 1", (key,))


def count(sql, params=None):
    with connect(DIRECT) as d:
        return one(d, sql, params)[0]


class Holders:
    """Two other clients, each inside a transaction: both server backends of
    the pool are taken. `.release_other(pid)` commits the one not on `pid`."""

    def __init__(self):
        self.conns = [connect(BOUNCER), connect(BOUNCER)]
        self.pids = []
        for c in self.conns:
            c.execute("BEGIN")
            self.pids.append(backend(c))
        if self.pids[0] == self.pids[1]:
            raise AssertionError(f"pgbouncer: two open transactions share backend {self.pids[0]}")

    def on(self, pid):
        return self.conns[self.pids.index(pid)]

    def other_than(self, pid):
        return self.conns[1 - self.pids.index(pid)]

    def close(self):
        for c in self.conns:
            if c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                c.execute("COMMIT")
            c.close()


def pin(pid):
    """Keeps backend `pid` taken by another client and frees the other one:
    returns the Holders (close them afterwards) and the freed backend's pid."""
    h = Holders()
    free = h.other_than(pid)
    free_pid = h.pids[1 - h.pids.index(pid)]
    free.execute("COMMIT")
    return h, free_pid


# 1. SET LOCAL fsm.actor through pgbouncer: recorded on exactly its
#    transaction's row; the client's next transaction, forced onto the other
#    backend, records no actor; nothing is left on the first backend.
def set_local_actor():
    with connect(BOUNCER) as a:
        a.execute("BEGIN")
        a.execute("SET LOCAL fsm.actor = 'alice'")
        pid1 = backend(a)
        a.execute("SELECT fsm.fire('orders', 3, 'pay')")
        a.execute("COMMIT")
        h, pid2 = pin(pid1)
        try:
            a.execute("BEGIN")
            check("next transaction of the same client runs on the other backend",
                  backend(a) == pid2 and pid1 != pid2, True)
            a.execute("SELECT fsm.fire('orders', 3, 'ship')")
            a.execute("COMMIT")
            check("backend that ran SET LOCAL keeps no fsm.actor after COMMIT",
                  one(h.on(pid1), "SELECT coalesce(current_setting('fsm.actor', true), '')")[0], "")
        finally:
            h.close()
    with connect(DIRECT) as d:
        rows = d.execute("SELECT event, actor FROM orders_status_history"
                         " WHERE entity_key = 3 AND event IS NOT NULL ORDER BY id").fetchall()
    check("SET LOCAL fsm.actor = 'alice': actor of pay, then of the next transaction's ship",
          rows, [("pay", "alice"), ("ship", None)])
    # The function form, as ORMs send it with a bound parameter.
    with connect(BOUNCER) as a:
        a.execute("BEGIN")
        a.execute("SELECT set_config('fsm.actor', %s, true)", ("bob",))
        a.execute("SELECT fsm.fire('orders', 4, 'pay')")
        a.execute("COMMIT")
    check("set_config('fsm.actor', 'bob', true): actor of that row", last_row(4)[2], "bob")


# 2. Session-level SET fsm.actor: directly it is recorded on every later
#    transaction of the connection; through pgbouncer it stays on the
#    backend that ran it, so the client's own later transaction on the other
#    backend records no actor, and another client that lands on that backend
#    records the first client's actor.
def session_set_caveat():
    with connect(DIRECT) as d:
        d.execute("SET fsm.actor = 'carol'")
        d.execute("SELECT fsm.fire('orders', 5, 'pay')")
        d.execute("SELECT fsm.fire('orders', 5, 'ship')")
    with connect(DIRECT) as d:
        rows = d.execute("SELECT actor FROM orders_status_history"
                         " WHERE entity_key = 5 AND event IS NOT NULL ORDER BY id").fetchall()
    check("direct connection: session SET fsm.actor = 'carol' on both later fires",
          rows, [("carol",), ("carol",)])

    with connect(BOUNCER) as a:
        a.execute("SET fsm.actor = 'carol'")
        h = Holders()
        try:
            seen = [one(c, "SELECT coalesce(current_setting('fsm.actor', true), '')")[0]
                    for c in h.conns]
            check("after SET through pgbouncer, the two backends hold fsm.actor",
                  sorted(seen), ["", "carol"])
            carol_pid = h.pids[seen.index("carol")]
            clean = h.other_than(carol_pid)
            clean.execute("COMMIT")
            # a's next transaction: the only free backend is the clean one.
            a.execute("SELECT fsm.fire('orders', 6, 'pay')")
            check("the client's own next fire (other backend): actor", last_row(6)[2], None)
            # Another client that never set anything, on carol's backend.
            other = h.on(carol_pid)
            other.execute("SELECT fsm.fire('orders', 7, 'pay')")
            other.execute("COMMIT")
            check("another client's fire on the backend that ran SET: actor", last_row(7)[2], "carol")
        finally:
            h.close()
        # The setting outlives both clients: a backend is never reset in
        # transaction pooling (server_reset_query is for session pooling).
        h = Holders()
        try:
            seen = sorted(one(c, "SELECT coalesce(current_setting('fsm.actor', true), '')")[0]
                          for c in h.conns)
            check("later clients still find the SET on one backend", seen, ["", "carol"])
            # SET LOCAL wins over it, on either backend.
            for i, c in enumerate(h.conns):
                c.execute("SET LOCAL fsm.actor = 'dave'")
                c.execute("SELECT fsm.fire('orders', %s, 'pay')", (8 + i,))
                c.execute("COMMIT")
            check("SET LOCAL over a leaked session SET, on both backends",
                  [last_row(8)[2], last_row(9)[2]], ["dave", "dave"])
        finally:
            h.close()


# 3. Idempotency keys: the same fire retried from clients on different
#    backends moves once; a duplicate that arrives while the first is still
#    open waits for it and moves nothing.
FIRE_KEYED = "SELECT fsm.fire('orders', %s, 'pay', idempotency_key => %s)"


def idempotency():
    h = Holders()
    try:
        got = []
        for c in h.conns:  # both inside their transactions, on distinct backends
            got.append(one(c, FIRE_KEYED, (10, "checkout-10"))[0])
            c.execute("COMMIT")
    finally:
        h.close()
    with connect(BOUNCER) as c:
        got.append(one(c, FIRE_KEYED, (10, "checkout-10"))[0])
        c.execute("SELECT fsm.fire('orders', 10, 'ship')")
        got.append(one(c, FIRE_KEYED, (10, "checkout-10"))[0])
        try:
            c.execute(FIRE_KEYED, (11, "checkout-10"))
            state = "no error"
        except psycopg.Error as e:
            state = e.diag.sqlstate
    check("key retried on backend 1, backend 2, again, again after ship: returns", got,
          ["paid"] * 4)
    check("the same key on another entity", state, "22023")
    check("pay rows of entity 10, its state",
          (count("SELECT count(*) FROM orders_status_history WHERE entity_key = 10 AND event = 'pay'"),
           count("SELECT status FROM orders WHERE id = 10")), (1, "shipped"))

    # Concurrent duplicates: the second waits on the first's lock.
    h = Holders()
    try:
        first, second = h.conns
        check("first of two concurrent duplicates", one(first, FIRE_KEYED, (12, "checkout-12"))[0], "paid")
        result = {}

        def run_second():
            try:
                result["state"] = one(second, FIRE_KEYED, (12, "checkout-12"))[0]
            except Exception as e:  # reported below
                result["error"] = e

        t = threading.Thread(target=run_second)
        t.start()
        waited = False
        for _ in range(100):
            if count("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                     (h.pids[1],)):
                waited = True
                break
            time.sleep(0.05)
        check("second duplicate waits on a lock while the first is open", waited, True)
        first.execute("COMMIT")
        t.join(10)
        second.execute("COMMIT")
        check("second duplicate returns", result.get("state", result.get("error")), "paid")
    finally:
        h.close()
    check("pay rows of entity 12 with the key",
          count("SELECT count(*) FROM orders_status_history WHERE entity_key = 12 AND event = 'pay'"
                " AND idempotency_key = 'checkout-12'"), 1)


# 4. Refusals: the same SQLSTATE, message, DETAIL, HINT and error fields
#    through pgbouncer as directly.
FIELDS = ("sqlstate", "message_primary", "message_detail", "message_hint",
          "schema_name", "table_name", "column_name", "constraint_name")


def refusal(dsn, sql, setup=None):
    with connect(dsn) as c:
        try:
            c.execute("BEGIN")
            if setup:
                c.execute(setup)
            c.execute(sql)
        except psycopg.Error as e:
            c.execute("ROLLBACK")
            return tuple(getattr(e.diag, f) for f in FIELDS)
        c.execute("ROLLBACK")
        return None


def refusals():
    with connect(DIRECT) as d:
        d.execute("SELECT fsm.fire('orders', 20, 'pay')")
    cases = [
        ("undeclared transition (pay from paid)", "SELECT fsm.fire('orders', 20, 'pay')", None,
         "postgres", ("55000", "public", "orders", "status", "pb_order:pay")),
        ("role missing (clerk fires cancel, support only)", "SELECT fsm.fire('orders', 21, 'cancel')", None,
         "clerk", ("42501", "public", "orders", "status", "pb_order:cancel")),
        ("ambiguous plain UPDATE without fsm.event", "UPDATE orders SET status = 'shipped' WHERE id = 20",
         None, "postgres", ("55000", "public", "orders", "status", "pb_order")),
    ]
    for what, sql, setup, user, want in cases:
        direct = refusal(f"{DIRECT} user={user}", sql, setup)
        bounced = refusal(f"{BOUNCER} user={user}", sql, setup)
        if direct is None:
            raise AssertionError(f"pgbouncer: FAILED {what}: not refused directly")
        check(f"{what}: fields through pgbouncer equal direct", bounced, direct)
        check(f"{what}: sqlstate, schema, table, column, constraint",
              (direct[0],) + direct[4:], want)
    check("nothing moved by the refusals (entity 20, 21)",
          count("SELECT string_agg(status, ',' ORDER BY id) FROM orders WHERE id IN (20, 21)"), "paid,created")


# 5. SET LOCAL fsm.event names the event of an ambiguous plain UPDATE; it
#    ends with its transaction, so the next one on the same backend must name
#    it again.
def set_local_event():
    with connect(DIRECT) as d:
        d.execute("UPDATE orders SET status = 'paid' WHERE id IN (30, 31, 32)")
    with connect(BOUNCER) as c:
        c.execute("BEGIN")
        c.execute("SET LOCAL fsm.event = 'ship_express'")
        pid = backend(c)
        c.execute("UPDATE orders SET status = 'shipped' WHERE id = 30")
        c.execute("COMMIT")
        c.execute("BEGIN")
        c.execute("SELECT set_config('fsm.event', %s, true)", ("ship",))
        c.execute("UPDATE orders SET status = 'shipped' WHERE id = 31")
        c.execute("COMMIT")
    check("SET LOCAL fsm.event = 'ship_express', set_config('fsm.event', 'ship', true): events",
          [last_row(30)[0], last_row(31)[0]], ["ship_express", "ship"])
    h = Holders()
    try:
        c = h.on(pid)
        try:
            c.execute("UPDATE orders SET status = 'shipped' WHERE id = 32")
            state = "no error"
        except psycopg.Error as e:
            state = e.diag.sqlstate
        check("the next transaction on the backend that ran SET LOCAL fsm.event", state, "55000")
    finally:
        h.conns[h.pids.index(pid)].execute("ROLLBACK")
        h.close()


# 6. Named (server-side) prepared statements: a statement prepared by one
#    client exists only on the backend it was prepared on.
def prepared_statements():
    # run.sh reads it from pgbouncer's SHOW CONFIG: empty where the setting
    # does not exist (before 1.21), else its value (0 = off).
    limit = os.environ.get("PGB_MAX_PREPARED") or None
    limit = None if limit is None else int(limit)
    print(f"pgbouncer: (max_prepared_statements: {'not supported' if limit is None else limit})")
    sql = "SELECT fsm.can_fire('orders', %s, 'pay')"
    # psycopg's default prepare_threshold (5): from its 6th run on a
    # connection, a query is a named prepared statement ("_pg3_0"). A lone
    # client keeps its backend (pgbouncer hands out the last one released).
    with psycopg.connect(BOUNCER, autocommit=True) as a:
        check("psycopg's default prepare_threshold", a.prepare_threshold, 5)
        for _ in range(6):
            a.execute(sql, (40,))
        h = Holders()
        try:
            where = [one(c, "SELECT count(*) FROM pg_prepared_statements")[0] for c in h.conns]
            prepared_pid = h.pids[0] if where[0] else h.pids[1]
            check("the named statement exists on one backend only", sorted(where), [0, 1])
            h.other_than(prepared_pid).execute("COMMIT")
            try:
                a.execute(sql, (40,))  # Bind "_pg3_0" on the other backend
                state = "ok"
            except psycopg.Error as e:
                state = e.diag.sqlstate
        finally:
            h.close()
    want = "26000" if not limit else "ok"
    check("its next run, on the other backend (26000 = prepared statement does not exist)", state, want)


# 7. LISTEN: in transaction pooling a notification reaches the backend that
#    ran LISTEN while no client is linked to it, and pgbouncer drops it; the
#    client that listened gets nothing, even when its later statements run on
#    that very backend. A session-mode pool (or a direct connection)
#    delivers it.
def listen():
    received = {}
    with connect(DIRECT) as d, connect(BOUNCER) as b, connect(SESSION) as s:
        d.execute("LISTEN pb_events")
        s.execute("LISTEN pb_events")
        b.execute("BEGIN")
        b.execute("LISTEN pb_events")
        listen_pid = backend(b)
        b.execute("COMMIT")
        with connect(DIRECT) as w:
            w.execute("SELECT fsm.fire('parcels', 1, 'send')")
        for name, c in (("direct", d), ("session pool", s), ("transaction pool", b)):
            # Waits up to 3 s for the one that comes, 1 s for the one that does not.
            wait = 1 if c is b else 3
            got = [json.loads(n.payload) for n in c.notifies(timeout=wait, stop_after=1)]
            received[name] = [(n["table"], n["key"], n["event"], n["to"]) for n in got]
        late = []
        b.add_notify_handler(lambda n: late.append(n.payload))
        h = Holders()
        try:
            h.on(listen_pid).execute("COMMIT")  # the LISTEN backend is the free one
            same = [backend(b) == listen_pid for _ in range(3)]
        finally:
            h.close()
    check("notifications of fsm.fire('parcels', 1, 'send') received", received,
          {"direct": [("public.parcels", "1", "send", "sent")],
           "session pool": [("public.parcels", "1", "send", "sent")],
           "transaction pool": []})
    check("transaction pool: statements on the LISTEN backend afterwards, notifications then",
          (same, late), ([True] * 3, []))


set_local_actor()
idempotency()
refusals()
set_local_event()
prepared_statements()
listen()
# Last: it leaves fsm.actor set on one backend, which the concurrent runs
# that follow must not pick up.
session_set_caveat()
