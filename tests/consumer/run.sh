#!/usr/bin/env bash
# The live consumer (examples/consumer/consumer.py) never misses a
# transition and never applies one twice, whatever happens to it.
#
# A throwaway cluster; a table attached with notify; two consumers
# following it as a non-superuser role, A with the exact horizon
# (--horizon activity), B with the clock and a margin (--horizon clock
# --margin 10). For ~15 s, pgbench clients fire, fire twice per
# transaction, UPDATE ten rows at once and insert entities; meanwhile three
# transactions move entities and commit seconds later (two sleeping in a
# statement, one idle in transaction), so rows with smaller ids become
# visible after larger ones were applied. The consumers are killed with
# SIGKILL seven times at different moments (restarted at once, or after a
# backlog built up; four times as soon as the consumer's backend is seen
# inside a batch, one of them during the catch-up after a restart), and
# their backends are ended once from the server (pg_terminate_backend: they
# reconnect). When the producers are done the consumers drain and exit on
# idle.
#
# Asserted, per consumer: the history ids it applied (its feed) are exactly
# the history table's ids (none missing, none unknown, none twice); its
# mirror holds every entity in the table's state with as many transitions
# as the entity has history rows; at least one row was applied after a
# larger id (the late commits happened and were caught); it reconnected
# after pg_terminate_backend. Exits non-zero on any mismatch. Also prints
# each consumer's lag (from a row's id to its effect's commit).
#
# CONSUMER_B_MARGIN (default 10) sets B's margin: with 0, B misses the late
# commits and the test fails (how it was checked to catch that bug).
# Needs fsm installed, and the Python venv of integrations/django/venv.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
venv=$(bash integrations/django/venv.sh | tail -n 1)
py="$venv/bin/python"
source scripts/throwaway-pg.sh
logs=""
fail() {
  echo "consumer: FAILED: $*" >&2
  jobs -p | xargs -r kill 2>/dev/null || true  # producers and consumers still running
  if [ -n "$logs" ]; then  # $PG_TMP goes at exit: keep the consumers' logs
    kept=$(mktemp -d /tmp/fsm-consumer-logs.XXXXXX); cp "$logs"/* "$kept"/
    echo "consumer: logs kept in $kept" >&2
  fi
  exit 1
}
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
started=$SECONDS

q >/dev/null <<'SQL'
CREATE EXTENSION fsm;
SELECT fsm.create_machine('light', '{
  "states": {"red": {"initial": true}, "green": {}, "blue": {}},
  "events": {"next": [{"from": "red", "to": "green"}, {"from": "green", "to": "blue"},
                      {"from": "blue", "to": "red"}]}}');
CREATE TABLE items (id bigint PRIMARY KEY, status text);
SELECT fsm.attach('items', 'status', 'light', notify => 'items_moved');
CREATE SEQUENCE item_ids START 10000;
INSERT INTO items (id) SELECT generate_series(1, 300);
INSERT INTO items (id) VALUES (9001), (9002), (9003), (9004);
-- The consumers' role: reads the history (granted by the table's owner),
-- sees every session's xact_start (A's horizon), keeps its own tables.
CREATE ROLE follower LOGIN;
GRANT SELECT ON items_status_history TO follower;
GRANT pg_read_all_stats TO follower;
CREATE SCHEMA fsm_consumer AUTHORIZATION follower;
SQL

logs=$PG_TMP/logs
mkdir -p "$logs"
declare -A pid
# start_consumer A|B: in the background, as follower, logging to $logs/<name>.log.
start_consumer() {
  local how
  case $1 in
    A) how=(--horizon activity) ;;
    B) how=(--horizon clock --margin "${CONSUMER_B_MARGIN:-10}") ;;
  esac
  "$py" examples/consumer/consumer.py --dsn "user=follower" --table items --name "$1" \
    "${how[@]}" --batch 200 --until-idle 4 >>"$logs/$1.log" 2>&1 &
  pid[$1]=$!
}
kills=0
busy_kills=0
# kill_consumer A|B [why]: SIGKILL, now.
kill_consumer() {
  kill -9 "${pid[$1]}" 2>/dev/null || { tail -n 20 "$logs/$1.log" >&2; fail "consumer $1 died before it was killed"; }
  wait "${pid[$1]}" 2>/dev/null || true; kills=$((kills + 1))
  echo "consumer: t=$((SECONDS - started))s SIGKILL $1${2:+ ($2)}"
}
# kill_busy A|B: SIGKILL as soon as its backend is seen inside a batch
# (a consumer that keeps up is idle most of the time, and a kill there
# proves less). Gives up waiting after ~3 s and kills anyway.
kill_busy() {
  local state=""
  for _ in $(seq 1 200); do
    state=$(q -At -c "SELECT state FROM pg_stat_activity WHERE application_name = 'fsm-consumer:$1'")
    case $state in active | "idle in transaction") busy_kills=$((busy_kills + 1)); break ;; esac
  done
  kill_consumer "$1" "its backend was ${state:-gone}"
}

start_consumer A
start_consumer B
sleep 1

# Producers: ~15 s of pgbench (deadlocks between pair and bulk are retried).
"$PGBIN/pgbench" -n -c 4 -j 2 -T 15 -R 250 --max-tries=20 \
  -f tests/consumer/fire.pgbench@5 -f tests/consumer/pair.pgbench@2 \
  -f tests/consumer/bulk.pgbench@1 -f tests/consumer/insert.pgbench@1 \
  >"$logs/pgbench.log" 2>&1 &
pgbench_pid=$!
# Late commits: rows whose ids are seconds older than their commit.
( sleep 1; q -c "BEGIN" -c "SELECT fsm.fire('items', 9001, 'next')" \
    -c "UPDATE items SET status = 'green' WHERE id = 9002" -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null ) &
late1=$!
( sleep 6; { echo "BEGIN; SELECT fsm.fire('items', 9003, 'next');"; sleep 4; echo "COMMIT;"; } | q >/dev/null ) &
late2=$!
( sleep 9.5; q -c "BEGIN" -c "SELECT fsm.fire('items', 9004, 'next')" -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null ) &
late3=$!

# Faults, at different moments of the stream.
sleep 2.5; kill_consumer A; start_consumer A                      # restarted at once
sleep 1;   kill_consumer B; sleep 2; start_consumer B             # after a backlog built up
kill_busy B; start_consumer B                                     # during its catch-up
sleep 2
terminated=$(q -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                        WHERE application_name IN ('fsm-consumer:A', 'fsm-consumer:B')")
echo "consumer: t=$((SECONDS - started))s pg_terminate_backend of $terminated consumer backends"
sleep 2;   kill_busy A; start_consumer A                          # while a late one is idle in transaction
sleep 1.5; kill_busy B; start_consumer B
sleep 1;   kill_busy A; kill_consumer B; start_consumer A; start_consumer B

wait "$pgbench_pid" || { cat "$logs/pgbench.log"; fail "pgbench"; }
for job in "$late1" "$late2" "$late3"; do wait "$job" || fail "a late-commit transaction failed"; done
grep -E "^number of (transactions actually processed|failed)" "$logs/pgbench.log" | sed 's/^/consumer: pgbench: /'
echo "consumer: t=$((SECONDS - started))s producers done; waiting for the consumers to drain"
for c in A B; do
  for _ in $(seq 1 120); do kill -0 "${pid[$c]}" 2>/dev/null || break; sleep 0.5; done
  kill -0 "${pid[$c]}" 2>/dev/null && fail "consumer $c still running 60 s after the producers"
  wait "${pid[$c]}" || { tail -n 20 "$logs/$c.log"; fail "consumer $c exited with an error"; }
done

status=0
for c in A B; do
  result=$(q -At -F ' ' -v c="$c" <<'SQL'
WITH f AS (SELECT history_id AS id, count(*) AS n FROM fsm_consumer.feed
            WHERE consumer = :'c' GROUP BY history_id),
     h AS (SELECT id, entity_key FROM items_status_history),
     m AS (SELECT * FROM fsm_consumer.mirror WHERE consumer = :'c'),
     ordered AS (SELECT history_id::text COLLATE "C" AS id,
                        max(history_id::text COLLATE "C") OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING
                                                                          AND 1 PRECEDING) AS before
                   FROM fsm_consumer.feed WHERE consumer = :'c')
SELECT (SELECT count(*) FROM h),
       (SELECT coalesce(sum(n), 0) FROM f),
       (SELECT count(*) FROM h WHERE NOT EXISTS (SELECT FROM f WHERE f.id = h.id)),
       (SELECT count(*) FROM f WHERE NOT EXISTS (SELECT FROM h WHERE h.id = f.id)),
       (SELECT count(*) FROM f WHERE n > 1),
       (SELECT count(*) FROM items AS i FULL JOIN m ON m.key = i.id::text
         WHERE m.state IS DISTINCT FROM i.status
            OR m.transitions IS DISTINCT FROM (SELECT count(*) FROM h WHERE h.entity_key = i.id)),
       (SELECT count(*) FROM ordered WHERE id < before)
SQL
)
  read -r history applied missing unknown doubled wrong late <<<"$result"
  reconnects=$(grep -c "connection lost" "$logs/$c.log" || true)
  # Informational: from a row's id (made at its write) to its effect's commit; downtime included.
  lag=$(q -At -F / -v c="$c" <<<"SELECT round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY d)) * 1000),
                                        round(extract(epoch FROM percentile_cont(0.95) WITHIN GROUP (ORDER BY d)) * 1000)
                                   FROM (SELECT applied_at - fsm.uuid7_time(history_id) AS d
                                           FROM fsm_consumer.feed WHERE consumer = :'c') AS x")
  echo "consumer $c: history rows $history, applied $applied; missing $missing, unknown $unknown," \
       "applied twice $doubled, entities wrong $wrong; applied after a larger id $late; reconnects $reconnects;" \
       "lag median/p95 $lag ms"
  if [ "$missing" != 0 ] || [ "$unknown" != 0 ] || [ "$doubled" != 0 ] || [ "$wrong" != 0 ] \
     || [ "$applied" != "$history" ]; then
    echo "consumer $c: FAILED (the feed differs from the history)" >&2
    status=1
  fi
  [ "$late" -gt 0 ] || { echo "consumer $c: FAILED (no late commit was seen: the test did not test)" >&2; status=1; }
  [ "$reconnects" -gt 0 ] || { echo "consumer $c: FAILED (it did not reconnect after pg_terminate_backend)" >&2; status=1; }
done
echo "consumer: $kills SIGKILLs ($busy_kills seen inside a batch); $((SECONDS - started)) s"
[ "$status" = 0 ] || fail "see above"
echo "consumer: ok"
