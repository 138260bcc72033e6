"""The order lifecycle as a Django application runs it: create an order,
then pay, ship, deliver, each a request of its own (the order's key comes
with the request) that moves it in a transaction of its own. Four
variants, interleaved round by round on one server (BENCH.md):

  django-fsm-2 + log        atomic(): get, order.pay(), save(); the StateLog
                            row is written by django-fsm-log's signal.
                            django-fsm-2 checks the state it loaded, so it
                            must load the order first
  fsm (fire by key)         Order(pk=pk).fire("pay"): the database checks
                            the state, so nothing is loaded; fire is its
                            own transaction
  fsm (get, fire)           get, order.fire("pay"): for a request that reads
                            the order anyway
  fsm (get, fire in atomic) atomic(): get, order.fire("pay")
                            (ATOMIC_REQUESTS)

Every variant commits four times per lifecycle. Where the time goes: the
client's CPU (Python, Django, psycopg), the server backend's CPU (read
from /proc, same machine), and the rest (waiting: round trips, WAL
flushes); and the statements each lifecycle sends.

  python bench.py --mode short|full --out FILE.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    USE_TZ=True,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_fsm_log", "fsm_django", "lifecycle"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "postgres"),
            "USER": os.environ.get("PGUSER", ""),
            "HOST": os.environ.get("PGHOST", ""),
            "PORT": os.environ.get("PGPORT", ""),
            "CONN_MAX_AGE": None,
        }
    },
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from lifecycle.models import MACHINE, FsmOrder, LegacyOrder  # noqa: E402

EVENTS = ("pay", "ship", "deliver")


def legacy_lifecycle() -> None:
    pk = LegacyOrder.objects.create().pk
    for event in EVENTS:
        with transaction.atomic():
            order = LegacyOrder.objects.get(pk=pk)
            getattr(order, event)()
            order.save()


def fsm_by_key_lifecycle() -> None:
    pk = FsmOrder.objects.create().pk
    for event in EVENTS:
        FsmOrder(pk=pk).fire(event)


def fsm_lifecycle() -> None:
    pk = FsmOrder.objects.create().pk
    for event in EVENTS:
        FsmOrder.objects.get(pk=pk).fire(event)


def fsm_atomic_lifecycle() -> None:
    pk = FsmOrder.objects.create().pk
    for event in EVENTS:
        with transaction.atomic():
            FsmOrder.objects.get(pk=pk).fire(event)


VARIANTS = {
    "django-fsm-2 + django-fsm-log": legacy_lifecycle,
    "fsm (fire by key)": fsm_by_key_lifecycle,
    "fsm (get, fire)": fsm_lifecycle,
    "fsm (get, fire in atomic)": fsm_atomic_lifecycle,
}
BASELINE = "django-fsm-2 + django-fsm-log"


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the server backend `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def statements(run, n: int) -> float:
    """Statements one lifecycle sends, transaction control included."""
    sent = []

    def count(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        for _ in range(n):
            run()
    # Django's atomic sends BEGIN (psycopg, on the first statement) and COMMIT
    # outside execute_wrapper: two per transaction block.
    return len(sent) / n


def set_up() -> int:
    call_command("migrate", verbosity=0, run_syncdb=True)
    with connection.cursor() as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS fsm")
        c.execute("SELECT count(*) FROM fsm.machines WHERE name = 'bench_order'")
        if c.fetchone()[0] == 0:
            c.execute("SELECT fsm.create_machine('bench_order', %s::jsonb)", [json.dumps(MACHINE)])
            c.execute("SELECT fsm.attach('lifecycle_fsmorder', 'status', 'bench_order')")
        c.execute("SELECT pg_backend_pid()")
        return c.fetchone()[0]


def measure(n: int, rounds: int, sync_commit: str) -> dict:
    pid = set_up()
    with connection.cursor() as c:
        c.execute("SELECT set_config('synchronous_commit', %s, false)", [sync_commit])
    for run in VARIANTS.values():  # warm: caches, plans, the machine's binding
        for _ in range(max(20, n // 10)):
            run()
    per = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            run = VARIANTS[name]
            wall0, cpu0, srv0 = time.perf_counter(), time.process_time(), backend_cpu(pid)
            for _ in range(n):
                run()
            wall, cpu, srv = time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu(pid) - srv0
            per[name].append({"rate": n / wall, "wall": wall / n, "client": cpu / n, "server": srv / n})
    counts = {name: statements(run, 20) for name, run in VARIANTS.items()}
    transactions = {name: 3 if "atomic" in name or name == BASELINE else 0 for name in VARIANTS}
    result = {}
    for name, runs in per.items():
        result[name] = {
            "rate": statistics.median(x["rate"] for x in runs),
            "wall_ms": statistics.median(x["wall"] for x in runs) * 1e3,
            "client_ms": statistics.median(x["client"] for x in runs) * 1e3,
            "server_ms": statistics.median(x["server"] for x in runs) * 1e3,
            "ratio": statistics.median(x["rate"] / b["rate"] for x, b in zip(runs, per[BASELINE])),
            "statements": counts[name] + 2 * transactions[name],
        }
    return result


def verify() -> None:
    """Both sides did the whole work: every order delivered, and one log
    or history row per move (fsm's also records the INSERT)."""
    from django_fsm_log.models import StateLog

    legacy, fsm = LegacyOrder.objects.count(), FsmOrder.objects.count()
    assert LegacyOrder.objects.exclude(status="delivered").count() == 0
    assert FsmOrder.objects.exclude(status="delivered").count() == 0
    assert StateLog.objects.count() == 3 * legacy, "a StateLog row per transition"
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM lifecycle_fsmorder_status_history")
        assert c.fetchone()[0] == 4 * fsm, "a history row per INSERT and per transition"


def report(results: dict, args, server: str) -> str:
    lines = [
        f"# Django order lifecycle ({date.today()}, {args.mode} mode)",
        "",
        "`benches/django/run.sh`: create an order, then pay, ship and deliver it, each",
        "transition a request of its own (load the order, move it, commit), through",
        "Django 5.2 and psycopg 3 on one connection. Variants interleaved, rotating",
        f"their order each round; {args.rounds} rounds of {args.n} lifecycles; medians.",
        f"Server: {server}; fsync on; client and server on the same machine (Unix socket).",
        "",
    ]
    for sync_commit, rows in results.items():
        lines += [
            f"## synchronous_commit = {sync_commit}",
            "",
            "| variant | lifecycles/s | × django-fsm-2 + log | ms per lifecycle | client CPU ms | server CPU ms | other ms | statements |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            other = r["wall_ms"] - r["client_ms"] - r["server_ms"]
            lines.append(
                f"| {name} | {r['rate']:.0f} | {r['ratio']:.2f} | {r['wall_ms']:.2f} | {r['client_ms']:.2f} "
                f"| {r['server_ms']:.2f} | {other:.2f} | {r['statements']:.0f} |"
            )
        lines.append("")
    lines += [
        "Statements per lifecycle count BEGIN and COMMIT of each `atomic` block.",
        "'other' is the wall time neither process spent on CPU: waiting on each",
        "other across round trips, and on the WAL flush of each commit.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["smoke", "short", "full"], default="short")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.n, args.rounds = {"smoke": (5, 2), "short": (200, 3), "full": (1000, 7)}[args.mode]
    with connection.cursor() as c:
        c.execute("SHOW server_version")
        server = "PostgreSQL " + c.fetchone()[0]
    results = {s: measure(args.n, args.rounds, s) for s in ("on", "off")}
    verify()
    text = report(results, args, server)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
