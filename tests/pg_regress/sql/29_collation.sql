-- A state column under a nondeterministic collation is refused at attach:
-- 'draft' and 'Draft' would compare equal there, and the triggers, which
-- fire when the state IS DISTINCT FROM the old one, would not see the
-- change. Nondeterministic collations need ICU: a server built without it
-- (the PostgreSQL 18 the tests use) shows the refusal of CREATE COLLATION
-- instead (29_collation_1.out).
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS fsm;
SELECT fsm.create_machine('co_doc', '{
  "states": {"draft": {"initial": true}, "sent": {"final": true}},
  "events": {"send": {"from": "draft", "to": "sent"}}}') AS version;
CREATE COLLATION co_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE co_letters (id int PRIMARY KEY, s text COLLATE co_nocase);
SELECT fsm.attach('co_letters', 's', 'co_doc', protect => true) AS history;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS bindings FROM fsm.bindings WHERE tbl OPERATOR(pg_catalog.=) 'co_letters'::regclass;
-- So is a key under one: the history's entity_key compares bytes.
CREATE TABLE co_codes (code text COLLATE co_nocase PRIMARY KEY, s text);
SELECT fsm.attach('co_codes', 's', 'co_doc') AS history;
\echo :LAST_ERROR_SQLSTATE
-- ... and a key made so after attach.
CREATE TABLE co_ids (id text PRIMARY KEY, s text);
SELECT fsm.attach('co_ids', 's', 'co_doc') AS history;
ALTER TABLE co_ids ALTER COLUMN id TYPE text COLLATE co_nocase;
\echo :LAST_ERROR_SQLSTATE
