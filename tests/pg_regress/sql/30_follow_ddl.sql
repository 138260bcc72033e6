-- DDL on a bound table that fsm follows or refuses, never leaving the table
-- broken: a wider key, a renamed enum label, a database of another encoding.
\set VERBOSITY terse
SELECT fsm.create_machine('fd_doc', '{
  "states": {"draft": {"initial": true}, "sent": {"final": true}},
  "events": {"send": {"from": "draft", "to": "sent"}}}') AS version;

-- A varchar key made wider is refused until the history's entity_key can
-- hold it (fsm does not alter the history itself: it would run as the
-- extension's owner); its owner alters the history first.
CREATE ROLE fd_owner;
GRANT CREATE ON SCHEMA public TO fd_owner;
SET ROLE fd_owner;
CREATE TABLE fd_codes (code varchar(4) PRIMARY KEY, s text);
SELECT fsm.attach('fd_codes', 's', 'fd_doc') AS history;
INSERT INTO fd_codes VALUES ('abcd');
ALTER TABLE fd_codes ALTER COLUMN code TYPE varchar(12);
\echo :LAST_ERROR_SQLSTATE
-- The owner's own constraint on its history is checked with the owner's
-- rights, never the extension's.
CREATE FUNCTION fd_who(k text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'entity_key checked as %', current_user;
    RETURN true;
END $$;
ALTER TABLE fd_codes_s_history ADD CONSTRAINT fd_who CHECK (fd_who(entity_key::text));
ALTER TABLE fd_codes_s_history ALTER COLUMN entity_key TYPE varchar(12);
ALTER TABLE fd_codes ALTER COLUMN code TYPE varchar(12);
INSERT INTO fd_codes VALUES ('abcdefghij');
SELECT fsm.fire('fd_codes', 'abcdefghij'::varchar, 'send');
RESET ROLE;
SELECT entity_key, event, to_state FROM fd_codes_s_history ORDER BY id;

-- An enum label a state uses cannot be renamed away.
CREATE TYPE fd_status AS ENUM ('draft', 'sent', 'archived');
CREATE TABLE fd_letters (id int PRIMARY KEY, s fd_status);
SELECT fsm.attach('fd_letters', 's', 'fd_doc') AS history;
INSERT INTO fd_letters VALUES (1);
ALTER TYPE fd_status RENAME VALUE 'draft' TO 'drafted';
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE fd_status RENAME VALUE 'archived' TO 'old';
INSERT INTO fd_letters VALUES (2);
SELECT id, s FROM fd_letters ORDER BY id;

-- fsm needs a UTF8 database: elsewhere CREATE EXTENSION refuses, clearly.
CREATE DATABASE fd_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c fd_latin1
\set VERBOSITY terse
CREATE EXTENSION fsm;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS fsm_schemas FROM pg_namespace WHERE nspname = 'fsm';
\c fsm_regress
DROP DATABASE fd_latin1;

-- Set-ups whose writes would fail later are refused at attach: an array
-- key, a kept history whose entity_key is narrower than the key now.
CREATE TABLE fd_arrays (id int[] PRIMARY KEY, s text);
SELECT fsm.attach('fd_arrays', 's', 'fd_doc') AS history;
\echo :LAST_ERROR_SQLSTATE
CREATE DOMAIN fd_ids AS int[];
CREATE TABLE fd_arrays2 (id fd_ids PRIMARY KEY, s text);
SELECT fsm.attach('fd_arrays2', 's', 'fd_doc') AS history;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE fd_tags (tag varchar(5) PRIMARY KEY, s text);
SELECT fsm.attach('fd_tags', 's', 'fd_doc') AS history;
SELECT fsm.detach('fd_tags', 's');
ALTER TABLE fd_tags ALTER COLUMN tag TYPE varchar(50);
SELECT fsm.attach('fd_tags', 's', 'fd_doc') AS history;
\echo :LAST_ERROR_SQLSTATE
