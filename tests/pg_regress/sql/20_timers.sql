-- Timers: a state's timeout makes its event due "after" that long in the
-- state. fsm.timers lists what is pending; fsm.tick(lim) fires what is due
-- (each timer once), with roles and guards applied as for fire. Leaving
-- the state cancels the timer; a self-transition does not restart it.
\set SHOW_CONTEXT never
CREATE SCHEMA post;
CREATE TABLE post.letters (id int PRIMARY KEY, status text, insured boolean NOT NULL DEFAULT false);
-- The "claim" timer only fires for insured letters.
CREATE FUNCTION post.is_insured(l post.letters, p jsonb) RETURNS boolean LANGUAGE sql
  AS 'SELECT l.insured';
SELECT fsm.create_machine('letter', '{
  "states": {"posted":  {"initial": true, "timeout": {"after": "300 milliseconds", "event": "lose"}},
             "lost":    {"timeout": {"after": "300 milliseconds", "event": "claim"}},
             "claimed": {"final": true}, "delivered": {"final": true}},
  "events": {"lose":    {"from": "posted", "to": "lost"},
             "deliver": {"from": "posted", "to": "delivered"},
             "track":   {"from": "posted", "to": "posted"},
             "claim":   {"from": "lost", "to": "claimed", "guard": "post.is_insured"}}}');
SELECT fsm.attach('post.letters', 'status', 'letter') IS NOT NULL AS attached;
INSERT INTO post.letters (id, insured) VALUES (1, true), (2, false), (3, false), (4, false);
-- Letter 3 is delivered: its timer is cancelled. Letter 4 is tracked (a
-- self-transition): its timer keeps running from when it was posted.
SELECT fsm.fire('post.letters', 3, 'deliver');
SELECT fsm.fire('post.letters', 4, 'track');

SELECT tbl, col, entity_key, state, event, due > now() AS later FROM fsm.timers WHERE tbl = 'post.letters'::regclass ORDER BY entity_key;
-- Nothing is due yet.
SELECT fsm.tick();
SELECT pg_sleep(0.4);
-- lim caps how many fire at once (soonest first), NULL: all that are due.
SELECT fsm.tick(2);
SELECT fsm.tick();
SELECT fsm.tick();
SELECT id, status FROM post.letters ORDER BY id;
SELECT entity_key, state, event FROM fsm.timers WHERE tbl = 'post.letters'::regclass ORDER BY entity_key;
-- After the "lost" timeout: letter 1 is claimed; letters 2 and 4 are not
-- insured, so the guard says no: a WARNING, and their timers stay due.
SELECT pg_sleep(0.4);
SELECT fsm.tick();
SELECT id, status FROM post.letters ORDER BY id;
SELECT entity_key, state, event FROM fsm.timers WHERE tbl = 'post.letters'::regclass ORDER BY entity_key;
SELECT entity_key, event, from_state, to_state FROM post.letters_status_history
 WHERE event IN ('lose', 'claim') ORDER BY entity_key, id;
-- Once the guard agrees, the next tick fires it.
UPDATE post.letters SET insured = true WHERE id = 2;
SELECT fsm.tick();
SELECT id, status FROM post.letters WHERE id = 2;

-- A timer is the table's own act: it runs as the table's owner (roles,
-- guards and triggers are the owner's), never as whoever ticks. A ticker
-- reaches the tables whose state column it may UPDATE.
CREATE ROLE post_owner;
CREATE ROLE post_clerk;
CREATE ROLE post_ticker;
GRANT USAGE, CREATE ON SCHEMA post TO post_owner;
GRANT USAGE ON SCHEMA post TO post_ticker;
CREATE TABLE post.seen_by (who text, at_tick boolean);
GRANT INSERT ON post.seen_by TO post_owner;
SET ROLE post_owner;
CREATE TABLE post.parcels (id int PRIMARY KEY, status text);
CREATE FUNCTION post.note_who(p post.parcels, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ INSERT INTO post.seen_by VALUES (current_user, true) RETURNING true $$;
RESET ROLE;
SELECT fsm.create_machine('letter_parcel', '{
  "states": {"waiting": {"initial": true, "timeout": {"after": "1 millisecond", "event": "expire"}},
             "expired": {"final": true}},
  "events": {"expire": {"from": "waiting", "to": "expired", "roles": ["post_clerk"],
                        "guard": "post.note_who"}}}');
SET ROLE post_owner;
SELECT fsm.attach('post.parcels', 'status', 'letter_parcel') IS NOT NULL AS attached;
GRANT SELECT (id) ON post.parcels TO post_ticker;
INSERT INTO post.parcels VALUES (1);
RESET ROLE;
SELECT pg_sleep(0.01);
-- Without UPDATE, the ticker does not reach the table.
SET ROLE post_ticker;
SELECT fsm.tick();
RESET ROLE;
GRANT UPDATE (status) ON post.parcels TO post_ticker;
-- The owner lacks the event's role: a WARNING per timer, nothing fires,
-- and a ticker that may not read the state is not shown the row's key.
SET ROLE post_ticker;
SELECT fsm.tick();
-- The view shows only tables the caller may read.
SELECT tbl, entity_key, state FROM fsm.timers WHERE tbl::text LIKE 'post.%';
RESET ROLE;
-- The ticker's own roles do not count; the owner's do.
GRANT post_clerk TO post_ticker;
SET ROLE post_ticker;
SELECT fsm.tick();
RESET ROLE;
GRANT post_clerk TO post_owner;
-- A superuser ticks: the guard still runs as the owner.
SELECT fsm.tick();
SELECT status FROM post.parcels;
SELECT who FROM post.seen_by;
SELECT event, db_user FROM post.parcels_status_history WHERE event = 'expire';

-- The owner's code runs with search_path pinned (pg_catalog, pg_temp): a
-- function the ticker plants on its own path never runs as the owner.
CREATE ROLE post_planter;
GRANT USAGE ON SCHEMA post TO post_planter;
CREATE SCHEMA planted AUTHORIZATION post_planter;
SET ROLE post_owner;
CREATE TABLE post.stamps (id int PRIMARY KEY, status text);
CREATE FUNCTION post.lowered(p post.stamps, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT lower('A') = 'a' $$;
RESET ROLE;
SELECT fsm.create_machine('letter_stamp', '{
  "states": {"fresh": {"initial": true, "timeout": {"after": "1 millisecond", "event": "age"}},
             "old": {"final": true}},
  "events": {"age": {"from": "fresh", "to": "old", "guard": "post.lowered"}}}') IS NOT NULL AS created;
SET ROLE post_owner;
SELECT fsm.attach('post.stamps', 'status', 'letter_stamp') IS NOT NULL AS attached;
GRANT SELECT, UPDATE ON post.stamps TO post_planter;
INSERT INTO post.stamps VALUES (1);
RESET ROLE;
SELECT pg_sleep(0.01);
SET ROLE post_planter;
CREATE FUNCTION planted.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'planted lower() ran as %', current_user;
END $$;
SET search_path = planted, pg_catalog;
SELECT fsm.tick();
RESET search_path;
RESET ROLE;
SELECT id, status FROM post.stamps;

-- A negative lim is refused; 0 fires nothing.
SELECT fsm.tick(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.tick(0);

-- A timeout event must lead to one state: a timer has nobody to choose.
SELECT fsm.create_machine('letter_bad', '{
  "states": {"a": {"initial": true, "timeout": {"after": "1 day", "event": "go"}}, "b": {}},
  "events": {"go": {"from": "a", "to": ["a", "b"]}, "back": {"from": "b", "to": "a"}}}');
\echo :LAST_ERROR_SQLSTATE

REVOKE post_clerk FROM post_ticker;
REVOKE ALL ON post.parcels FROM post_ticker;
REVOKE ALL ON SCHEMA post FROM post_ticker;
DROP ROLE post_ticker;

-- Timers that need nothing of their row (no guard, no action) fire in one
-- statement per state, through the trigger. When that statement fails (a
-- constraint of the table refuses one row), nothing of it remains and the
-- state's timers fire one by one: the refused one is a WARNING and stays
-- due, the others fire.
CREATE TABLE post.packets (id int PRIMARY KEY, status text, fragile boolean NOT NULL DEFAULT false,
                           CHECK (NOT (fragile AND status = 'returned')));
SELECT fsm.create_machine('letter_packet', '{
  "states": {"waiting": {"initial": true, "timeout": {"after": "100 milliseconds", "event": "return"}},
             "returned": {"final": true}},
  "events": {"return": {"from": "waiting", "to": "returned"}}}');
SELECT fsm.attach('post.packets', 'status', 'letter_packet') IS NOT NULL AS attached;
INSERT INTO post.packets (id, fragile) SELECT g, g = 2 FROM generate_series(1, 4) g;
SELECT pg_sleep(0.15);
SELECT fsm.tick();
SELECT id, status FROM post.packets ORDER BY id;
SELECT entity_key, event, from_state, to_state FROM post.packets_status_history
 WHERE event IS NOT NULL ORDER BY entity_key;
-- (08_search_path planted a public "=" for regclass in this database.)
SELECT entity_key, state, event FROM fsm.timers WHERE tbl OPERATOR(pg_catalog.=) 'post.packets'::regclass;
-- Packet 2 is refused at every tick, and the others still fire.
INSERT INTO post.packets (id) SELECT g FROM generate_series(5, 8) g;
SELECT pg_sleep(0.15);
SELECT fsm.tick();
SELECT count(*) AS returned FROM post.packets WHERE status = 'returned';
SELECT count(*) AS history_rows FROM post.packets_status_history WHERE event = 'return';

-- A timeout whose event is a self-transition fires once per entry into the
-- state, not at every tick.
CREATE TABLE post.reminders (id int PRIMARY KEY, status text);
SELECT fsm.create_machine('letter_reminder', '{
  "states": {"pending": {"initial": true, "timeout": {"after": "1 millisecond", "event": "remind"}},
             "answered": {}},
  "events": {"remind": {"from": "pending", "to": "pending"},
             "answer": {"from": "pending", "to": "answered"},
             "reopen": {"from": "answered", "to": "pending"}}}') AS version;
SELECT fsm.attach('post.reminders', 'status', 'letter_reminder') IS NOT NULL AS attached;
INSERT INTO post.reminders VALUES (1);
SELECT pg_sleep(0.01);
SELECT fsm.tick();
SELECT fsm.tick();
SELECT count(*) AS timers FROM fsm.timers WHERE tbl OPERATOR(pg_catalog.=) 'post.reminders'::regclass;
-- Entering the state again starts a new timer, which fires once.
SELECT fsm.fire('post.reminders', 1, 'answer');
SELECT fsm.fire('post.reminders', 1, 'reopen');
SELECT pg_sleep(0.01);
SELECT fsm.tick();
SELECT fsm.tick();
SELECT event, from_state, to_state FROM post.reminders_status_history ORDER BY id;
