-- A history partitioned by id range (time), as docs/operations.md does it:
-- a table cannot become partitioned in place, so in one transaction the
-- binding is detached (its history kept), the history renamed, a
-- partitioned table of the same name and columns put in its place with the
-- old history as its first partition, and the machine attached again,
-- which takes the partitioned table back. Here by the table's owner, an
-- ordinary role, with a cutover a few seconds ahead so that both sides of
-- it are seen; docs/operations.md takes the first of a month.
\set SHOW_CONTEXT never
CREATE SCHEMA freight;
CREATE ROLE container_owner NOLOGIN;
CREATE ROLE container_heir NOLOGIN;
CREATE ROLE container_clerk NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA freight TO container_owner, container_heir;
GRANT USAGE ON SCHEMA freight TO container_clerk;
SELECT fsm.create_machine('container', '{
  "states": {"empty": {"initial": true}, "loaded": {}, "sealed": {}, "shipped": {"final": true}},
  "events": {"load": {"from": "empty", "to": "loaded"}, "seal": {"from": "loaded", "to": "sealed"},
             "ship": {"from": "sealed", "to": "shipped"}, "unload": {"from": ["loaded", "sealed"], "to": "empty"}}}');
CREATE TABLE freight.containers (id int PRIMARY KEY, state text);
ALTER TABLE freight.containers OWNER TO container_owner;
GRANT SELECT, UPDATE ON freight.containers TO container_clerk;
SET ROLE container_owner;
SELECT fsm.attach('freight.containers', 'state', 'container');
INSERT INTO freight.containers (id) SELECT g FROM generate_series(1, 4) g;
SELECT fsm.fire('freight.containers', 1, 'load', idempotency_key => 'load-1');
UPDATE freight.containers SET state = 'loaded' WHERE id = 2;

-- Before: the cutover, a CHECK that the old history holds only ids before
-- it (validated without blocking writes: ATTACH PARTITION then needs no
-- scan), and a plain index on idempotency_key that the partitioned index
-- will adopt (a unique index on a partitioned table must hold the
-- partition key, so the parent's cannot be unique on idempotency_key).
SELECT clock_timestamp() + interval '3 seconds' AS cutover_at \gset
SELECT fsm.uuid7(:'cutover_at') AS cutover \gset
ALTER TABLE freight.containers_state_history
  ADD CONSTRAINT containers_state_history_cutover CHECK (id < :'cutover') NOT VALID;
ALTER TABLE freight.containers_state_history VALIDATE CONSTRAINT containers_state_history_cutover;
CREATE INDEX CONCURRENTLY containers_state_history_idempotency
  ON freight.containers_state_history (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The change, in one transaction: writers of the table wait for it.
BEGIN;
SELECT fsm.detach('freight.containers', 'state');
ALTER TABLE freight.containers_state_history RENAME TO containers_state_history_old;
CREATE TABLE freight.containers_state_history (LIKE freight.containers_state_history_old INCLUDING DEFAULTS)
  PARTITION BY RANGE (id);
ALTER TABLE freight.containers_state_history ADD PRIMARY KEY (id);
CREATE INDEX ON freight.containers_state_history (entity_key, id) INCLUDE (event);
CREATE INDEX ON freight.containers_state_history (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TRIGGER fsm_append_only BEFORE UPDATE OR DELETE ON freight.containers_state_history
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
CREATE TRIGGER fsm_append_only_truncate BEFORE TRUNCATE ON freight.containers_state_history
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
ALTER TABLE freight.containers_state_history ATTACH PARTITION freight.containers_state_history_old
  FOR VALUES FROM (MINVALUE) TO (:'cutover');
ALTER TABLE freight.containers_state_history_old DROP CONSTRAINT containers_state_history_cutover;
-- Partitions from the cutover on. Statement triggers are not cloned to
-- partitions, and a statement aimed at a partition fires only that
-- partition's: each partition gets fsm's two append-only triggers.
CREATE TABLE freight.containers_state_history_p1 PARTITION OF freight.containers_state_history
  FOR VALUES FROM (:'cutover') TO (fsm.uuid7(:'cutover_at'::timestamptz + interval '1 month'));
CREATE TABLE freight.containers_state_history_p2 PARTITION OF freight.containers_state_history
  FOR VALUES FROM (fsm.uuid7(:'cutover_at'::timestamptz + interval '1 month'))
               TO (fsm.uuid7(:'cutover_at'::timestamptz + interval '2 months'));
CREATE TRIGGER fsm_append_only BEFORE UPDATE OR DELETE ON freight.containers_state_history_p1
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
CREATE TRIGGER fsm_append_only_truncate BEFORE TRUNCATE ON freight.containers_state_history_p1
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
CREATE TRIGGER fsm_append_only BEFORE UPDATE OR DELETE ON freight.containers_state_history_p2
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
CREATE TRIGGER fsm_append_only_truncate BEFORE TRUNCATE ON freight.containers_state_history_p2
  FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
-- attach takes the partitioned table back (same name, fsm's append-only
-- trigger, the key type, no binding) and goes on with it.
SELECT fsm.attach('freight.containers', 'state', 'container');
COMMIT;
SELECT tbl, col, machine, history, protect, notify FROM fsm.bindings WHERE machine = 'container';
SELECT relkind FROM pg_class WHERE oid = 'freight.containers_state_history'::regclass;

-- The old history was adopted whole: its indexes serve the partitioned
-- ones (none was built again; its unique index on idempotency_key stays,
-- on its own), and its triggers stayed.
SELECT i.indexrelid::regclass AS index, i.indisunique AS "unique",
       (SELECT p.inhparent::regclass FROM pg_inherits p WHERE p.inhrelid = i.indexrelid) AS serves
  FROM pg_index i WHERE i.indrelid = 'freight.containers_state_history_old'::regclass ORDER BY 1::text;
SELECT c.relname AS "table", string_agg(g.tgname, ', ' ORDER BY g.tgname) AS triggers
  FROM pg_class c JOIN pg_trigger g ON g.tgrelid = c.oid AND NOT g.tgisinternal
 WHERE c.relnamespace = 'freight'::regnamespace AND c.relname LIKE 'containers_state_history%'
 GROUP BY 1 ORDER BY 1;

-- Before the cutover, moves land in the old history (through the
-- partitioned table); after it, in the partition that holds their id's
-- moment. fire's one-row append writes heap tuples only into a plain
-- history table: for a partitioned one it takes the INSERT, which routes.
SELECT fsm.fire('freight.containers', 3, 'load');
SELECT pg_sleep(greatest(0, extract(epoch FROM :'cutover_at'::timestamptz - clock_timestamp())) + 0.05);
SELECT fsm.fire('freight.containers', 1, 'seal');
UPDATE freight.containers SET state = 'sealed' WHERE id = 2;
UPDATE freight.containers SET state = 'loaded' WHERE id IN (4, 3);
INSERT INTO freight.containers (id) VALUES (5);
SELECT fsm.fire('freight.containers', 3, 'seal', idempotency_key => 'seal-3');
SELECT h.tableoid::regclass AS partition, h.entity_key, h.event, h.from_state, h.to_state,
       h.idempotency_key, h.id < :'cutover' AS before_cutover
  FROM freight.containers_state_history h ORDER BY h.id;
-- Each row is in the partition its id belongs to, and each entity's
-- history replays as a chain across partitions.
SELECT bool_and(h.tableoid = CASE WHEN h.id < :'cutover' THEN 'freight.containers_state_history_old'::regclass
                                  ELSE 'freight.containers_state_history_p1'::regclass END) AS routed_by_id,
       count(*) AS rows
  FROM freight.containers_state_history h;
SELECT c.id, bool_and(h.from_state IS NOT DISTINCT FROM h.previous) AS chained,
       (array_agg(h.to_state ORDER BY h.id DESC))[1] = c.state AS ends_in_column
  FROM freight.containers c
  JOIN (SELECT entity_key, id, from_state, to_state, lag(to_state) OVER (PARTITION BY entity_key ORDER BY id) AS previous
          FROM freight.containers_state_history) h ON h.entity_key = c.id
 GROUP BY c.id, c.state ORDER BY c.id;

-- The read functions and idempotency keys work across partitions.
SELECT event, from_state, to_state FROM fsm.history('freight.containers', 1);
SELECT count(*) AS changes_since_cutover FROM fsm.changes('freight.containers', since => :'cutover_at');
SELECT count(*) AS changes_before_cutover FROM fsm.changes('freight.containers', until => :'cutover_at');
SELECT entity_key, state, last_event FROM fsm.current_states('freight.containers', ARRAY[1, 2, 3, 4, 5]);
SELECT entity_key, state FROM fsm.states_at('freight.containers', ARRAY[1, 2, 3, 4, 5], :'cutover_at');
SELECT state, entered, still_in, next FROM fsm.state_stats('freight.containers') ORDER BY state;
SELECT entity_key, state, entered
  FROM fsm.time_in_state('freight.containers', ARRAY[1, 3], :'cutover_at'::timestamptz - interval '1 hour',
                         :'cutover_at'::timestamptz + interval '1 hour')
 ORDER BY 1, 2;
-- A retry of a key recorded before the cutover (old history) and of one
-- recorded after it (p1): the recorded state, nothing moves.
SELECT fsm.fire('freight.containers', 1, 'load', idempotency_key => 'load-1');
SELECT fsm.fire('freight.containers', 3, 'seal', idempotency_key => 'seal-3');
-- The same key for another entity: 22023, as before. Keys stay unique per
-- binding without a unique index: fire serialises each key on a
-- transaction lock and looks it up before it moves.
\set VERBOSITY terse
SELECT fsm.fire('freight.containers', 4, 'seal', idempotency_key => 'load-1');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('freight.containers', 4, 'seal', idempotency_key => 'seal-3');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT count(*) AS rows, count(DISTINCT idempotency_key) AS keys
  FROM freight.containers_state_history WHERE idempotency_key IS NOT NULL;

-- A time window on the history's id skips the partitions outside it: the
-- plan's pruned subplans, and the partitions it scans (however it scans).
CREATE FUNCTION freight.scans(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line ~ 'Subplans Removed' THEN
            RETURN NEXT trim(line);
        ELSIF line ~ ' on containers_state_history' THEN
            RETURN NEXT 'scans ' || (regexp_match(line, ' on (containers_state_history\w*)'))[1];
        END IF;
    END LOOP;
END $$;
SELECT freight.scans('SELECT count(*) FROM freight.containers_state_history WHERE id >= fsm.uuid7(now())');

-- Append-only, as before: UPDATE, DELETE and TRUNCATE are refused on the
-- partitioned table and on each partition (the old one kept its triggers),
-- for its owner too.
\set VERBOSITY terse
UPDATE freight.containers_state_history SET actor = 'x';
DELETE FROM freight.containers_state_history;
TRUNCATE freight.containers_state_history;
UPDATE freight.containers_state_history_old SET actor = 'x';
DELETE FROM freight.containers_state_history_old;
TRUNCATE freight.containers_state_history_old;
DELETE FROM freight.containers_state_history_p1;
UPDATE freight.containers_state_history_p1 SET actor = 'x';
TRUNCATE freight.containers_state_history_p1;
DELETE FROM freight.containers_state_history_p2;
TRUNCATE freight.containers_state_history_p2;
\set VERBOSITY default
SELECT count(*) AS rows FROM freight.containers_state_history;
RESET ROLE;

-- Rights, as before: a role that may read and update the table, and has
-- no right on its history, reads the history only through fsm's functions.
SET ROLE container_clerk;
\set VERBOSITY terse
SELECT count(*) FROM freight.containers_state_history;
SELECT count(*) FROM freight.containers_state_history_old;
SELECT count(*) FROM freight.containers_state_history_p1;
\set VERBOSITY default
SELECT fsm.fire('freight.containers', 4, 'seal');
SELECT count(*) AS rows_of_4 FROM fsm.history('freight.containers', 4);
RESET ROLE;
REVOKE SELECT ON freight.containers FROM container_clerk;
SET ROLE container_clerk;
\set VERBOSITY terse
SELECT count(*) FROM fsm.history('freight.containers', 4);
\set VERBOSITY default
RESET ROLE;

-- Ownership. The partitions belong to the table's owner, as the history
-- does. ALTER TABLE … OWNER TO does not recurse to partitions; fsm moves
-- the history table and each of its partitions with the table, so the new
-- owner writes, and may drop old partitions (retention, below).
ALTER TABLE freight.containers OWNER TO container_heir;
SELECT c.relname AS "table", pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c WHERE c.relnamespace = 'freight'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1;
SET ROLE container_heir;
SELECT fsm.fire('freight.containers', 5, 'load');
RESET ROLE;

-- Retention: an old partition is detached (kept as a plain table, to
-- archive) or dropped. fsm's guard against dropping a history table
-- concerns the binding's history, the partitioned table, not a partition.
SET ROLE container_heir;
\set VERBOSITY terse
DROP TABLE freight.containers_state_history;
\set VERBOSITY default
ALTER TABLE freight.containers_state_history DETACH PARTITION freight.containers_state_history_old;
DROP TABLE freight.containers_state_history_old;
-- What remains reads correctly, from the cutover on: history starts at the
-- first kept row, and the analytics count only what is kept (entered
-- counts arrivals since the cutover; an entity's stay before its first
-- kept row is not known any more).
SELECT event, from_state, to_state FROM fsm.history('freight.containers', 1);
SELECT count(*) AS changes FROM fsm.changes('freight.containers');
SELECT entity_key, state, last_event FROM fsm.current_states('freight.containers', ARRAY[1, 2, 3, 4, 5]);
SELECT entity_key, state FROM fsm.states_at('freight.containers', ARRAY[1, 2, 3, 4, 5], :'cutover_at');
SELECT state, entered, still_in, next FROM fsm.state_stats('freight.containers') ORDER BY state;
-- Idempotency keys are forgotten with their partition: a retry of load-1
-- is a new request now (refused here, since container 1 moved on).
\set VERBOSITY terse
SELECT fsm.fire('freight.containers', 1, 'load', idempotency_key => 'load-1');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT fsm.fire('freight.containers', 3, 'seal', idempotency_key => 'seal-3');

-- A moment no partition holds fails the move (23514), and nothing changes:
-- partitions must be made ahead of time.
ALTER TABLE freight.containers_state_history DETACH PARTITION freight.containers_state_history_p1;
\set VERBOSITY terse
UPDATE freight.containers SET state = 'shipped' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('freight.containers', 2, 'ship');
INSERT INTO freight.containers (id) VALUES (6);
\set VERBOSITY default
SELECT id, state FROM freight.containers ORDER BY id;
ALTER TABLE freight.containers_state_history ATTACH PARTITION freight.containers_state_history_p1
  FOR VALUES FROM (:'cutover') TO (fsm.uuid7(:'cutover_at'::timestamptz + interval '1 month'));
UPDATE freight.containers SET state = 'shipped' WHERE id = 1;
SELECT count(*) AS rows FROM freight.containers_state_history;

-- Detaching keeps the partitioned history, and attaching takes it back
-- again; drop_history drops it with its partitions.
SELECT fsm.detach('freight.containers', 'state');
SELECT fsm.attach('freight.containers', 'state', 'container');
SELECT count(*) AS rows FROM fsm.changes('freight.containers');
SELECT fsm.detach('freight.containers', 'state', drop_history => true);
RESET ROLE;
SELECT count(*) AS history_tables_left FROM pg_class
 WHERE relnamespace = 'freight'::regnamespace AND relname LIKE 'containers_state_history%' AND relkind IN ('r', 'p');
