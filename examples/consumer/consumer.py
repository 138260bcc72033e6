#!/usr/bin/env python3
"""Follow the transitions of an fsm-attached table, exactly once, for ever.

A live consumer of an `fsm` binding attached with `notify => 'channel'`
(docs/consumers.md explains the design; tests/consumer/run.sh kills this
program with SIGKILL mid-stream and checks that nothing was lost or doubled):

    python consumer.py --table orders --name mailer [--dsn 'host=… dbname=…']

Python 3.11, psycopg 3.2 or later (Connection.notifies with a timeout).

What it does, in order, on every (re)connection:

1. Takes a session advisory lock on its name: one running instance per
   consumer name (a second one waits).
2. LISTENs on the binding's channel, *before* reading anything, so that
   every transaction that commits from then on rings the bell.
3. Catches up from the history table, from its checkpoint.
4. Waits for notifications; on each (or every --poll seconds anyway) reads
   the history table again from its checkpoint.

The notification is a doorbell, the history table is the mailbox: the
payload says that something moved (it is logged), the rows themselves are
read from history, in id order, in batches. Catching up after a restart and
following live are then one and the same code path, and a burst of
notifications costs one query, not one transaction each.

Exactly once. Each batch is ONE transaction of this consumer that
  - applies the effect of every row (`apply` below: replace it with yours),
  - records the row's history id in `processed` (primary key), and
  - moves the checkpoint in `progress`.
A kill at any moment either commits all three or none: no effect is lost,
none is applied twice.

Commit order is not id order. A history id is a UUIDv7 made when the row
is written, not when its transaction commits: a transaction that moved an
entity at 12:00:00.100 and commits at 12:00:03 makes its row visible after
rows with larger ids. "Read after the largest id seen" would skip it. So the
checkpoint is not the largest id seen but a *horizon*: a moment such that
every history row older than it that will ever commit has been applied.
Each batch re-reads from the horizon (minus --margin), skips ids already in
`processed`, and prunes `processed` below the window. The horizon comes from
one of two sources (--horizon):

  activity (default, exact): the start of the oldest transaction open in
      this database (pg_stat_activity.xact_start), read *before* the
      snapshot that reads history. A row that snapshot cannot see belongs to
      a transaction still open, which started at or after that moment, and
      made the row's id after it started. Needs the pg_read_all_stats role
      (a superuser has it): without it other roles' sessions show no
      xact_start, and the horizon would be wrong, so the consumer refuses.
      An idle-in-transaction session holds the horizon back (the window,
      hence the re-read, grows): set idle_in_transaction_session_timeout.
  clock: the current time. Then --margin is the guarantee, and must be
      longer than the longest transaction that moves entities.

Prepared (two-phase) transactions, which leave pg_stat_activity at
PREPARE, need no care: PostgreSQL refuses to PREPARE a transaction that
sent a NOTIFY, so none holds rows of a binding attached with notify.
--margin (default 1 s in activity mode) absorbs a small step back of the
server's clock.

The effect here, standing for yours, is in the consumer's own tables (schema
--schema, created on first start):
  mirror  per entity: its state and how many transitions it made (a read
          model: the state is that of the newest id, so it does not depend
          on the order rows arrive in);
  feed    one row per transition applied (what an outbox or a forwarder
          to another system would write).
An effect outside the database (an email, an HTTP call) cannot join the
transaction: make it idempotent keyed by the history id instead.

LISTEN needs a session of its own on the server: connect directly or
through a pooler in session mode, never transaction pooling.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time

import psycopg
from psycopg import sql
from psycopg.rows import namedtuple_row

log = logging.getLogger("consumer")

# The earliest moment a UUIDv7 holds: a consumer without a checkpoint reads
# history from the beginning.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# The consumer's own tables, in a schema it may create in (made first if
# missing). `processed` is the deduplication set of the re-read window;
# `progress` the checkpoint; `mirror` and `feed` the effect.
SETUP = """
CREATE TABLE IF NOT EXISTS {schema}.progress (
    consumer   text PRIMARY KEY,
    horizon    timestamptz,        -- every history row older than this that
                                   -- will ever commit has been applied (NULL: none yet)
    applied    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz
);
CREATE TABLE IF NOT EXISTS {schema}.processed (
    consumer text,
    id       uuid,                 -- a history id applied, kept while inside the window
    PRIMARY KEY (consumer, id)
);
CREATE TABLE IF NOT EXISTS {schema}.mirror (
    consumer    text,
    key         text,
    state       text NOT NULL,
    transitions bigint NOT NULL,
    last_id     uuid NOT NULL,
    PRIMARY KEY (consumer, key)
);
-- No UNIQUE on (consumer, history_id), on purpose: the test counts doubles.
CREATE TABLE IF NOT EXISTS {schema}.feed (
    seq        bigserial PRIMARY KEY,
    consumer   text NOT NULL,
    history_id uuid NOT NULL,
    key        text NOT NULL,
    event      text,
    from_state text,
    to_state   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

# The horizon's sources. Each batch runs one of them before the statement
# that reads history, so before that statement's snapshot (READ COMMITTED:
# one snapshot per statement). pg_stat_activity is itself a snapshot taken
# at its first read in a transaction, so each batch sees a fresh one.
# Every session of the database counts, busy or idle in transaction, with
# or without an xid yet: the argument rests on when a transaction started,
# which bounds every id it makes, not on when it got an xid.
HORIZON_ACTIVITY = """
SELECT pg_catalog.min(xact_start) FROM pg_catalog.pg_stat_activity
 WHERE datname = pg_catalog.current_database()
   AND backend_type <> 'autovacuum worker'
"""
# now() is this transaction's start, earlier than the history snapshot.
HORIZON_CLOCK = "SELECT pg_catalog.now()"


class Consumer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.name = args.name
        self.schema = sql.Identifier(args.schema)
        self.margin = dt.timedelta(seconds=args.margin)
        self.batch_size = args.batch
        self.ready = False          # tables made, binding looked up
        self.history = None         # sql.Identifier of the history table
        self.channel = None
        # Largest id applied by this process: only to log rows that arrive
        # after a larger one (a late commit), the case the horizon is for.
        self.max_applied = None
        self.applied_total = 0

    # -- the outer loop: connect, follow, reconnect ------------------------

    def run(self) -> int:
        backoff = 0.5
        while True:
            try:
                with psycopg.connect(
                    self.args.dsn,
                    autocommit=True,  # LISTEN takes effect at once; batches BEGIN themselves
                    application_name=f"fsm-consumer:{self.name}",
                    connect_timeout=10,
                    # A silently dead server (network gone) shows as an
                    # error within a minute rather than never.
                    keepalives=1, keepalives_idle=20, keepalives_interval=5, keepalives_count=4,
                ) as conn:
                    log.info("connected (backend pid %d)", conn.info.backend_pid)
                    backoff = 0.5
                    self.follow(conn)
                    log.info("stopping: %d transitions applied by this process", self.applied_total)
                    return 0
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                # Server restart, pg_terminate_backend, network loss: nothing
                # is half-applied (the batch's transaction rolled back), and
                # the next connection catches up from the checkpoint.
                log.warning("connection lost (%s): reconnecting in %.1f s",
                            str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def follow(self, conn: psycopg.Connection) -> None:
        self.lock(conn)
        if not self.ready:
            self.setup(conn)
        # LISTEN before catching up: a transaction that commits after the
        # catch-up's snapshot is announced on this connection, so none falls
        # between the two (one that commits in between is read by the
        # catch-up *and* rings: `processed` makes the second read a no-op).
        # Listening after would leave such a commit unseen until --poll.
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        caught = self.drain(conn)
        log.info("caught up: %d applied; listening on %s", caught, self.channel)
        if self.args.once:
            return
        idle_since = time.monotonic()
        while True:
            wait = self.args.poll
            if self.args.until_idle is not None:
                wait = max(0.0, min(wait, self.args.until_idle - (time.monotonic() - idle_since)))
            # Sleeps until the first notification (or the timeout), then
            # takes whatever else is already there. Notifications that came
            # during a batch were kept by psycopg and show here at once.
            bells = list(conn.notifies(timeout=wait, stop_after=1))
            if bells:
                bells += conn.notifies(timeout=0)
                self.log_bells(bells)
            applied = self.drain(conn)
            if bells or applied:
                idle_since = time.monotonic()
            elif (self.args.until_idle is not None
                  and time.monotonic() - idle_since >= self.args.until_idle):
                log.info("idle for %.1f s", self.args.until_idle)
                return

    # -- once per process / per connection ---------------------------------

    def lock(self, conn: psycopg.Connection) -> None:
        """One instance per consumer name. The lock belongs to the session:
        it goes when the connection does (a killed consumer's backend ends
        as soon as the server sees the socket closed)."""
        key = f"fsm-consumer:{self.args.schema}:{self.name}"
        waited = False
        while not conn.execute("SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended(%s, 0))",
                               [key]).fetchone()[0]:
            if not waited:
                log.info("another instance of %r is running: waiting", self.name)
                waited = True
            time.sleep(0.2)

    def setup(self, conn: psycopg.Connection) -> None:
        """The consumer's tables, the binding's history table and channel,
        and whether the chosen horizon can be trusted."""
        with conn.transaction():
            # Consumers of other names may start at the same moment:
            # CREATE … IF NOT EXISTS is not safe against a concurrent twin.
            conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('fsm-consumer setup', 0))")
            # (CREATE SCHEMA IF NOT EXISTS would need CREATE on the database
            # even where the schema exists.)
            if conn.execute("SELECT pg_catalog.to_regnamespace(%s) IS NULL", [self.args.schema]).fetchone()[0]:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(self.schema))
            conn.execute(sql.SQL(SETUP).format(schema=self.schema))
            conn.execute(sql.SQL("INSERT INTO {}.progress (consumer) VALUES (%s) ON CONFLICT DO NOTHING")
                         .format(self.schema), [self.name])
        found = conn.execute(
            """SELECT n.nspname, c.relname, b.notify
                 FROM fsm.bindings AS b
                 JOIN pg_catalog.pg_class AS c ON c.oid = b.history
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                WHERE b.tbl = %(tbl)s::pg_catalog.regclass
                  AND (%(col)s::text IS NULL OR b.col = %(col)s::name)""",
            {"tbl": self.args.table, "col": self.args.column}).fetchall()
        if len(found) != 1:
            sys.exit(f"consumer: {self.args.table} has {len(found)} bindings"
                     + ("; name one with --column" if len(found) > 1 else ""))
        nspname, relname, channel = found[0]
        if channel is None:
            sys.exit(f"consumer: {self.args.table} is attached without notify => 'channel'")
        self.history = sql.Identifier(nspname, relname)
        self.channel = channel
        if self.args.horizon == "activity":
            seen = conn.execute("SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')").fetchone()[0]
            if not seen:
                sys.exit("consumer: --horizon activity needs to see every session's xact_start: "
                         "GRANT pg_read_all_stats TO <this role>; or use --horizon clock with a --margin "
                         "longer than your longest transaction")
        log.info("following %s.%s (channel %s), horizon from %s, margin %s",
                 nspname, relname, channel, self.args.horizon, self.margin)
        self.ready = True

    # -- reading history ----------------------------------------------------

    def drain(self, conn: psycopg.Connection) -> int:
        """Batches until one comes back short: everything visible is applied."""
        total = 0
        while True:
            n = self.batch(conn)
            total += n
            if n < self.batch_size:
                return total

    def batch(self, conn: psycopg.Connection) -> int:
        """Applies up to --batch unprocessed rows of the window, in id order,
        and moves the checkpoint: one transaction."""
        with conn.transaction(), conn.cursor(row_factory=namedtuple_row) as cur:
            s = self.schema
            horizon = cur.execute(sql.SQL("SELECT horizon FROM {}.progress WHERE consumer = %s FOR UPDATE")
                                  .format(s), [self.name]).fetchone().horizon

            # The new horizon, before the snapshot that reads history.
            new = cur.execute(HORIZON_ACTIVITY if self.args.horizon == "activity" else HORIZON_CLOCK
                              ).fetchone()[0]

            low = EPOCH if horizon is None else max(EPOCH, horizon - self.margin)
            rows = cur.execute(sql.SQL("""
                SELECT h.id, fsm.uuid7_time(h.id) AS at, h.entity_key::text AS key,
                       h.event, h.from_state, h.to_state, h.payload
                  FROM {history} AS h
                 WHERE h.id >= fsm.uuid7(%(low)s)
                   AND NOT EXISTS (SELECT FROM {s}.processed AS p
                                    WHERE p.consumer = %(me)s AND p.id = h.id)
                 ORDER BY h.id
                 LIMIT %(n)s""").format(history=self.history, s=s),
                {"low": low, "me": self.name, "n": self.batch_size}).fetchall()

            # Pipeline mode: the effects' statements go out without waiting
            # for each answer (an error still fails the transaction).
            with conn.pipeline():
                for row in rows:
                    self.apply(cur, row)
                cur.executemany(sql.SQL("INSERT INTO {}.processed (consumer, id) VALUES (%s, %s)").format(s),
                                [(self.name, r.id) for r in rows])

            if len(rows) == self.batch_size:
                # A full batch stopped at its last id: visible rows past it
                # are for the next batch, so the horizon cannot pass it.
                new = min(new, rows[-1].at)
            cur.execute(sql.SQL("""UPDATE {}.progress SET horizon = %s, applied = applied + %s,
                                   updated_at = pg_catalog.now() WHERE consumer = %s""").format(s),
                        [new, len(rows), self.name])
            # Ids below the next batch's window are never read again.
            cur.execute(sql.SQL("DELETE FROM {}.processed WHERE consumer = %s AND id < fsm.uuid7(%s)")
                        .format(s), [self.name, max(EPOCH, new - self.margin)])
        # Committed: only now is it true.
        self.report(rows, new)
        return len(rows)

    def apply(self, cur: psycopg.Cursor, row) -> None:
        """THE EFFECT of one transition. Runs inside the batch's transaction:
        write with `cur` only, so the effect commits with the checkpoint."""
        s = self.schema
        cur.execute(sql.SQL("""INSERT INTO {}.feed (consumer, history_id, key, event, from_state, to_state)
                               VALUES (%s, %s, %s, %s, %s, %s)""").format(s),
                    [self.name, row.id, row.key, row.event, row.from_state, row.to_state])
        # The newest id wins the state: rows of different entities arrive
        # out of id order, and this keeps the mirror right whatever the order.
        cur.execute(sql.SQL("""
            INSERT INTO {}.mirror AS m (consumer, key, state, transitions, last_id)
            VALUES (%s, %s, %s, 1, %s)
            ON CONFLICT (consumer, key) DO UPDATE
               SET transitions = m.transitions + 1,
                   state = CASE WHEN excluded.last_id > m.last_id THEN excluded.state ELSE m.state END,
                   last_id = GREATEST(m.last_id, excluded.last_id)""").format(s),
                    [self.name, row.key, row.to_state, row.id])

    # -- what it did ----------------------------------------------------------

    def report(self, rows, horizon) -> None:
        if not rows:
            return
        self.applied_total += len(rows)
        late = [r for r in rows if self.max_applied is not None and r.id < self.max_applied]
        for r in late:
            log.info("late commit applied: %s (key %s, %s -> %s), older than an id applied before",
                     r.id, r.key, r.from_state, r.to_state)
        top = max(r.id for r in rows)
        self.max_applied = top if self.max_applied is None else max(self.max_applied, top)
        log.info("applied %d (%s .. %s), horizon %s", len(rows), rows[0].id, rows[-1].id, horizon.isoformat())

    def log_bells(self, bells) -> None:
        log.debug("%d notification(s)", len(bells))
        for n in bells:
            try:
                p = json.loads(n.payload)
                log.debug("notified: %s key %s %s: %s -> %s (id %s)",
                          p["table"], p["key"], p["event"], p["from"], p["to"], p["id"])
            except (ValueError, KeyError):
                log.debug("notified: %s", n.payload)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default="", help="libpq connection string (default: PG* environment)")
    p.add_argument("--table", required=True, help="the attached table (regclass text)")
    p.add_argument("--column", help="its state column, where it carries several machines")
    p.add_argument("--name", default="default", help="consumer name: its checkpoint and lock")
    p.add_argument("--schema", default="fsm_consumer", help="schema of the consumer's tables")
    p.add_argument("--horizon", choices=["activity", "clock"], default="activity",
                   help="where the checkpoint's horizon comes from (see the top of this file)")
    p.add_argument("--margin", type=float,
                   help="seconds re-read behind the horizon (default: 1 with activity; "
                        "60 with clock, where it must outlast your longest transaction)")
    p.add_argument("--batch", type=int, default=500, help="rows per transaction")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between reads without notification")
    p.add_argument("--once", action="store_true", help="catch up, then exit")
    p.add_argument("--until-idle", type=float, metavar="SECONDS",
                   help="exit after SECONDS without notification or anything to apply")
    p.add_argument("-v", "--verbose", action="store_true", help="log every notification")
    args = p.parse_args(argv)
    if args.margin is None:
        args.margin = 1.0 if args.horizon == "activity" else 60.0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s consumer {args.name}: %(message)s")
    try:
        return Consumer(args).run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
