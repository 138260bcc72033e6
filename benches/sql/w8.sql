-- W8 schema: a machine with a timed state, and bench.fresh_w8(n), which
-- (re)makes two worlds of n entities whose timeout is due:
--
--   w8_fsm    attached to bench_timer; each row entered `waiting` between
--             2 and 3 hours ago (its history row written as an import
--             would, uuid7 ids at those moments), so its timer (1 hour
--             after) is due and fsm.tick() fires it
--   w8_floor  the same rows and history without fsm (floor-shaped history,
--             as in setup.sql), and the hand-written timers table a user
--             keeps beside it: (entity_key, due), indexed on due
\set ON_ERROR_STOP on
SET client_min_messages = warning;

SELECT fsm.create_machine('bench_timer', '{
  "states": {"waiting": {"initial": true, "timeout": {"after": "1 hour", "event": "expire"}},
             "done": {"final": true}, "expired": {"final": true}},
  "events": {"finish": {"from": "waiting", "to": "done"},
             "expire": {"from": "waiting", "to": "expired"}}
}', replace => true);

CREATE OR REPLACE FUNCTION bench.fresh_w8(n integer) RETURNS void
LANGUAGE plpgsql AS $fresh$
BEGIN
    PERFORM bench.drop_variants('w8');
    CREATE TABLE bench.w8_fsm (id bigint PRIMARY KEY, status text, note integer NOT NULL DEFAULT 0);
    PERFORM fsm.attach('bench.w8_fsm', 'status', 'bench_timer');
    CREATE TABLE bench.w8_floor (id bigint PRIMARY KEY, status text, note integer NOT NULL DEFAULT 0);
    CREATE TABLE bench.w8_floor_history (id uuid PRIMARY KEY, entity_key bigint NOT NULL, event text,
                                         from_state text, to_state text NOT NULL, payload jsonb,
                                         actor text, db_user text NOT NULL DEFAULT current_user);
    CREATE INDEX ON bench.w8_floor_history (entity_key, id);
    CREATE TABLE bench.w8_timers (entity_key bigint PRIMARY KEY, due timestamptz NOT NULL);
    CREATE INDEX ON bench.w8_timers (due);

    -- Entity g entered `waiting` at `entered` (distinct milliseconds, so
    -- fsm.uuid7(entered), the smallest id of its millisecond, is unique;
    -- the random tail of a v4 id makes it look like fsm's own ids).
    CREATE TEMP TABLE w8_facts ON COMMIT DROP AS
    SELECT g::bigint AS id, now() - interval '2 hours' - g * interval '1 ms' * (3600000 / n) AS entered
      FROM generate_series(1, n) g;

    -- Loading facts, not transitions: no trigger may rewrite them.
    SET LOCAL session_replication_role = replica;
    INSERT INTO bench.w8_fsm (id, status) SELECT id, 'waiting' FROM w8_facts;
    INSERT INTO bench.w8_fsm_status_history (id, entity_key, to_state)
    SELECT (left(fsm.uuid7(entered)::text, 19) || substr(gen_random_uuid()::text, 20))::uuid, id, 'waiting'
      FROM w8_facts ORDER BY entered;
    INSERT INTO bench.w8_floor (id, status) SELECT id, 'waiting' FROM w8_facts;
    INSERT INTO bench.w8_floor_history (id, entity_key, to_state)
    SELECT gen_random_uuid(), id, 'waiting' FROM w8_facts ORDER BY entered;
    INSERT INTO bench.w8_timers (entity_key, due) SELECT id, entered + interval '1 hour' FROM w8_facts;
END
$fresh$;
