-- Set-based UPDATEs: every row is checked as it comes; the history rows of
-- a plain UPDATE are appended together when the statement ends (one
-- INSERT), in the same transaction, with ids in the order of the moves.
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS fsm;
SELECT fsm.create_machine('parcel', '{
  "states": {"new": {"initial": true}, "sent": {}, "lost": {"final": true}, "home": {"final": true}},
  "events": {"send": {"from": "new", "to": "sent"},
             "lose": {"from": "sent", "to": "lost"},
             "arrive": {"from": "sent", "to": "home"}}
}') AS version;

-- Text keys: held keys are copied, not borrowed from the row.
CREATE TABLE parcels (code text PRIMARY KEY, state text);
SELECT fsm.attach('parcels', 'state', 'parcel') AS history_table;
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'parcels'::regclass AND NOT tgisinternal ORDER BY tgname;
INSERT INTO parcels (code) SELECT 'P-' || g FROM generate_series(1, 2500) g;

-- One statement moves 2,500 rows: 2,500 history rows, each naming its key.
UPDATE parcels SET state = 'sent';
SELECT count(*) AS sent_rows,
       count(DISTINCT entity_key) AS keys,
       bool_and(event = 'send' AND from_state = 'new' AND to_state = 'sent') AS all_send
  FROM parcels_state_history WHERE to_state = 'sent';
SELECT bool_and(h.entity_key = p.code) AS keys_intact
  FROM parcels p JOIN parcels_state_history h ON h.entity_key = p.code AND h.to_state = 'sent';

-- Ids follow the order in which the rows moved, after the INSERT rows.
SELECT (SELECT id FROM parcels_state_history WHERE event IS NULL ORDER BY id DESC LIMIT 1)
     < (SELECT id FROM parcels_state_history WHERE event = 'send' ORDER BY id LIMIT 1) AS after_inserts;

-- One bad row refuses the whole statement: nothing moves, nothing is recorded.
UPDATE parcels SET state = CASE WHEN code = 'P-2000' THEN 'new' ELSE 'home' END;
SELECT count(*) FILTER (WHERE state = 'sent') AS still_sent FROM parcels;
SELECT count(*) AS home_rows FROM parcels_state_history WHERE to_state = 'home';

-- A rolled-back savepoint takes its held rows with it; the rest stays.
BEGIN;
UPDATE parcels SET state = 'home' WHERE code IN ('P-1', 'P-2');
SAVEPOINT s;
UPDATE parcels SET state = 'lost' WHERE code IN ('P-3', 'P-4');
ROLLBACK TO SAVEPOINT s;
UPDATE parcels SET state = 'lost' WHERE code = 'P-5';
COMMIT;
SELECT entity_key, event, from_state, to_state FROM parcels_state_history
 WHERE to_state IN ('home', 'lost') ORDER BY id;
SELECT code, state FROM parcels WHERE code IN ('P-1', 'P-2', 'P-3', 'P-4', 'P-5') ORDER BY code;

-- A data-modifying CTE moving rows of two tables: each gets its history.
CREATE TABLE crates (id int PRIMARY KEY, state text);
SELECT fsm.attach('crates', 'state', 'parcel') IS NOT NULL AS attached;
INSERT INTO crates SELECT g FROM generate_series(1, 3) g;
WITH c AS (UPDATE crates SET state = 'sent' RETURNING id)
UPDATE parcels SET state = 'home' WHERE code IN (SELECT 'P-' || (10 + id) FROM c);
SELECT (SELECT count(*) FROM crates_state_history WHERE event = 'send') AS crate_rows,
       (SELECT count(*) FROM parcels_state_history WHERE event = 'arrive') AS parcel_arrivals;

-- Triggers forced on in replica mode (as on a logical replication
-- subscriber) check and record as usual; history is appended when the
-- statement ends, whichever way it ends.
ALTER TABLE crates ENABLE ALWAYS TRIGGER zz_fsm_updated;
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE crates SET state = 'home' WHERE id IN (1, 2);
COMMIT;
SELECT id, state FROM crates ORDER BY id;
SELECT entity_key, event FROM crates_state_history WHERE to_state = 'home' ORDER BY entity_key;
ALTER TABLE crates ENABLE TRIGGER zz_fsm_updated;
