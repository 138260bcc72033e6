#!/usr/bin/env python3
"""Property/fuzz test of fsm's SQL surface (API.md: "No input, from any role,
ends in XX000 or a crashed backend").

Generates --count hostile statements (deterministic for a --seed), runs them
through psql in batches (half of the batches after SET ROLE fuzz_user) and
FAILS (exit 1) on:
  - any error with SQLSTATE XX000 (internal_error: Rust panics, "could not
    open relation with OID", ...),
  - a lost connection / crashed backend (psql output), a FATAL or PANIC,
  - "terminated by signal" / "was terminated" / PANIC / FATAL in the server
    log (env FSM_PG_LOG, if set),
  - a statement that hangs past statement_timeout (the backend ignored the
    cancel).
Every other SQLSTATE is fine: hostile input must give clean errors.

Standard library only; drives psql (connection from PGHOST/PGPORT/PGUSER).
The database (--dbname) must exist; the fixture is created here (needs a
superuser). Exit codes: 0 ok, 1 failures found, 2 harness/fixture error.

  python3 tests/fuzz/fuzz.py --dbname fsm_fuzz [--seed 1] [--count 3000]
  python3 tests/fuzz/fuzz.py --list --count 50      # print statements only
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

# --------------------------------------------------------------------------
# Fixture
# --------------------------------------------------------------------------

STATES = ["created", "paid", "shipped", "cancelled", "delivered"]
EVENTS = ["pay", "ship", "deliver", "cancel", "review"]
PAY_SCHEMA = {"type": "object", "required": ["amount"],
              "properties": {"amount": {"type": "number", "minimum": 0}}}
ORDER_DEF = {
    "states": {
        "created": {"initial": True},
        "paid": {},
        "shipped": {},
        "cancelled": {"final": True},
        "delivered": {"final": True},
    },
    "events": {
        "pay": {"from": "created", "to": "paid", "payload": PAY_SCHEMA},
        "ship": {"from": "paid", "to": "shipped"},
        "deliver": {"from": "shipped", "to": "delivered"},
        "cancel": {"from": ["created", "paid"], "to": "cancelled"},
        "review": {"from": "paid", "to": ["paid", "shipped"]},
    },
}
# A second, small valid machine the fuzz may create and attach.
SMALL_DEF = {
    "states": {"a": {"initial": True}, "b": {}, "z": {"final": True}},
    "events": {"go": {"from": "a", "to": "b"}, "end": {"from": ["a", "b"], "to": "z"},
               "pay": {"from": "b", "to": "a"}},
}

# table -> (key column, key type, SQL expression of key number g)
TABLES = {
    "orders": ("id", "bigint", "{g}"),
    "tk": ("k", "text", "'k' || {g}"),
    "uk": ("k", "uuid", "md5('k' || {g})::uuid"),
    "nk": ("k", "numeric", "({g} + 0.5)"),
}
ROWS = 50


def q(s):
    """A SQL string literal for the Python string s (E'' when needed)."""
    if any(c == "\\" or ord(c) < 32 or ord(c) == 127 for c in s):
        out = []
        for c in s:
            if c == "\\":
                out.append("\\\\")
            elif c == "'":
                out.append("''")
            elif ord(c) < 32 or ord(c) == 127:
                out.append("\\x%02x" % ord(c))
            else:
                out.append(c)
        return "E'" + "".join(out) + "'"
    return "'" + s.replace("'", "''") + "'"


def jlit(obj):
    return q(json.dumps(obj, ensure_ascii=False, separators=(",", ":"))) + "::jsonb"


ORDER_DEF_SQL = jlit(ORDER_DEF)
STATE_LIST_SQL = ", ".join(q(s) for s in STATES)


def setup_sql():
    """Run once, as the superuser, with ON_ERROR_STOP=1."""
    lines = [
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'fuzz_user') "
        "THEN CREATE ROLE fuzz_user LOGIN; END IF; END$$;",
        "CREATE EXTENSION IF NOT EXISTS fsm;",
        "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, status text, note text);",
        "CREATE TABLE IF NOT EXISTS tk (k text PRIMARY KEY, status text);",
        "CREATE TABLE IF NOT EXISTS uk (k uuid PRIMARY KEY, status varchar(40));",
        "CREATE TABLE IF NOT EXISTS nk (k numeric PRIMARY KEY, status text);",
    ]
    return lines


def repair_sql():
    """Idempotent statements that bring the fixture back (superuser, errors
    ignored) at the start of every batch."""
    canon = ("tbl::text IN ('orders', 'tk', 'uk', 'nk') AND col = 'status' AND machine = 'order' "
             "AND NOT protect AND notify IS NULL")
    lines = [
        "SELECT fsm.create_machine('order', %s);" % ORDER_DEF_SQL,
        # Bindings the fuzz made (other machine, protect, notify, other
        # tables or columns) are undone, so the fixture's own come back.
        "DO $$DECLARE b record; BEGIN FOR b IN SELECT tbl, col FROM fsm.bindings WHERE NOT (%s) LOOP "
        "BEGIN PERFORM fsm.detach(b.tbl, b.col); EXCEPTION WHEN OTHERS THEN "
        "IF SQLSTATE = 'XX000' THEN RAISE; END IF; RAISE WARNING 'fuzz repair: detach %% %%: %% %%', "
        "b.tbl, b.col, SQLSTATE, SQLERRM; END; END LOOP; END$$;" % canon,
        # A detach that kept its history leaves that table behind, and its
        # name blocks the next attach (42P07): drop such orphans (not the
        # extension's own tables, not a binding's current history).
        "DO $$DECLARE r regclass; BEGIN FOR r IN SELECT c.oid::regclass FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND c.relname LIKE '%history%' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
        "AND c.oid NOT IN (SELECT history::oid FROM fsm.bindings) AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d "
        "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') LOOP "
        "BEGIN EXECUTE format('DROP TABLE %s CASCADE', r); EXCEPTION WHEN OTHERS THEN "
        "IF SQLSTATE = 'XX000' THEN RAISE; END IF; RAISE WARNING 'fuzz repair: drop %: % %', r, SQLSTATE, SQLERRM; "
        "END; END LOOP; END$$;",
        "SELECT fsm.create_machine('order', %s, true);" % ORDER_DEF_SQL,
    ]
    for t, (k, _typ, gexpr) in TABLES.items():
        lines += [
            # Only rows written while detached can hold a non-state.
            "UPDATE %s SET status = 'created' WHERE status IS NULL OR status NOT IN (%s);"
            % (t, STATE_LIST_SQL),
            "SELECT fsm.attach('%s', 'status', 'order');" % t,
            "INSERT INTO %s (%s) SELECT %s FROM generate_series(1, %d) g ON CONFLICT DO NOTHING;"
            % (t, k, gexpr.format(g="g"), ROWS),
        ]
    lines += [
        "INSERT INTO uk (k) VALUES ('00000000-0000-0000-0000-000000000000'), "
        "('ffffffff-ffff-ffff-ffff-ffffffffffff') ON CONFLICT DO NOTHING;",
        "INSERT INTO tk (k) VALUES (''), ('o''k'), (repeat('x', 2000)) ON CONFLICT DO NOTHING;",
        "INSERT INTO orders (id) VALUES (0), (-1), (9223372036854775807) ON CONFLICT DO NOTHING;",
        "GRANT USAGE ON SCHEMA public TO fuzz_user;",
        "GRANT SELECT, UPDATE, INSERT ON orders, tk TO fuzz_user;",
        "REVOKE ALL ON uk, nk FROM fuzz_user;",
        "DO $$BEGIN IF (%s) <> 4 THEN RAISE WARNING 'fuzz fixture incomplete'; END IF; END$$;" % VERIFY_SQL,
    ]
    return lines


VERIFY_SQL = ("SELECT count(*) FROM fsm.bindings WHERE tbl::text IN ('orders', 'tk', 'uk', 'nk') "
              "AND col = 'status' AND machine = 'order'")

# --------------------------------------------------------------------------
# Generators: every function returns SQL text on ONE line (psql's error
# line numbers map errors back to statements).
# --------------------------------------------------------------------------


class Gen:
    def __init__(self, rng):
        self.r = rng
        self.weights = [
            (self.st_fire, 30), (self.st_dml, 22), (self.st_read, 12), (self.st_machine, 10),
            (self.st_attach, 6), (self.st_uuid, 5), (self.st_setting, 4), (self.st_compound, 7),
            (self.st_extra, 4),
        ]
        self.funcs = [f for f, _ in self.weights]
        self.cum = [w for _, w in self.weights]

    # ---- helpers
    def c(self, *opts):
        return self.r.choice(opts)

    def p(self, prob):
        return self.r.random() < prob

    def uuid4(self):
        b = bytearray(self.r.getrandbits(8) for _ in range(16))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        h = b.hex()
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    # ---- scalar pools
    def hostile_text(self):
        return self.c(
            "NULL", "NULL::text", "''", "'x'", "repeat('x', 200)", "repeat('x', 201)",
            "repeat('x', 70000)", "repeat('é', 100)", "repeat('é', 101)", q("a'b"), q("a\\b"),
            q("\\"), q("'"), r"E'\x01'", r"E'a\x01b'", r"E'\x7f'", r"E'line\nbreak'", r"E'\x00'",
            q("ünï☃"), q("\u202e"), q('"; DROP TABLE orders; --'), q("%s %n"), "1", "1.5",
            "true", "'2024-01-01'::date", "ARRAY['a','b']", "ROW(1,2)")

    def state(self):
        if self.p(0.65):
            return q(self.c(*STATES))
        return self.c(self.hostile_text(), "'bogus'", "'Created'", "' created'", "'created '",
                      "'a'", "'z'", "repeat('x', 40)", "repeat('x', 41)", "'created'::varchar(3)",
                      "NULL::varchar", "'paid'::name", "'paid'::\"char\"")

    def event(self):
        if self.p(0.7):
            return q(self.c(*EVENTS))
        return self.c(self.hostile_text(), "'nosuch'", "'PAY'", "'pay '", "'go'", "'end'",
                      "'created'", "'pay'::varchar", "'pay'::name", "'pay'::bpchar")

    def machine(self):
        if self.p(0.5):
            return self.c("'order'", "'m1'", "'m2'", "'m3'")
        return self.c(self.hostile_text(), "'nosuch'", "'ORDER'", "'order '", "'o''rder'",
                      "repeat('m', 200)", "repeat('m', 201)", "'order'::name")

    def history_tbl(self):
        return self.c("(SELECT history FROM fsm.bindings ORDER BY 1 LIMIT 1)",
                      "(SELECT history FROM fsm.bindings ORDER BY 1 DESC LIMIT 1)",
                      "(SELECT history::oid::regclass FROM fsm.bindings WHERE tbl = 'orders'::regclass)")

    def tbl(self, name=None):
        """(sql, canonical table name or None)"""
        if name is None and self.p(0.78):
            name = self.c(*TABLES)
        if name is not None:
            form = self.r.randrange(6)
            sql = ["'%s'" % name, "'public.%s'" % name, "'\"%s\"'" % name,
                   "'%s'::regclass" % name, "'%s'::regclass::oid" % name,
                   "'%s'" % name][form]
            return sql, name
        sql = self.c(
            "NULL", "NULL::regclass", "0", "0::regclass", "(-1)::regclass", "4294967295::oid::regclass",
            "1259", "1259::regclass", "'pg_class'", "'pg_catalog.pg_proc'",
            "%d::oid::regclass" % self.r.randrange(1, 2 ** 32), "%d::regclass" % self.r.randrange(1, 70000),
            "'fsm.binding'", "'fsm.machine'", "'fsm.machines'", "'fsm.bindings'", "'orders_pkey'",
            "(SELECT reltoastrelid::regclass FROM pg_class WHERE relname = 'orders')",
            "'pg_stat_activity'", "'nosuch'", "'\"no such\"'", "'\"a;b\"'", "'x''y'",
            "'\"x\"\"y\"'", "'public.\"ORDERS\"'", "'\"ünï☃\"'", r"E'\"a\x01b\"'", "'a.b.c.d'",
            "repeat('a', 300)", "'\"' || repeat('a', 300) || '\"'", "''", "'.'", "'orders; DROP TABLE tk'",
            "1.5", "'2024-01-01'::date", "true", "ARRAY[1,2]", "'orders'::text", "'orders'::name",
            self.history_tbl(), self.history_tbl())
        return sql, None

    def col(self, good="status"):
        if self.p(0.6):
            return "'%s'" % good
        return self.c("NULL", "NULL::name", "''", "'nosuch'", "'Status'", "'\"status\"'", "'note'",
                      "'id'", "'k'", "'ctid'", "'xmin'", "'tableoid'", "repeat('c', 300)",
                      r"E'st\x01'", "'status'::text", "1", "'to_state'", "'from_state'", "'event'")

    def newkey(self, t):
        g = self.r.choice([self.r.randint(ROWS + 1, 10 ** 6), self.r.randint(ROWS + 1, ROWS + 40)])
        return TABLES[t][2].format(g=g)

    def key(self, t):
        """A key expression for table t (None: any table)."""
        if t is not None and self.p(0.7):
            if self.p(0.85):
                return TABLES[t][2].format(g=self.r.randint(1, ROWS))
            if t == "orders":
                return self.c("0", "-1", "9223372036854775807", "3::smallint", "3::int", "'7'",
                              "'7'::text", "7.0", "7::numeric", "'abc'::text", "1.5", "1.5::numeric",
                              "'1e30'::numeric", "'NaN'::numeric", "'infinity'::float8",
                              "-9223372036854775808", "99999999999999999999")
            if t == "tk":
                return self.c("6", "''", "'o''k'", "repeat('x', 2000)", "repeat('x', 70000)",
                              r"E'\x01'", "'k1'::varchar", "'k1'::name", "'k1'::char(5)", "'k1 '",
                              "'K1'", "7")
            if t == "uk":
                return self.c("'00000000-0000-0000-0000-000000000000'",
                              "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid", "'%s'" % self.uuid4(),
                              "'%s'::uuid" % self.uuid4(), "'not-a-uuid'", "'abc'::text", "1",
                              "fsm.uuid7()", "md5('k1')", "md5('k1')::uuid::text")
            if t == "nk":
                return self.c("1", "1.5", "1.50::numeric", "'NaN'::numeric", "1e400", "-0.0",
                              "'1.5'", "1.5::float8", "'infinity'::numeric", "1e-400", "2::bigint")
        return self.c("NULL", "NULL::bigint", "NULL::text", "NULL::uuid", "1", "6", "1.5",
                      "1.5::numeric", "'abc'::text", "'abc'", "'2024-01-01'::date", "ARRAY[1,2]",
                      "ROW(1,2)", "true", "'k1'", "md5('k1')::uuid", "'{}'::jsonb", "'x'::bytea",
                      "1.5::real", "'(1,2)'::point", "repeat('x', 70000)", "fsm.uuid7()")

    def keys(self, t):
        if t is not None and self.p(0.6):
            n = self.r.randint(0, 6)
            ks = [TABLES[t][2].format(g=self.r.randint(1, ROWS + 5)) for _ in range(n)]
            typ = TABLES[t][1]
            if self.p(0.2):
                ks.append("NULL")
            if self.p(0.1):
                ks += ks[:2]  # duplicates
            return "ARRAY[%s]::%s[]" % (", ".join(ks), typ)
        return self.c("NULL", "NULL::bigint[]", "ARRAY[]::bigint[]", "'{}'::int[]", "ARRAY[NULL]::bigint[]",
                      "ARRAY[1,2,3]", "ARRAY[[1,2],[3,4]]", "'{{1,2},{3,4}}'::bigint[]",
                      "(SELECT array_agg(g) FROM generate_series(1, 100000) g)",
                      "(SELECT array_agg(g::bigint) FROM generate_series(1, 100000) g)",
                      "ARRAY[1.5]", "ARRAY['k1','k2']", "ARRAY['k1']::text[]", "ARRAY['abc']::text[]",
                      "'{1,2}'", "1", "'1'", "ARRAY[ROW(1,2)]", "ARRAY[md5('k1')::uuid]",
                      "'[5:7]={1,2,3}'::bigint[]", "ARRAY[1.5, 'NaN']::numeric[]",
                      "(SELECT array_agg(id) FROM orders)", "(SELECT array_agg(k) FROM tk)",
                      "ARRAY[repeat('x', 70000)]", "ARRAY[true]")

    def deep(self, n=None, kind=None):
        n = n or self.c(100, 129, 300, 5000)
        kind = kind or self.c("a", "o")
        if kind == "a":
            return "(repeat('[', %d) || repeat(']', %d))::jsonb" % (n, n)
        return "(repeat('{\"a\":', %d) || '1' || repeat('}', %d))::jsonb" % (n, n)

    def payload(self, event_sql=None):
        if event_sql == "'pay'" and self.p(0.6):
            return self.c("'{\"amount\": 5}'", "'{\"amount\": 0}'::jsonb", "'{\"amount\": 12.5}'",
                          "jsonb_build_object('amount', 1, 'note', repeat('x', 70000))",
                          "'{\"amount\": 1, \"extra\": [1, {\"a\": null}]}'")
        return self.c(
            "NULL", "NULL::jsonb", "'{}'", "'null'", "'[]'", "'1e400'", "'123456789012345678901234567890'",
            "'-1e-400'", "'\"str\"'", "'true'", "'{\"amount\": -1}'", "'{\"amount\": \"5\"}'",
            "'{\"amount\": 1e400}'", "'{\"amount\": -1e-400}'", "'{\"amount\": 123456789012345678901234567890}'",
            "'{\"amount\": null}'", "'{\"amount\": [1]}'", "'{\"amount\": {}}'", "'{\"Amount\": 1}'",
            "'{\"amount\": 1, \"amount\": -1}'", q('{"a": "\\u0000"}'), q('{"a\\u0001": 1}'),
            self.deep(), self.deep(), "jsonb_build_object('amount', 1, 'd', %s)" % self.deep(),
            "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 100000) g)",
            "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 100000) g) || '{\"amount\": 1}'",
            "jsonb_build_object('amount', 1, 's', repeat('x', 70000))", "'{\"amount\": 1}'::json",
            "'{\"amount\": 1}'::text", "1", "'not json'", "ARRAY[1]", "to_jsonb(now())",
            "jsonb_build_array(%s)" % self.hostile_text())

    def ts(self):
        return self.c("NULL", "NULL::timestamptz", "'infinity'", "'-infinity'", "'infinity'::timestamptz",
                      "'-infinity'::timestamptz", "'0001-01-01 BC'", "'4714-11-24 00:00:00+00 BC'",
                      "'294276-12-31'", "'294276-12-31 23:59:59.999999+00'", "'epoch'", "now()",
                      "now() - interval '1 hour'", "now() + interval '1 day'", "'2024-01-01'::date",
                      "'1970-01-01 00:00:00.0005+00'", "'10889-08-02 05:31:50.655+00'",
                      "'10889-08-02 05:31:50.656+00'", "clock_timestamp()", "1.5", "'garbage'",
                      "'now'", "'2024-01-01'::timestamp")

    def lim(self):
        return self.c("NULL", "NULL::int", "0", "-1", "1", "2", "100", "2147483647", "-2147483648",
                      "1.5", "10000000000", "'3'", "'x'")

    def boolean(self):
        return self.c("true", "false", "NULL", "NULL::boolean", "'yes'", "1", "'maybe'", "0::boolean")

    def notify(self):
        return self.c("NULL", "'ch'", "''", "'fsm_events'", "repeat('n', 63)", "repeat('n', 64)",
                      "repeat('n', 70000)", r"E'\x01'", "'\"; NOTIFY x'", "'a''b'", "'ünï☃'", "1")

    # ---- definitions
    def name_hostile(self):
        return self.c("", "\x01", "a\nb", "\t", "\x7f", "a\u0000b", "x" * 200, "x" * 201, "é" * 100,
                      "é" * 101, "x" * 70000, "ünï☃", "\u202e", "*", "+", " ", "a b", "'", "\\",
                      "\"", "1", "null", "created ")

    def mutate(self, d):
        r = self.r
        st = d.setdefault("states", {}) if isinstance(d.get("states"), dict) else None
        ev = d.setdefault("events", {}) if isinstance(d.get("events"), dict) else None
        op = r.randrange(28)
        if op == 0:
            d["states"] = self.c([], "x", None, 1, ["created"], {"created": None}, {"created": []})
        elif op == 1:
            d["events"] = self.c([], "x", None, 1, True, {"pay": None}, {"pay": "x"}, {"pay": []})
        elif op == 2:
            d[self.c("colour", "State", "event", "", "initial")] = 1
        elif op == 3 and st:
            s = st.setdefault(r.choice(list(st) or ["created"]), {})
            if isinstance(s, dict):
                s[self.c("colour", "inital", "Final", "", "to")] = "red"
        elif op == 4 and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e[self.c("frm", "To", "guards", "", "payload_schema", "timeout")] = "created"
        elif op == 5 and st:
            for s in r.sample(list(st), min(2, len(st))):
                st[s] = {"initial": True}
        elif op == 6 and st:
            for s in st.values():
                if isinstance(s, dict):
                    s.pop("initial", None)
        elif op == 7 and st:
            st[r.choice(list(st))] = {"initial": self.c("yes", 1, None, [], {}, False),
                                       "final": self.c(True, "no", 0, None)}
        elif op in (8, 9) and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e["from"] = self.c("*", "+", ["*"], ["+", "created"], "", [], None, 1, ["nosuch"],
                                   "created,paid", ["created", "created"], {"created": 1}, "delivered")
        elif op == 10 and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e["to"] = self.c("*", "+", [], [None], "nosuch", ["paid"] * 1000, {"a": 1}, None, "",
                                 ["paid", "paid"], ["shipped", "nosuch"], 5)
        elif op == 11 and st is not None and ev is not None:
            names = ["t%d" % i for i in range(1000)]
            for n in names:
                st[n] = {"final": True} if self.p(0.5) else {}
            ev["fan"] = {"from": "created", "to": names}
        elif op == 12 and st:
            old = r.choice(list(st))
            new = self.name_hostile()
            st[new] = st.pop(old)
            if ev:
                for e in ev.values():
                    if isinstance(e, dict) and e.get("to") == old:
                        e["to"] = new
        elif op == 13 and ev:
            old = r.choice(list(ev))
            ev[self.name_hostile()] = ev.pop(old)
        elif op == 14 and ev is not None:
            ev["back"] = {"from": self.c("delivered", "cancelled"), "to": "created"}
        elif op == 15 and ev is not None:
            ev["multi"] = self.c(
                [{"from": "created", "to": "paid"}, {"from": "paid", "to": "shipped", "guard": "nosuch.g"}],
                [], [1], [[]], [{"from": "created"}], [{"from": "created", "to": "paid", "x": 1}],
                [{"from": "*", "to": "cancelled"}] * 100)
        elif op == 16 and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e["guard"] = self.c("nosuch.fn", "pg_catalog.now", "fsm.uuid7", '"; DROP TABLE orders; --',
                                    "", "a.b.c.d", "pg_sleep", "public.f()", 1, None, "x" * 300,
                                    "pg_catalog.pg_terminate_backend", "fsm.enforce")
        elif op == 17 and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e["action"] = self.c("nosuch.fn", "pg_catalog.now", "fsm.detach", "", 1, "x" * 300,
                                     "fsm.create_machine")
                if self.p(0.6):
                    e["on_error"] = self.c("cancelled", "nosuch", "created", 1, None, "delivered")
        elif op == 18 and ev:
            e = ev.get(r.choice(list(ev)))
            if isinstance(e, dict):
                e["roles"] = self.c(["nosuch"], ["fuzz_user"], ["public"], "support", [], [1],
                                    ["pg_read_all_data"], ["a" * 300], [None], ["postgres"])
        elif op == 19 and ev is not None:
            e = ev.setdefault("pay", {"from": "created", "to": "paid"})
            if isinstance(e, dict):
                e["payload"] = self.c(
                    {"type": "frob"}, {"type": "object", "properties": {"amount": {"pattern": "("}}},
                    {"pattern": "["}, {"minimum": "x"}, {"required": 5}, {"required": ["a"] * 1000},
                    {"type": ["object", "null"]}, {"enum": []}, {"$ref": "#"}, {"additionalProperties": False},
                    {"properties": {"amount": {"type": "number", "maximum": -1, "minimum": 1}}}, True, False,
                    None, "x", {"type": "object", "properties": {"b": {"type": "string", "pattern": "^(a+)+$"}}},
                    {"properties": {"amount": {"minimum": 1e308, "maximum": -1e308}}},
                    {"properties": {"amount": {"enum": [1, "1", None, [], {}]}}},
                    {"properties": {"a": {"properties": {"b": {"properties": {"c": {"type": "integer"}}}}}}})
        elif op == 20 and st:
            s = st.setdefault(r.choice(list(st)), {})
            if isinstance(s, dict):
                s["timeout"] = self.c({"after": "garbage", "event": "ship"}, {"after": "-1 day", "event": "ship"},
                                      {"after": "1e400 days", "event": "ship"}, {"after": "7 days", "event": "nosuch"},
                                      {"after": "7 days"}, "7 days", {"after": "infinity", "event": "ship"},
                                      {"after": "178000000 years", "event": "ship"},
                                      {"after": "0", "event": "cancel"}, {"after": 5, "event": "ship"})
        elif op == 21 and st:
            s = st.setdefault(r.choice(list(st)), {})
            if isinstance(s, dict):
                deep = 1
                for _ in range(self.c(10, 100, 200)):
                    deep = [deep]
                s["meta"] = self.c(deep, "x" * 70000, None, [], {"label": "\x01"}, {"label": 'a"b\\'})
        elif op == 22 and ev is not None:
            ev["loop"] = {"from": "paid", "to": "paid"}
        elif op == 23 and st is not None:
            st[self.c("orphan", "deadend")] = {}
            if self.p(0.5) and ev is not None:
                ev["todead"] = {"from": "created", "to": "deadend"}
                st["deadend"] = {}
        elif op == 24 and st is not None:
            st["Created"] = {}
        elif op == 25:
            d.clear()
            d.update({"states": {"1": {"initial": True}, "2": {}, "3": {"final": True}},
                      "events": {"up": {"from": "1", "to": "2"}, "done": {"from": "2", "to": "3"}}})
        elif op == 26 and ev:
            # Events as lists of branches, well and badly formed.
            name = r.choice(list(ev))
            e = ev[name]
            ev[name] = self.c([e, {"from": "paid", "to": "cancelled", "guard": "fsm_no_such.guard"}],
                              [e, {"from": "*", "to": "created"}], [e, e], [], [e, "x"], [[e]],
                              [e] * 1001, [e, {"from": "created", "to": "nosuch"}],
                              [e, {"from": "created", "to": "paid", "on_error": "cancelled"}],
                              [{"from": "created", "to": "paid", "roles": ["fsm_fuzz_nobody"]}, e])
        else:
            if ev is not None and st:
                ev[r.choice(list(st))] = {"from": "created", "to": "paid"}
        return d

    def definition(self):
        k = self.r.randrange(10)
        if k == 0:
            return self.c("NULL", "NULL::jsonb", "'{}'", "'null'", "'[]'", "'1'", "'\"x\"'",
                          "'{\"states\":{}}'", "'{\"states\":{},\"events\":{}}'", "'{\"events\":{}}'",
                          "'{\"states\":{\"a\":{\"initial\":true}},\"events\":{}}'", "'not json'", "1",
                          "'{}'::json", "'{}'::text")
        if k == 1:
            base = self.c(ORDER_DEF_SQL, jlit(SMALL_DEF))
            path = self.c("'{states,created,meta}'", "'{events,pay,payload}'", "'{states,paid}'",
                          "'{events,ship,from}'", "'{states}'", "'{events,pay}'")
            val = self.c(self.deep(), self.deep(),
                         "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 100000) g)",
                         "'1e400'", "to_jsonb(repeat('x', 70000))")
            return "jsonb_set(%s, %s, %s)" % (base, path, val)
        if k == 2:
            n = self.c(1000, 100000)
            chain = self.p(0.5) and n == 1000
            ev = ("(SELECT jsonb_object_agg('e' || g, jsonb_build_object('from', 's' || g, 'to', 's' || (g + 1))) "
                  "FROM generate_series(1, %d) g)" % (n - 1)) if chain else "'{}'::jsonb"
            return ("jsonb_build_object('states', (SELECT jsonb_object_agg('s' || g, CASE WHEN g = 1 THEN "
                    "'{\"initial\": true}'::jsonb WHEN g = %d THEN '{\"final\": true}'::jsonb ELSE '{}'::jsonb END) "
                    "FROM generate_series(1, %d) g), 'events', %s)" % (n, n, ev))
        if k == 3:
            return self.c(jlit(ORDER_DEF), jlit(SMALL_DEF))
        d = json.loads(json.dumps(self.c(ORDER_DEF, SMALL_DEF)))
        for _ in range(self.r.randint(1, 3)):
            self.mutate(d)
        return jlit(d)

    # ---- statements
    def st_fire(self):
        tsql, t = self.tbl()
        key = self.key(t)
        ev = self.event()
        named = []
        pos = [tsql, key, ev]
        rest = [("payload", self.payload(ev)), ("expect", self.state()), ('"to"', self.state())]
        n = self.r.randint(0, 3)
        if ev == "'pay'" and n == 0 and self.p(0.7):
            n = 1
        pos += [v for _, v in rest[:n]]
        for name, v in rest[n:]:
            if self.p(0.25):
                named.append("%s => %s" % (name, v))
        if self.p(0.12):
            named.append("col => %s" % self.col())
        if self.p(0.08):
            named.append("idempotency_key => %s" % self.c("'idem-1'", "'idem-%d'" % self.r.randint(1, 5),
                                                           "NULL", "''", "repeat('i', 70000)"))
        if self.p(0.06):  # everything named, or a wrong name
            args = ["tbl => %s" % tsql, "key => %s" % key, "event => %s" % ev] + named
            if self.p(0.3):
                args.append(self.c("nosuch => 1", "tbl => 'orders'", "\"TO\" => 'paid'"))
            return "SELECT fsm.fire(%s);" % ", ".join(args)
        if self.p(0.04):
            pos = pos[: self.r.randint(0, 2)]
        args = ", ".join(pos + named)
        form = self.r.randrange(10)
        if form == 0 and t:
            kcol = TABLES[t][0]
            return "SELECT fsm.fire('%s', %s, %s%s) FROM %s WHERE %s IS NOT NULL ORDER BY 1 LIMIT %d;" % (
                t, kcol, ev, (", " + self.payload(ev)) if self.p(0.6) else "", t, kcol, self.r.randint(1, 60))
        if form == 1:
            return "SELECT fsm.fire(%s), fsm.fire(%s);" % (args, args)
        if form == 2 and t == "orders":
            return "UPDATE orders SET note = fsm.fire('orders', id, %s, %s) WHERE id = %d;" % (
                ev, self.payload(ev), self.r.randint(1, ROWS))
        if form == 3 and t:
            kcol = TABLES[t][0]
            return ("WITH u AS (UPDATE %s SET status = %s WHERE %s = %s RETURNING %s) "
                    "SELECT fsm.fire('%s', %s, %s, %s) FROM u;" % (
                        t, self.state(), kcol, TABLES[t][2].format(g=self.r.randint(1, ROWS)), kcol,
                        t, kcol, ev, self.payload(ev)))
        return "SELECT fsm.fire(%s);" % args

    def st_dml(self):
        t = self.c(*TABLES)
        k, typ, gexpr = TABLES[t]
        kv = gexpr.format(g=self.r.randint(1, ROWS))
        op = self.r.randrange(16)
        if op == 0:
            return "INSERT INTO %s (%s, status) VALUES (%s, %s);" % (t, k, self.newkey(t), self.state())
        if op == 1:
            return "INSERT INTO %s (%s) VALUES (%s);" % (t, k, self.c(self.newkey(t), "NULL", kv))
        if op == 2:
            a = self.r.randint(1, 10 ** 6)
            return "INSERT INTO %s (%s, status) SELECT %s, %s FROM generate_series(%d, %d) g%s;" % (
                t, k, gexpr.format(g="g"), self.c("NULL", self.state()), a, a + self.r.randint(0, 300),
                self.c("", " ON CONFLICT DO NOTHING"))
        if op == 3:
            return "INSERT INTO %s (%s, status) VALUES (%s, %s) ON CONFLICT (%s) DO UPDATE SET status = %s;" % (
                t, k, self.c(kv, self.newkey(t)), self.state(), k, self.c("EXCLUDED.status", self.state()))
        if op == 4:
            return "INSERT INTO %s (%s, status) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING *;" % (
                t, k, self.c(kv, self.newkey(t)), self.state())
        if op in (5, 6, 7):
            return "UPDATE %s SET status = %s WHERE %s = %s;" % (t, self.state(), k, self.c(kv, kv, self.key(t)))
        if op == 8:
            return "UPDATE %s SET status = %s WHERE %s IN (%s, %s, %s);" % (
                t, self.state(), k, kv, gexpr.format(g=self.r.randint(1, ROWS)),
                gexpr.format(g=self.r.randint(1, ROWS)))
        if op == 9:
            return "UPDATE %s SET %s = NULL, status = %s WHERE %s = %s;" % (t, k, self.state(), k, kv)
        if op == 10:
            return "UPDATE %s SET %s = %s, status = %s WHERE %s = %s;" % (
                t, k, self.c(self.newkey(t), gexpr.format(g=self.r.randint(1, ROWS))), self.state(), k, kv)
        if op == 11:
            return self.c(
                "UPDATE %s SET status = CASE status WHEN 'created' THEN 'paid' WHEN 'paid' THEN 'shipped' "
                "WHEN 'shipped' THEN 'delivered' ELSE status END;" % t,
                "UPDATE %s SET status = status;" % t,
                "UPDATE %s SET status = %s;" % (t, self.state()),
                "UPDATE %s SET status = %s WHERE status = %s;" % (t, self.state(), self.state()),
                "UPDATE orders SET note = %s WHERE id %% %d = 0;" % (self.hostile_text(), self.r.randint(1, 9)),
                "UPDATE orders SET id = id WHERE id = %d;" % self.r.randint(1, ROWS))
        if op == 12:
            return self.c("DELETE FROM %s WHERE %s = %s;" % (t, k, kv),
                          "DELETE FROM %s WHERE status = %s;" % (t, self.state()),
                          "DELETE FROM %s WHERE %s = %s RETURNING *;" % (t, k, self.newkey(t)))
        if op == 13:
            return ("MERGE INTO %s t USING (VALUES (%s, %s)) v(k, s) ON t.%s = v.k "
                    "WHEN MATCHED THEN UPDATE SET status = v.s WHEN NOT MATCHED THEN INSERT (%s, status) "
                    "VALUES (v.k, v.s);" % (t, self.c(kv, self.newkey(t)), self.state(), k, k))
        if op == 14:
            return "INSERT INTO %s (%s, status) VALUES (%s, %s), (%s, %s);" % (
                t, k, self.newkey(t), self.state(), self.newkey(t), self.state())
        # history tables are append-only: must be clean refusals
        what = self.c("UPDATE %s SET event = 'x'", "DELETE FROM %s", "TRUNCATE %s",
                      "INSERT INTO %s (id, entity_key, event, to_state) VALUES (fsm.uuid7(), 1, 'x', 'paid')",
                      "UPDATE %s SET to_state = 'bogus' WHERE true")
        return ("DO $$DECLARE h regclass; BEGIN SELECT history INTO h FROM fsm.bindings ORDER BY 1 "
                "OFFSET %d LIMIT 1; IF h IS NOT NULL THEN EXECUTE format('%s', h); END IF; END$$;" % (self.r.randrange(4), what.replace("'", "''")))

    def st_read(self):
        k = self.r.randrange(10)
        if k >= 7:
            return self.st_read_more()
        tsql, t = self.tbl()
        if k <= 2:
            args = [tsql, self.key(t)]
            for v in (self.ts, self.ts, self.lim):
                if self.p(0.5):
                    args.append(v())
                else:
                    break
            if self.p(0.2):
                args = args[:2] + ["%s => %s" % (n, g()) for n, g in
                                   (("since", self.ts), ("until", self.ts), ("lim", self.lim)) if self.p(0.5)]
            f = "fsm.history(%s)" % ", ".join(args)
            return self.c("SELECT count(*) FROM %s;" % f, "SELECT * FROM %s;" % f,
                          "SELECT * FROM %s LIMIT 1;" % f, "SELECT %s;" % f)
        if k <= 4:
            f = "fsm.current_states(%s, %s)" % (tsql, self.keys(t))
            return self.c("SELECT count(*) FROM %s;" % f, "SELECT * FROM %s;" % f,
                          "SELECT %s;" % f)
        if k == 5 and t:
            kcol = TABLES[t][0]
            return self.c(
                "SELECT count(*) FROM %s o, LATERAL fsm.history('%s', o.%s) h;" % (t, t, kcol),
                "SELECT fsm.history('%s', %s) FROM %s LIMIT 5;" % (t, kcol, t),
                "SELECT * FROM fsm.current_states('%s', (SELECT array_agg(%s) FROM %s));" % (t, kcol, t),
                "SELECT count(*) FROM fsm.history('%s', %s) h, LATERAL fsm.fire('%s', %s, 'cancel') f;" % (
                    t, TABLES[t][2].format(g=self.r.randint(1, ROWS)), t,
                    TABLES[t][2].format(g=self.r.randint(1, ROWS))))
        return self.c("SELECT * FROM fsm.bindings;", "SELECT count(*) FROM fsm.transitions;",
                      "SELECT * FROM fsm.states;", "SELECT name, version FROM fsm.machines;",
                      "SELECT * FROM fsm.timers;",
                      "DO $$DECLARE h regclass; BEGIN SELECT history INTO h FROM fsm.bindings LIMIT 1; "
                      "IF h IS NOT NULL THEN EXECUTE format('SELECT count(*) FROM %s', h); END IF; END$$;")

    def st_read_more(self):
        """changes, states_at, can_fire, available_events, analytics, machine versions."""
        tsql, t = self.tbl()
        col = self.c("", "", ", col => %s" % self.col())
        k = self.r.randrange(7)
        if k == 5:
            return "SELECT * FROM fsm.time_in_state(%s, %s, %s, %s%s);" % (
                tsql, self.keys(t), self.ts(), self.ts(), col)
        if k == 6:
            args = [tsql] + ["%s => %s" % (n, self.ts()) for n in ("since", "until") if self.p(0.5)]
            return "SELECT * FROM fsm.state_stats(%s%s);" % (", ".join(args), col)
        if k == 0:
            args = [tsql] + ["%s => %s" % (n, g()) for n, g in
                             (("since", self.ts), ("until", self.ts), ("event", self.event), ("lim", self.lim))
                             if self.p(0.5)]
            return "SELECT * FROM fsm.changes(%s%s);" % (", ".join(args), col)
        if k == 1:
            return "SELECT * FROM fsm.states_at(%s, %s, %s%s);" % (tsql, self.keys(t), self.ts(), col)
        if k == 2:
            payload = self.c("", ", NULL", ", '{\"amount\": 3}'", ", '[]'")
            return "SELECT fsm.can_fire(%s, %s, %s%s%s);" % (tsql, self.key(t), self.event(), payload, col)
        if k == 3:
            return self.c("SELECT * FROM fsm.available_events(%s, %s%s);" % (tsql, self.key(t), col),
                          "SELECT count(*) FROM fsm.available_events(%s, %s%s) WHERE allowed;" % (tsql, self.key(t), col))
        return "SELECT fsm.machine_definition(%s, %s);" % (
            self.c("'m1'", "'m2'", self.machine()), self.c("1", "2", "0", "-1", "NULL", "2147483647"))

    def st_machine(self):
        k = self.r.randrange(10)
        if k <= 4:
            name = self.c("'m1'", "'m2'", "'m3'", "'m1'", self.machine())
            args = [name, self.definition()]
            if self.p(0.5):
                args.append(self.boolean() if self.p(0.3) else "true")
            if self.p(0.1):
                args = ["name => %s" % name, "definition => %s" % args[1], "replace => %s" % self.boolean()]
            return "SELECT fsm.create_machine(%s);" % ", ".join(args)
        if k == 5:
            return "SELECT fsm.drop_machine(%s);" % self.c("'m1'", "'m2'", "'m3'", self.machine())
        f = self.c("fsm.machine_definition", "fsm.to_dot", "fsm.to_mermaid")
        arg = self.machine()
        if f == "fsm.machine_definition" and self.p(0.3):
            arg += ", " + self.c("1", "0", "-1", "NULL", "2147483647", "'x'")
        return self.c("SELECT %s(%s);" % (f, arg), "SELECT length(%s(%s)::text);" % (f, arg))

    def st_attach(self):
        if self.p(0.55):
            tsql, t = self.tbl()
            args = [tsql, self.col(), self.machine()]
            if self.p(0.5):
                args.append(self.boolean())
                if self.p(0.5):
                    args.append(self.notify())
            elif self.p(0.3):
                args.append("notify => %s" % self.notify())
            return "SELECT fsm.attach(%s);" % ", ".join(args)
        tsql, t = self.tbl()
        args = [tsql, self.col()]
        if self.p(0.6):
            args.append(self.boolean())
        return "SELECT fsm.detach(%s);" % ", ".join(args)

    def st_uuid(self):
        u = self.c("'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                   "'%s'" % self.uuid4(), "fsm.uuid7()", "fsm.uuid7(%s)" % self.ts(), "NULL", "NULL::uuid",
                   "'not-a-uuid'", "md5('x')::uuid", "'017f22e2-79b0-7cc3-98c4-dc0c0c07398f'",
                   "'ffffffff-ffff-7fff-bfff-ffffffffffff'", "1")
        return self.c("SELECT fsm.uuid7();", "SELECT fsm.uuid7(%s);" % self.ts(),
                      "SELECT fsm.uuid7_time(%s);" % u, "SELECT fsm.uuid7_time(fsm.uuid7(%s));" % self.ts(),
                      "SELECT fsm.uuid7(at => %s);" % self.ts(), "SELECT fsm.uuid7(NULL);",
                      "SELECT count(DISTINCT fsm.uuid7()) FROM generate_series(1, 10000);",
                      "SELECT fsm.uuid7_time(id => %s);" % u)

    def st_setting(self):
        g = self.c("fsm.event", "fsm.actor")
        v = self.c("'pay'", "'review'", "'ship'", "'nosuch'", "''", "'a''b'", r"E'\x01'", "'ünï☃'",
                   "'" + "x" * 300 + "'")
        return self.c("SET %s = %s;" % (g, v), "SET %s TO DEFAULT;" % g, "RESET %s;" % g,
                      "SET LOCAL %s = %s;" % (g, v),
                      "SELECT set_config('%s', %s, %s);" % (g, self.hostile_text(), self.c("false", "true")),
                      "SET fsm.nosuch = 1;", "SET fsm.event = 'review';", "SET fsm.actor = 'fuzzer';")

    def st_compound(self):
        t = self.c(*TABLES)
        k, _typ, gexpr = TABLES[t]
        kv = gexpr.format(g=self.r.randint(1, ROWS))
        ev = self.event()
        fire = "SELECT fsm.fire('%s', %s, %s, %s);" % (t, kv, ev, self.payload(ev))
        upd = "UPDATE %s SET status = %s WHERE %s = %s;" % (t, self.state(), k, kv)
        hist = "SELECT count(*) FROM fsm.history('%s', %s);" % (t, kv)
        op = self.r.randrange(9)
        if op == 0:  # detach / re-attach churn: cached plans must follow
            return ("%s SELECT fsm.detach('%s', 'status', %s); SELECT fsm.attach('%s', 'status', 'order'); %s %s"
                    % (hist, t, self.boolean(), t, fire, hist))
        if op == 1:
            return "BEGIN; SAVEPOINT a; %s ROLLBACK TO a; %s RELEASE a; %s %s;" % (
                fire, upd, hist, self.c("COMMIT", "ROLLBACK"))
        if op == 2:
            return "BEGIN; %s %s %s %s;" % (upd, fire, hist, self.c("COMMIT", "ROLLBACK"))
        if op == 3:
            return ("PREPARE pf(bigint, text) AS SELECT fsm.fire('orders', $1, $2); EXECUTE pf(%d, %s); "
                    "EXECUTE pf(%d, %s); DEALLOCATE pf;" % (self.r.randint(1, ROWS), ev, self.r.randint(1, ROWS),
                                                             self.event()))
        if op == 4:
            return ("BEGIN; DECLARE c CURSOR FOR SELECT * FROM fsm.history('%s', %s); FETCH 1 FROM c; %s "
                    "FETCH ALL FROM c; CLOSE c; COMMIT;" % (t, kv, self.c(fire, upd)))
        if op == 5:  # DDL the binding must follow or refuse, always rolled back
            ddl = self.c(
                "ALTER TABLE %s RENAME COLUMN status TO st;" % t, "ALTER TABLE %s RENAME TO %s_renamed;" % (t, t),
                "ALTER TABLE %s ALTER COLUMN status TYPE varchar(3);" % t,
                "ALTER TABLE %s DROP COLUMN status;" % t, "ALTER TABLE %s DROP CONSTRAINT %s_pkey;" % (t, t),
                "ALTER TABLE %s ADD COLUMN extra int;" % t, "DROP TABLE %s;" % t,
                "SELECT fsm.detach('%s', 'status', true);" % t,
                "DO $$DECLARE h regclass; BEGIN SELECT history INTO h FROM fsm.bindings WHERE tbl = '%s'::regclass; "
                "IF h IS NOT NULL THEN EXECUTE format('DROP TABLE %%s', h); END IF; END$$;" % t,
                "DO $$DECLARE h regclass; BEGIN SELECT history INTO h FROM fsm.bindings WHERE tbl = '%s'::regclass; "
                "IF h IS NOT NULL THEN EXECUTE format('ALTER TABLE %%s RENAME TO h_renamed', h); END IF; END$$;" % t,
                "ALTER TABLE %s DISABLE TRIGGER ALL;" % t, "SELECT fsm.drop_machine('order');")
            after = self.c(fire, upd, hist, "INSERT INTO %s (%s) VALUES (%s);" % (t, k, self.newkey(t)))
            return "BEGIN; %s %s %s ROLLBACK;" % (ddl, after, self.c(fire, upd, hist))
        if op == 6:
            return "SET fsm.event = %s; %s RESET fsm.event;" % (q(self.c(*EVENTS, "nosuch", "")), upd)
        if op == 7:  # several changes to the same row in one transaction
            return "BEGIN; %s %s %s COMMIT;" % (fire, fire, upd)
        return "SELECT fsm.fire('orders', g, %s, %s) FROM generate_series(1, %d) g;" % (
            ev, self.payload(ev), self.r.randint(1, ROWS))

    def st_extra(self):
        """Contract functions that an older build may lack (42883 is fine)."""
        tsql, t = self.tbl()
        key = self.key(t)
        return self.c(
            "SELECT fsm.can_fire(%s, %s, %s, %s);" % (tsql, key, self.event(), self.payload()),
            "SELECT * FROM fsm.available_events(%s, %s);" % (tsql, key),
            "SELECT count(*) FROM fsm.changes(%s, %s, %s, %s, %s);" % (tsql, self.ts(), self.ts(), self.event(),
                                                                      self.lim()),
            "SELECT * FROM fsm.states_at(%s, %s, %s);" % (tsql, self.keys(t), self.ts()),
            "SELECT fsm.tick(%s);" % self.lim(),
            "SELECT * FROM fsm.state_stats(%s, %s, %s);" % (tsql, self.ts(), self.ts()),
            "SELECT * FROM fsm.time_in_state(%s, %s, %s, %s);" % (tsql, self.keys(t), self.ts(), self.ts()))

    def statement(self):
        f = self.r.choices(self.funcs, weights=self.cum)[0]
        s = f()
        assert "\n" not in s and "\r" not in s, s
        return s


# --------------------------------------------------------------------------
# Running psql and reading its output
# --------------------------------------------------------------------------

MSG_RE = re.compile(r"^psql:[^:]*:(\d+): (ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|LOG|DEBUG|error|fatal|warning):"
                    r"\s+(?:([0-9A-Z]{5}): )?(.*)$")
CRASH_MARKERS = ("server closed the connection unexpectedly", "connection to server was lost",
                 "Attempting reset", "terminating connection because of crash",
                 "the database system is in recovery mode", "no connection to the server",
                 "could not connect to server", "the database system is shutting down",
                 "the database system is starting up", "terminated abnormally")
LOG_RE = re.compile(r"terminated by signal|was terminated|\bPANIC:|\bFATAL:")


class Msg:
    def __init__(self, line, sev, code, text):
        self.line, self.sev, self.code, self.text, self.extra = line, sev, code, text, []


def parse(stderr):
    msgs, cur = [], None
    for ln in stderr.splitlines():
        m = MSG_RE.match(ln)
        if m:
            cur = Msg(int(m.group(1)), m.group(2), m.group(3), m.group(4))
            msgs.append(cur)
        elif cur is not None and ln.startswith(("DETAIL:", "HINT:", "LOCATION:", "CONTEXT:")):
            cur.extra.append(ln)
    return msgs


def trunc(s, n=300):
    return s if len(s) <= n else s[:n] + "...[%d chars]" % len(s)


class Runner:
    def __init__(self, args):
        self.a = args
        self.env = dict(os.environ, PGCLIENTENCODING="UTF8", PGAPPNAME="fsm_fuzz")
        self.log = os.environ.get("FSM_PG_LOG") or None
        self.tmp = tempfile.mkdtemp(prefix="fsm-fuzz.")
        self.nfile = 0

    def psql_base(self):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-d", self.a.dbname]

    def log_pos(self):
        try:
            return os.path.getsize(self.log) if self.log else 0
        except OSError:
            return 0

    def log_since(self, pos):
        if not self.log:
            return ""
        try:
            with open(self.log, "rb") as f:
                f.seek(pos)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def run_file(self, lines, timeout):
        """Runs the lines (one statement each) in one psql. Returns
        (rc, stderr, hung_query or None)."""
        self.nfile += 1
        path = os.path.join(self.tmp, "b%05d.sql" % self.nfile)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        p = subprocess.Popen(self.psql_base() + ["-f", path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=self.env)
        hung = None
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = self.kill_hung() or "(no active fsm_fuzz backend found)"
            p.kill()
            _, err = p.communicate()
        if not self.a.keep:
            os.unlink(path)
        return p.returncode, err.decode("utf-8", "replace"), hung

    def ctl(self, sql, timeout=15):
        env = dict(self.env, PGAPPNAME="fsm_fuzz_ctl")
        try:
            r = subprocess.run(["psql", "-X", "-At", "-d", self.a.dbname, "-c", sql], env=env,
                               capture_output=True, timeout=timeout)
            return r.returncode, r.stdout.decode("utf-8", "replace").strip(), r.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            return -1, "", "timeout"

    def kill_hung(self):
        rc, out, _ = self.ctl("SELECT pid || ' ' || left(query, 400) FROM pg_stat_activity "
                              "WHERE application_name = 'fsm_fuzz' AND state = 'active'")
        if rc == 0 and out:
            for row in out.splitlines():
                pid = row.split(" ", 1)[0]
                if pid.isdigit():
                    self.ctl("SELECT pg_terminate_backend(%s)" % pid)  # our own psql's backend
            return out
        return None

    def wait_ready(self, secs=120):
        end = time.time() + secs
        while time.time() < end:
            rc, _, _ = self.ctl("SELECT 1", timeout=10)
            if rc == 0:
                return True
            time.sleep(0.5)
        return False


def preamble(a):
    return ["\\set VERBOSITY verbose", "SET client_min_messages = warning;",
            "SET statement_timeout = '%ds';" % a.stmt_timeout]


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------

class Fuzz:
    def __init__(self, args):
        self.a = args
        self.run = Runner(args)
        self.codes = collections.Counter()
        self.repair_codes = collections.Counter()
        self.failures = []  # dicts: kind, role, batch, stmt, lines
        self.notes = []
        self.ran = collections.Counter()
        self.crashes = 0
        self.incomplete = 0  # batches whose fixture repair did not restore all 4 bindings

    def fail(self, kind, role, batch, stmt, lines):
        self.failures.append(dict(kind=kind, role=role, batch=batch, stmt=stmt, lines=lines))

    def build(self, stmts, role, repair=True):
        lines = preamble(self.a)
        linemap = [("pre", None)] * len(lines)
        if repair:
            for s in repair_sql():
                lines.append(s)
                linemap.append(("repair", s))
        if role == "fuzz_user":
            lines.append("SET ROLE fuzz_user;")
            linemap.append(("pre", None))
        for i, s in enumerate(stmts):
            lines.append(s)
            linemap.append(("fuzz", i))
        return lines, linemap

    def crash_lines(self, stderr, logtxt):
        out = [ln for ln in stderr.splitlines() if any(m in ln for m in CRASH_MARKERS)
               or MSG_RE.match(ln) and MSG_RE.match(ln).group(2) in ("FATAL", "PANIC")]
        for ln in logtxt.splitlines():
            if LOG_RE.search(ln) or "Failed process was running" in ln:
                out.append("server log: " + trunc(ln.strip(), 400))
        return out

    def crash_lineno(self, stderr):
        for ln in stderr.splitlines():
            if any(m in ln for m in CRASH_MARKERS):
                m = re.match(r"^psql:[^:]*:(\d+):", ln)
                if m:
                    return int(m.group(1))
        return None

    def record(self, msgs, linemap, stmts, role, batch, upto=None):
        """Counts errors and records XX000/FATAL/PANIC; of the fuzz
        statements only those before index upto (repair lines always)."""
        seen = set()
        for m in msgs:
            if m.line < 1 or m.line > len(linemap):
                continue
            kind, ref = linemap[m.line - 1]
            if kind == "fuzz" and upto is not None and ref >= upto:
                continue
            if kind == "repair" and m.sev == "WARNING" and m.text.startswith("fuzz fixture incomplete"):
                self.incomplete += 1
            if m.sev not in ("ERROR", "FATAL", "PANIC", "error", "fatal"):
                continue
            if any(x in m.text for x in CRASH_MARKERS):
                continue  # reported as a crash
            code = m.code or ("psql" if m.sev.islower() else "?")
            stmt = stmts[ref] if kind == "fuzz" else (ref or "(harness preamble)")
            if kind == "fuzz":
                if (m.line, code) not in seen:
                    self.codes[code] += 1
                    seen.add((m.line, code))
            elif kind == "repair":
                self.repair_codes[code] += 1
            else:
                self.fail("fixture", role, batch, "(batch preamble: VERBOSITY / timeout / SET ROLE)",
                          ["%s:  %s: %s" % (m.sev, code, m.text)])
                continue
            if code == "XX000" or m.sev in ("FATAL", "PANIC"):
                self.fail(code if code == "XX000" else m.sev, role, batch,
                          ("[repair] " if kind == "repair" else "") + stmt,
                          ["%s:  %s: %s" % (m.sev, code, m.text)] + [x for x in m.extra if x.startswith("LOCATION")])
            elif kind == "fuzz" and (code in ("psql", "?") or code == "42601" and m.text.startswith("syntax error")):
                self.notes.append("generated SQL problem (%s %s): %s" % (code, trunc(m.text, 120), trunc(stmt, 200)))

    def run_batch(self, b, stmts, role):
        lines, linemap = self.build(stmts, role)
        pos = self.run.log_pos()
        rc, err, hung = self.run.run_file(lines, self.a.batch_timeout)
        logtxt = self.run.log_since(pos)
        msgs = parse(err)
        crashed = bool(hung is None and (any(m in err for m in CRASH_MARKERS) or LOG_RE.search(logtxt)))
        if hung:
            self.fail("hang", role, b, "(batch %d) active query: %s" % (b, trunc(hung, 300)),
                      ["statement ignored statement_timeout for %ds" % self.a.batch_timeout])
            self.record(msgs, linemap, stmts, role, b)
            self.ran[role] += len(stmts)
            self.run.wait_ready()
            return
        if not crashed:
            self.record(msgs, linemap, stmts, role, b)
            self.ran[role] += len(stmts)
            return
        cl = self.crash_lineno(err)
        if cl is None or not 1 <= cl <= len(linemap):
            reached, cidx = len(stmts), None  # seen only in the log: assume all ran
        elif linemap[cl - 1][0] == "fuzz":
            reached = cidx = linemap[cl - 1][1]  # that statement lost the connection
        else:
            reached, cidx = 0, None  # lost during the preamble or the repair
        self.record(msgs, linemap, stmts, role, b, upto=reached)
        self.ran[role] += reached
        where = ("statement #%d" % cidx) if cidx is not None else (
            "line %s (%s)" % (cl, linemap[cl - 1][0] if cl and cl <= len(linemap) else "server log only"))
        print("fuzz: batch %d (%s): server crash / lost connection at %s; re-running one statement per psql"
              % (b, role, where), flush=True)
        crash_info = self.crash_lines(err, logtxt)
        self.crashes += 1
        if not self.run.wait_ready():
            self.fail("crash", role, b, stmts[cidx] if cidx is not None else "(unknown)", crash_info +
                      ["server did not come back within 120 s"])
            raise SystemExit(self.report())
        self.bisect(b, stmts, role, reached, crash_info, cidx)

    def bisect(self, b, stmts, role, reached, batch_crash, cidx):
        """The fixture repair (as at a batch's start), then each statement of
        the batch in its own psql. Statements the batch did not reach are
        counted and checked here; every statement is checked for crashes."""
        pos = self.run.log_pos()
        lines, linemap = self.build([], "postgres")
        rc, err, _ = self.run.run_file(lines, self.a.batch_timeout)
        logtxt = self.run.log_since(pos)
        if any(m in err for m in CRASH_MARKERS) or LOG_RE.search(logtxt):
            self.crashes += 1
            self.fail("crash", "postgres", b, "[repair, during bisect]", self.crash_lines(err, logtxt))
            if not self.run.wait_ready():
                raise SystemExit(self.report())
        found = 0
        for i, s in enumerate(stmts):
            lines, linemap = self.build([s], role, repair=False)
            pos = self.run.log_pos()
            rc, err, hung = self.run.run_file(lines, self.a.batch_timeout)
            logtxt = self.run.log_since(pos)
            if i >= reached:
                self.record(parse(err), linemap, [s], role, b)
                self.ran[role] += 1
            if hung:
                self.fail("hang", role, b, s, ["(bisect) statement ignored statement_timeout; active: "
                                               + trunc(hung, 300)])
                self.run.wait_ready()
                continue
            if any(m in err for m in CRASH_MARKERS) or LOG_RE.search(logtxt):
                found += 1
                self.crashes += 1
                self.fail("crash", role, b, s, self.crash_lines(err, logtxt))
                print("fuzz:   culprit: statement #%d: %s" % (i, trunc(s, 200)), flush=True)
                if not self.run.wait_ready():
                    raise SystemExit(self.report())
                if self.crashes >= self.a.max_crashes:
                    break
        if not found:
            self.fail("crash", role, b, stmts[cidx] if cidx is not None else "(unknown statement)",
                      batch_crash + ["(did not crash when re-run alone: depends on the batch's session state;"
                                     " reproduce with --keep and the kept batch file)"])

    def main(self):
        a = self.a
        gen = Gen(__import__("random").Random(a.seed))
        stmts = [gen.statement() for _ in range(a.count)]
        for j, extra in enumerate(a.inject or []):  # to check the harness itself
            stmts.insert(min(len(stmts), (j + 1) * len(stmts) // (len(a.inject) + 1)), extra)
        if a.list:
            print("\n".join(stmts))
            return 0
        pos0 = self.run.log_pos()
        # fixture
        rc, out, err = self.run_strict(setup_sql())
        if rc != 0:
            print("fuzz: fixture setup failed (rc %d):\n%s" % (rc, err), file=sys.stderr)
            return 2
        lines, _ = self.build([], "postgres")
        rc, err, _ = self.run.run_file(lines, a.batch_timeout)
        rc, out, err2 = self.run.ctl(VERIFY_SQL)
        if rc != 0 or out != "4":
            print("fuzz: fixture check failed: %s bindings of 'order' (want 4) %s\nrepair output:\n%s"
                  % (out, err2, err), file=sys.stderr)
            return 2
        setup_log = self.run.log_since(pos0)
        if LOG_RE.search(setup_log):
            self.fail("crash", "postgres", 0, "(fixture setup)", self.crash_lines(err, setup_log))
        nb = (len(stmts) + a.batch - 1) // a.batch
        t0 = time.time()
        for b in range(nb):
            role = "fuzz_user" if b % 2 == 1 else "postgres"
            chunk = stmts[b * a.batch:(b + 1) * a.batch]
            self.run_batch(b, chunk, role)
            if not a.quiet:
                print("fuzz: batch %d/%d (%s) done, %d failures so far, %.0fs" % (
                    b + 1, nb, "superuser" if role == "postgres" else role, len(self.failures), time.time() - t0),
                    flush=True)
            if self.crashes >= a.max_crashes:
                self.notes.append("stopped after %d crashes (--max-crashes)" % self.crashes)
                break
        return self.report()

    def run_strict(self, lines):
        path = os.path.join(self.run.tmp, "setup.sql")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
                            "-d", self.a.dbname, "-f", path], env=self.run.env, capture_output=True)
        return r.returncode, r.stdout.decode(), r.stderr.decode("utf-8", "replace")

    def report(self):
        total = sum(self.ran.values())
        nerr = sum(self.codes.values())
        print("fuzz: seed %d: %d statements run (superuser %d, fuzz_user %d), %d errors" % (
            self.a.seed, total, self.ran["postgres"], self.ran["fuzz_user"], nerr))
        print("fuzz: errors by SQLSTATE: " + (", ".join("%s %d" % kv for kv in self.codes.most_common()) or "none"))
        if self.repair_codes:
            print("fuzz: fixture repair errors (ignored): " +
                  ", ".join("%s %d" % kv for kv in self.repair_codes.most_common()))
        if self.incomplete:
            self.notes.insert(0, "%d batch(es) started with an incomplete fixture (fewer than 4 bindings of 'order')"
                              % self.incomplete)
        for n in list(dict.fromkeys(self.notes))[:10]:
            print("fuzz: note: " + n)
        if not self.failures:
            print("fuzz: ok")
            return 0
        groups = collections.OrderedDict()
        for f in self.failures:
            key = (f["kind"], re.sub(r"\d+", "N", f["lines"][0] if f["lines"] else ""))
            groups.setdefault(key, []).append(f)
        print("fuzz: %d FAILURES (%d distinct):" % (len(self.failures), len(groups)))
        for (kind, _), fs in groups.items():
            for f in fs[: self.a.per_group]:
                print("  [%s] batch %d as %s: %s" % (kind, f["batch"], "superuser" if f["role"] == "postgres"
                                                    else f["role"], trunc(f["stmt"])))
                for ln in f["lines"][:8]:
                    print("      " + trunc(ln, 400))
            if len(fs) > self.a.per_group:
                print("  ... and %d more statements with the same error" % (len(fs) - self.a.per_group))
        print("fuzz: FAILED")
        return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE", "fsm_fuzz"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=200, help="statements per psql run")
    ap.add_argument("--stmt-timeout", type=int, default=30, help="statement_timeout, seconds")
    ap.add_argument("--batch-timeout", type=int, default=900, help="a psql run longer than this is a hang")
    ap.add_argument("--max-crashes", type=int, default=5, help="stop after this many crashes")
    ap.add_argument("--per-group", type=int, default=5, help="statements shown per distinct failure")
    ap.add_argument("--keep", action="store_true", help="keep the generated batch files")
    ap.add_argument("--list", action="store_true", help="print the generated statements and exit")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--inject", action="append", metavar="SQL",
                    help="add this one-line statement to the run (checks that the harness catches it)")
    a = ap.parse_args()
    fz = Fuzz(a)
    try:
        rc = fz.main()
    finally:
        if a.keep and not a.list:
            print("fuzz: batch files kept in %s" % fz.run.tmp)
        elif os.path.isdir(fz.run.tmp):
            for f in os.listdir(fz.run.tmp):
                os.unlink(os.path.join(fz.run.tmp, f))
            os.rmdir(fz.run.tmp)
    sys.exit(rc)


if __name__ == "__main__":
    main()
