#!/usr/bin/env bash
# Faults: a backend killed with SIGKILL in the middle of transitions (a
# 200,000-row UPDATE while it runs; an open transaction after fires and
# UPDATEs) takes nothing half-written with it. After crash recovery every
# entity's state equals the to_state of its newest history row, every
# history replays as a chain, nothing of the killed transactions remains,
# everything committed before is there, and the server goes on.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FSM_PG_OPTS="-c fsync=on"
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
fail() { echo "FAIL: $*"; exit 1; }
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

q <<'SQL' >/dev/null
CREATE EXTENSION fsm;
SELECT fsm.create_machine('job', '{
  "states": {"queued": {"initial": true}, "running": {}, "done": {"final": true}},
  "events": {"start": {"from": "queued", "to": "running"}, "finish": {"from": "running", "to": "done"}}}');
CREATE TABLE jobs (id int PRIMARY KEY, status text);
SELECT fsm.attach('jobs', 'status', 'job');
INSERT INTO jobs (id) SELECT generate_series(1, 200000);
CREATE TABLE tasks (id int PRIMARY KEY, status text);
SELECT fsm.attach('tasks', 'status', 'job');
INSERT INTO tasks (id) SELECT generate_series(1, 10);
-- Committed before any kill: must all survive.
SELECT fsm.fire('tasks', 1, 'start');
SELECT fsm.fire('tasks', 1, 'finish');
UPDATE tasks SET status = 'running' WHERE id IN (2, 3);
SQL

# kill_backend <application_name>: SIGKILL its backend, wait for recovery.
kill_backend() {
  local pid=""
  for _ in $(seq 1 100); do
    pid=$(q -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1' AND state <> 'idle'" || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || fail "no busy backend named $1 to kill"
  sleep "${2:-0}"
  kill -9 "$pid"
  for _ in $(seq 1 100); do
    sleep 0.2
    q -At -c 'SELECT 1' >/dev/null 2>&1 && return 0
  done
  fail "the server did not come back after killing $1"
}

# (a) Killed while a 200,000-row UPDATE runs (its AFTER triggers or its
# history append in flight).
PGAPPNAME=bulk psql -X -q -c "UPDATE jobs SET status = 'running'" >/dev/null 2>&1 &
kill_backend bulk 0.5
wait || true
# (b) Killed inside an open transaction, after fires and UPDATEs.
PGAPPNAME=open psql -X -q >/dev/null 2>&1 <<'SQL' &
BEGIN;
SELECT fsm.fire('tasks', 4, 'start');
UPDATE tasks SET status = 'running' WHERE id IN (5, 6);
UPDATE tasks SET status = 'done' WHERE id = 2;
SELECT pg_sleep(60);
COMMIT;
SQL
kill_backend open 0.5
wait || true

check() {
  [ "$(q -At -c "$1")" = "$2" ] || fail "$3 (query: $1; expected $2, got $(q -At -c "$1"))"
  echo "ok $3"
}
check "SELECT count(*) FROM jobs WHERE status <> 'queued'" 0 "no job kept a move of the killed UPDATE"
check "SELECT count(*) FROM jobs_status_history WHERE event IS NOT NULL" 0 "no history row of the killed UPDATE"
check "SELECT count(*) FROM jobs_status_history" 200000 "every job keeps its INSERT row"
check "SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM tasks WHERE status <> 'queued'" \
      "1:done 2:running 3:running" "what committed before the kills is there, nothing of the open transaction"
for t in jobs tasks; do
  check "SELECT count(*) FROM $t e WHERE e.status IS DISTINCT FROM
           (SELECT h.to_state FROM ${t}_status_history h WHERE h.entity_key = e.id ORDER BY h.id DESC LIMIT 1)" 0 \
        "$t: every state equals its newest history row"
  check "SELECT count(*) FROM (SELECT from_state, lag(to_state) OVER (PARTITION BY entity_key ORDER BY id) AS previous
                                 FROM ${t}_status_history) c WHERE from_state IS DISTINCT FROM previous" 0 \
        "$t: every history replays as a chain"
done
check "SELECT fsm.fire('tasks', 3, 'finish')" done "the server goes on: a fire after recovery"
check "SELECT count(*) FROM tasks_status_history WHERE entity_key = 3" 3 "and it is recorded once"
