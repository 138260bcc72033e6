-- What the owner of a history table may add to it, and what a transition's
-- history row then goes through. While the table is what attach made, a
-- one-row transition writes its row without the executor; whatever the
-- owner adds (constraints, indexes, columns, triggers, policies, grants)
-- applies to that row exactly as to an INSERT.
\set SHOW_CONTEXT never
SELECT fsm.create_machine('kettle', '{
  "states": {"off": {"initial": true}, "on": {}, "broken": {}, "gone": {"final": true}},
  "events": {"switch_on": {"from": "off", "to": "on"},
             "switch_off": {"from": "on", "to": "off"},
             "break": {"from": ["off", "on"], "to": "broken"},
             "scrap": {"from": "*", "to": "gone"}}
}');
CREATE TABLE kettles (id int PRIMARY KEY, state text);
SELECT fsm.attach('kettles', 'state', 'kettle') AS history_table;
-- History rows are written as the history table's owner, which follows the
-- table's: an ordinary role here, so grants and policies bind it.
CREATE ROLE kettle_keeper NOLOGIN;
ALTER TABLE kettles OWNER TO kettle_keeper;
SELECT pg_get_userbyid(relowner) AS history_owner FROM pg_class WHERE oid = 'kettles_state_history'::regclass;
CREATE ROLE electrician NOLOGIN;
GRANT SELECT, INSERT, UPDATE ON kettles TO electrician;
SET fsm.actor = 'shift:1';
INSERT INTO kettles (id) SELECT g FROM generate_series(1, 6) g;

-- Rows written one by one keep every index of the table: read back through
-- each index alone, they are all there.
SET ROLE electrician;
UPDATE kettles SET state = 'on' WHERE id = 1;
SELECT fsm.fire('kettles', 2, 'switch_on', '{"watts": 40}');
SELECT fsm.fire('kettles', 3, 'switch_on', idempotency_key => 'req-3');
RESET ROLE;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT entity_key, event, from_state, to_state, payload, actor, db_user, machine_version, idempotency_key
  FROM kettles_state_history WHERE entity_key IN (1, 2, 3) AND event IS NOT NULL ORDER BY entity_key;
SELECT count(*) AS by_primary_key
  FROM kettles_state_history h WHERE h.id IN (SELECT id FROM fsm.history('kettles', 1) UNION ALL SELECT id FROM fsm.history('kettles', 2));
SELECT entity_key FROM kettles_state_history WHERE idempotency_key = 'req-3';
RESET enable_seqscan;
RESET enable_bitmapscan;

-- A CHECK constraint: a transition whose row it refuses fails (23514) and
-- leaves nothing, neither the move nor a history row.
\set VERBOSITY terse
ALTER TABLE kettles_state_history ADD CONSTRAINT no_breaking CHECK (to_state <> 'broken');
UPDATE kettles SET state = 'broken' WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('kettles', 4, 'break');
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM kettles WHERE id = 4;
SELECT count(*) FILTER (WHERE event IS NOT NULL) AS moves_of_4 FROM kettles_state_history WHERE entity_key = 4;
ALTER TABLE kettles_state_history DROP CONSTRAINT no_breaking;
\set VERBOSITY default

-- NOT NULL on a column fsm may leave empty: the actor becomes required.
ALTER TABLE kettles_state_history ALTER COLUMN actor SET NOT NULL;
RESET fsm.actor;
\set VERBOSITY terse
UPDATE kettles SET state = 'on' WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SET fsm.actor = 'shift:2';
UPDATE kettles SET state = 'on' WHERE id = 4;
ALTER TABLE kettles_state_history ALTER COLUMN actor DROP NOT NULL;

-- A partial unique index of the owner's: a second arrival in a state by
-- an event is refused.
CREATE UNIQUE INDEX one_arrival ON kettles_state_history (entity_key, to_state) WHERE event IS NOT NULL;
UPDATE kettles SET state = 'off' WHERE id = 1;
UPDATE kettles SET state = 'on' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM kettles WHERE id = 1;
DROP INDEX one_arrival;

-- A partial expression index gets its entries.
CREATE INDEX by_event ON kettles_state_history (upper(event)) WHERE event IS NOT NULL;
UPDATE kettles SET state = 'on' WHERE id = 5;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT entity_key FROM kettles_state_history WHERE upper(event) = 'SWITCH_ON' AND event IS NOT NULL ORDER BY 1;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX by_event;

-- A BRIN index (whose access method keeps a buffer pinned from one insert
-- to the next until the index is closed) is kept, and nothing is left pinned.
INSERT INTO kettles (id) VALUES (7);
CREATE INDEX by_time ON kettles_state_history USING brin (id) WITH (pages_per_range = 1);
SELECT fsm.fire('kettles', 7, 'switch_on');
UPDATE kettles SET state = 'off' WHERE id = 7;
SELECT brin_summarize_new_values('by_time') AS ranges_summarized;
SET enable_seqscan = off;
SET enable_indexscan = off;
SELECT event, to_state FROM kettles_state_history
 WHERE id >= (SELECT id FROM fsm.history('kettles', 7) ORDER BY id DESC OFFSET 1 LIMIT 1) ORDER BY id;
RESET enable_seqscan;
RESET enable_indexscan;
DROP INDEX by_time;

-- An identity column refuses the value the INSERT gives it (428C9), and so
-- refuses the transition, however its row would be written.
ALTER TABLE kettles_state_history ALTER COLUMN machine_version SET NOT NULL;
ALTER TABLE kettles_state_history ALTER COLUMN machine_version ADD GENERATED ALWAYS AS IDENTITY;
\set VERBOSITY terse
UPDATE kettles SET state = 'on' WHERE id = 7;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('kettles', 7, 'switch_on');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT state FROM kettles WHERE id = 7;
ALTER TABLE kettles_state_history ALTER COLUMN machine_version DROP IDENTITY;
ALTER TABLE kettles_state_history ALTER COLUMN machine_version DROP NOT NULL;
UPDATE kettles SET state = 'on' WHERE id = 7;
SELECT to_state, machine_version FROM kettles_state_history WHERE entity_key = 7 ORDER BY id DESC LIMIT 1;

-- A column with a default: the INSERT fills it.
ALTER TABLE kettles_state_history ADD COLUMN site text DEFAULT 'plant 7';
UPDATE kettles SET state = 'off' WHERE id = 5;
SELECT entity_key, event, site FROM kettles_state_history WHERE site IS NOT NULL ORDER BY id;
ALTER TABLE kettles_state_history DROP COLUMN site;
-- A dropped column leaves a gap in the table's columns; rows still land.
UPDATE kettles SET state = 'on' WHERE id = 5;
SELECT to_state FROM fsm.history('kettles', 5, lim => 1);

-- An INSERT trigger of the owner's fires for each history row, and may
-- change it. It runs as the owner with search_path pinned to pg_catalog,
-- pg_temp (as PostgreSQL's maintenance commands run a table's code): it
-- names what it uses with its schema.
CREATE TABLE kettle_audit (entity_key int, event text);
GRANT INSERT ON kettle_audit TO kettle_keeper;
CREATE FUNCTION kettle_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.kettle_audit VALUES (NEW.entity_key, NEW.event);
    NEW.actor := NEW.actor || ' (audited)';
    RETURN NEW;
END $$;
CREATE TRIGGER audit BEFORE INSERT ON kettles_state_history FOR EACH ROW EXECUTE FUNCTION kettle_audit();
UPDATE kettles SET state = 'off' WHERE id = 5;
SELECT fsm.fire('kettles', 6, 'switch_on');
SELECT * FROM kettle_audit ORDER BY entity_key;
SELECT entity_key, actor FROM kettles_state_history WHERE actor LIKE '%(audited)' ORDER BY entity_key;
DROP TRIGGER audit ON kettles_state_history;

-- Row level security forced on the owner: its policy decides.
ALTER TABLE kettles_state_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE kettles_state_history FORCE ROW LEVEL SECURITY;
CREATE POLICY only_off ON kettles_state_history FOR INSERT WITH CHECK (to_state = 'off');
CREATE POLICY read_all ON kettles_state_history FOR SELECT USING (true);
UPDATE kettles SET state = 'on' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
UPDATE kettles SET state = 'off' WHERE id = 6;
SELECT state FROM kettles WHERE id IN (5, 6) ORDER BY id;
ALTER TABLE kettles_state_history NO FORCE ROW LEVEL SECURITY;
ALTER TABLE kettles_state_history DISABLE ROW LEVEL SECURITY;

-- The owner revoking its own INSERT stops every transition (42501).
REVOKE INSERT ON kettles_state_history FROM kettle_keeper;
UPDATE kettles SET state = 'on' WHERE id = 6;
\echo :LAST_ERROR_SQLSTATE
GRANT INSERT ON kettles_state_history TO kettle_keeper;
UPDATE kettles SET state = 'on' WHERE id = 6;

-- Through all of it, each kettle's history replays as a chain ending in its
-- state, with one row per move that happened.
SELECT l.id, l.state, string_agg(coalesce(h.from_state, '∅') || '→' || h.to_state, ' ' ORDER BY h.id) AS chain
  FROM kettles l JOIN kettles_state_history h ON h.entity_key = l.id
 GROUP BY l.id, l.state ORDER BY l.id;

-- amcheck agrees: every row has its entry in every index, each index in order.
CREATE EXTENSION amcheck;
SELECT count(bt_index_check(i.indexrelid, heapallindexed => true)) AS indexes_checked
  FROM pg_index i WHERE i.indrelid = 'kettles_state_history'::regclass;
DROP EXTENSION amcheck;

SELECT fsm.detach('kettles', 'state', drop_history => true);
DROP TABLE kettles, kettle_audit;
DROP FUNCTION kettle_audit();
DROP ROLE electrician, kettle_keeper;
SELECT fsm.drop_machine('kettle');
