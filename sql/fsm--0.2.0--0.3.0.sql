-- fsm 0.2.0 -> 0.3.0 (ALTER EXTENSION fsm UPDATE TO '0.3.0').
-- tests/upgrade/run.sh installs 0.2.0, makes bindings with history, runs
-- this script, and compares the schema with a fresh 0.3.0.
\echo Use "ALTER EXTENSION fsm UPDATE TO '0.3.0'" to load this file. \quit

-- Every version of every machine is kept (fsm.machine_definition(name,
-- version)). 0.2.0 kept only the latest: that one is all there is to copy.
CREATE TABLE fsm.machine_version (
    machine    text NOT NULL REFERENCES fsm.machine (name) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version > 0),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine, version)
);
COMMENT ON TABLE fsm.machine_version IS 'fsm machines: every stored version of each definition';
INSERT INTO fsm.machine_version (machine, version, definition, created_at)
    SELECT m.name, m.version, m.definition, m.updated_at FROM fsm.machine m;
SELECT pg_catalog.pg_extension_config_dump('fsm.machine_version', '');
CREATE VIEW fsm.machine_versions AS
    SELECT machine, version, definition, created_at FROM fsm.machine_version;
GRANT SELECT ON fsm.machine_version, fsm.machine_versions TO PUBLIC;

DROP FUNCTION fsm.machine_definition(text);
CREATE FUNCTION fsm."machine_definition"("name" TEXT, "version" INT DEFAULT NULL) RETURNS jsonb
    STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'machine_definition_wrapper';

-- The read functions take col (the binding, where a table carries several
-- machines); changes and states_at are new.
DROP FUNCTION fsm.history(regclass, anyelement, timestamptz, timestamptz, integer);
CREATE FUNCTION fsm.history(tbl regclass, key anyelement,
                            since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                            lim integer DEFAULT NULL, col name DEFAULT NULL)
RETURNS TABLE (id uuid, at timestamptz, event text, from_state text, to_state text,
               payload jsonb, actor text, db_user text)
LANGUAGE c STABLE ROWS 10 AS 'MODULE_PATHNAME', 'fsm_history';
COMMENT ON FUNCTION fsm.history(regclass, anyelement, timestamptz, timestamptz, integer, name)
    IS 'fsm: one entity''s history, newest first; since inclusive, until exclusive (millisecond precision)';

CREATE FUNCTION fsm.changes(tbl regclass, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                            event text DEFAULT NULL, lim integer DEFAULT NULL, col name DEFAULT NULL)
RETURNS TABLE (id uuid, at timestamptz, entity_key text, event text, from_state text,
               to_state text, payload jsonb, actor text, db_user text)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_changes';
COMMENT ON FUNCTION fsm.changes(regclass, timestamptz, timestamptz, text, integer, name)
    IS 'fsm: the history of a whole table, newest first; since inclusive, until exclusive (millisecond precision)';

DROP FUNCTION fsm.current_states(regclass, anyarray);
CREATE FUNCTION fsm.current_states(tbl regclass, keys anyarray, col name DEFAULT NULL)
RETURNS TABLE (entity_key anyelement, state text, since timestamptz, last_event text, transition_id uuid)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_current_states';
COMMENT ON FUNCTION fsm.current_states(regclass, anyarray, name)
    IS 'fsm: the state of each existing key, with the moment, event and id of its last transition';

CREATE FUNCTION fsm.states_at(tbl regclass, keys anyarray, at timestamptz, col name DEFAULT NULL)
RETURNS TABLE (entity_key anyelement, state text, since timestamptz)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_states_at';
COMMENT ON FUNCTION fsm.states_at(regclass, anyarray, timestamptz, name)
    IS 'fsm: the state each key was in at a moment (millisecond precision), and since when';

-- Analytics (src/analytics.rs): exact over [since, until), the state held
-- at since carried in from earlier history, a state still held counted up
-- to until.
CREATE FUNCTION fsm.time_in_state(tbl regclass, keys anyarray, since timestamptz, until timestamptz,
                                  col name DEFAULT NULL)
RETURNS TABLE (entity_key anyelement, state text, duration interval, entered bigint)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_time_in_state';
COMMENT ON FUNCTION fsm.time_in_state(regclass, anyarray, timestamptz, timestamptz, name)
    IS 'fsm: per key and state, the time spent in it within [since, until) and how often it was entered';

CREATE FUNCTION fsm.state_stats(tbl regclass, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                                col name DEFAULT NULL)
RETURNS TABLE (state text, entered bigint, still_in bigint, median_stay interval, p95_stay interval, next jsonb)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_state_stats';
COMMENT ON FUNCTION fsm.state_stats(regclass, timestamptz, timestamptz, name)
    IS 'fsm: per state over [since, until): stays begun, still held, median and p95 stay, where they went next';

-- Timers (src/timers.rs): a state's timeout makes its event due; nothing
-- is stored per timer, it is derived from the state and its history.
CREATE FUNCTION fsm.tick(lim integer DEFAULT NULL) RETURNS integer
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_tick';
COMMENT ON FUNCTION fsm.tick(integer)
    IS 'fsm: fires the due timeout events (each once, even from several sessions); returns how many fired';

CREATE FUNCTION fsm.pending_timers()
RETURNS TABLE (tbl regclass, col name, entity_key text, state text, event text, due timestamptz)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_pending_timers';
COMMENT ON FUNCTION fsm.pending_timers()
    IS 'fsm: the pending timeouts of the tables the caller may read (the view fsm.timers)';

CREATE VIEW fsm.timers AS SELECT * FROM fsm.pending_timers();
COMMENT ON VIEW fsm.timers IS 'fsm: pending timeouts: which entity, in which state, fires which event when';
GRANT SELECT ON fsm.timers TO PUBLIC;

-- Asking before acting (src/ask.rs): the rules of fire applied to the row
-- as the caller sees it now, without a lock or a change.
CREATE FUNCTION fsm.can_fire(tbl regclass, key anyelement, event text,
                             payload jsonb DEFAULT NULL, col name DEFAULT NULL)
RETURNS boolean LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_can_fire';
COMMENT ON FUNCTION fsm.can_fire(regclass, anyelement, text, jsonb, name)
    IS 'fsm: whether fire would move the entity now (source state, roles, payload, guard)';

CREATE FUNCTION fsm.available_events(tbl regclass, key anyelement, col name DEFAULT NULL)
RETURNS TABLE (event text, to_states text[], allowed boolean, reason text)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_available_events';
COMMENT ON FUNCTION fsm.available_events(regclass, anyelement, name)
    IS 'fsm: every event of the machine, where it leads from the current state, whether it is allowed now, and why not';

-- fire takes an idempotency key: a retried request never moves twice. Each
-- history table gets the unique index its lookups use.
DROP FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name);
CREATE FUNCTION fsm.fire(tbl regclass, key anyelement, event text,
                         payload jsonb DEFAULT NULL, expect text DEFAULT NULL, "to" text DEFAULT NULL,
                         col name DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name, text)
    IS 'fsm: fires an event on one entity; returns its new state';

-- Text overloads: a key written as an untyped literal ('42') or bound as
-- an untyped parameter (as several drivers bind strings) cannot resolve
-- anyelement. These take it as text and convert it to the table's key
-- type exactly (22P02 when it does not read back the same), as the
-- anyelement forms convert any other type. Same C functions.
CREATE FUNCTION fsm.fire(tbl regclass, key text, event text,
                         payload jsonb DEFAULT NULL, expect text DEFAULT NULL, "to" text DEFAULT NULL,
                         col name DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, text, text, jsonb, text, text, name, text)
    IS 'fsm: fires an event on one entity (key as text); returns its new state';
CREATE FUNCTION fsm.can_fire(tbl regclass, key text, event text,
                             payload jsonb DEFAULT NULL, col name DEFAULT NULL)
RETURNS boolean LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_can_fire';
COMMENT ON FUNCTION fsm.can_fire(regclass, text, text, jsonb, name)
    IS 'fsm: whether fire would move the entity now (key as text)';
CREATE FUNCTION fsm.available_events(tbl regclass, key text, col name DEFAULT NULL)
RETURNS TABLE (event text, to_states text[], allowed boolean, reason text)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_available_events';
COMMENT ON FUNCTION fsm.available_events(regclass, text, name)
    IS 'fsm: every event of the machine, whether it is allowed now, and why not (key as text)';
DO $upgrade$
DECLARE
    b record;
BEGIN
    FOR b IN SELECT bb.history FROM fsm.binding bb LOOP
        EXECUTE pg_catalog.format(
            'CREATE UNIQUE INDEX ON %s (idempotency_key) WHERE idempotency_key IS NOT NULL', b.history);
    END LOOP;
END
$upgrade$;

-- A partitioned history moves to a new owner with its partitions.
CREATE OR REPLACE FUNCTION fsm.follow_table_changes() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad record;
    moved record;
BEGIN
    IF NOT EXISTS (SELECT FROM fsm.binding) THEN
        RETURN;
    END IF;
    UPDATE fsm.binding b SET col = a.attname
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.objid AND a.attnum = c.objsubid AND NOT a.attisdropped
     WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.objsubid > 0
       AND c.objid = b.tbl::pg_catalog.oid
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute x
                        WHERE x.attrelid = b.tbl::pg_catalog.oid AND x.attname = b.col AND NOT x.attisdropped)
       AND NOT EXISTS (SELECT FROM fsm.binding o WHERE o.tbl = b.tbl AND o.col = a.attname);

    -- Only for the tables this command changed: a key type is changed by
    -- altering the history's entity_key first, then the table's key.
    SELECT b.tbl, b.col INTO bad FROM fsm.binding b
     WHERE b.tbl::pg_catalog.oid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
                         JOIN pg_catalog.pg_attribute h ON h.attrelid = b.history::pg_catalog.oid
                                                       AND h.attname = 'entity_key' AND NOT h.attisdropped
                        WHERE i.indrelid = b.tbl::pg_catalog.oid AND i.indisprimary AND i.indnkeyatts = 1
                          AND k.atttypid = h.atttypid)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% needs a single-column primary key of the type its history is keyed by', bad.tbl, bad.col
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'To change the key''s type, alter the history''s entity_key first. To change the key, detach the machine first.';
    END IF;

    -- Only bindings this command touched (their table, or a table it
    -- links to one by inheritance): a statement that touches no bound
    -- table is never refused.
    SELECT b.tbl, b.col INTO bad FROM fsm.binding b JOIN pg_catalog.pg_class t ON t.oid = b.tbl::pg_catalog.oid
     WHERE (t.relispartition
            OR EXISTS (SELECT FROM pg_catalog.pg_inherits i
                        WHERE i.inhrelid = t.oid
                           OR (i.inhparent = t.oid AND t.relkind <> 'p')))
       AND (t.oid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c)
            OR EXISTS (SELECT FROM pg_catalog.pg_inherits i, pg_catalog.pg_event_trigger_ddl_commands() c
                        WHERE (i.inhparent = t.oid AND i.inhrelid = c.objid)
                           OR (i.inhrelid = t.oid AND i.inhparent = c.objid)))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% does not cover inheritance, nor a partition of its own', bad.tbl, bad.col
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Use declarative partitioning and attach the machine to the partitioned table.';
    END IF;

    -- A partition attached in this transaction, at any level of a bound
    -- partitioned table's tree, brought its rows in without the triggers:
    -- each must hold a state, as at attach (src/ddl_watch.rs).
    PERFORM fsm.check_new_partitions(b.tbl)
       FROM (SELECT DISTINCT bb.tbl FROM fsm.binding bb) b
       JOIN pg_catalog.pg_class t ON t.oid = b.tbl::pg_catalog.oid
      WHERE t.relkind = 'p'
        AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
                     WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(c.objid) a
                                    WHERE a.relid = b.tbl));

    -- A key whose type modifier changed (a longer varchar, another numeric
    -- precision) must still fit the history's entity_key. It is not altered
    -- here: this function runs as the extension's owner, and altering the
    -- history would evaluate its owner's constraints with those rights. The
    -- owner alters it first, as for a change of the key's type.
    SELECT b.tbl, b.col, b.history,
           pg_catalog.format_type(k.atttypid, k.atttypmod) AS key_type INTO bad
      FROM fsm.binding b
      JOIN pg_catalog.pg_index i ON i.indrelid = b.tbl::pg_catalog.oid AND i.indisprimary
                                AND i.indnkeyatts = 1
      JOIN pg_catalog.pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
      JOIN pg_catalog.pg_attribute h ON h.attrelid = b.history::pg_catalog.oid
                                    AND h.attname = 'entity_key' AND NOT h.attisdropped
     WHERE b.tbl::pg_catalog.oid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c)
       AND k.atttypid = h.atttypid AND k.atttypmod <> h.atttypmod AND h.atttypmod <> -1
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% needs its history''s entity_key to be of the key''s type, %', bad.tbl, bad.col, bad.key_type
            USING ERRCODE = 'invalid_table_definition',
                  HINT = pg_catalog.format('Alter the history first: ALTER TABLE %s ALTER COLUMN entity_key TYPE %s;',
                                           bad.history::pg_catalog.regclass, bad.key_type);
    END IF;

    -- A key whose collation became nondeterministic (attach refuses one):
    -- 'Key1' and 'key1' would be one row to fire and two entities in the
    -- history, which compares bytes.
    SELECT b.tbl, b.col INTO bad
      FROM fsm.binding b
      JOIN pg_catalog.pg_index i ON i.indrelid = b.tbl::pg_catalog.oid AND i.indisprimary
      JOIN pg_catalog.pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
      JOIN pg_catalog.pg_collation co ON co.oid = k.attcollation
     WHERE b.tbl::pg_catalog.oid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c)
       AND NOT co.collisdeterministic
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% needs a primary key under a deterministic collation', bad.tbl, bad.col
            USING ERRCODE = 'feature_not_supported';
    END IF;

    -- An enum whose label a state uses cannot lose it (ALTER TYPE … RENAME
    -- VALUE): the machine's states are names, and rows could no longer
    -- reach the state, nor be inserted in the initial one.
    SELECT b.tbl, b.col, s.state INTO bad
      FROM fsm.binding b
      JOIN pg_catalog.pg_attribute a ON a.attrelid = b.tbl::pg_catalog.oid AND a.attname = b.col
                                    AND NOT a.attisdropped
      JOIN fsm.machine_state s ON s.machine = b.machine
     WHERE a.atttypid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
                           WHERE c.classid = 'pg_catalog.pg_type'::pg_catalog.regclass)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_enum e
                        WHERE e.enumtypid = a.atttypid AND e.enumlabel = s.state)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% needs the enum label "%" (a state of its machine)', bad.tbl, bad.col, bad.state
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Rename the state in the machine first (fsm.create_machine(…, replace => true)), or detach it.';
    END IF;

    -- A partitioned history (docs/operations.md) moves with its partitions:
    -- ALTER TABLE … OWNER TO does not recurse to them.
    FOR moved IN
        SELECT DISTINCT h.oid AS history, t.relowner AS owner
          FROM fsm.binding b
          JOIN pg_catalog.pg_class t ON t.oid = b.tbl::pg_catalog.oid
          CROSS JOIN LATERAL (SELECT b.history::pg_catalog.oid AS relid
                              UNION
                              SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(b.history) p) part
          JOIN pg_catalog.pg_class h ON h.oid = part.relid
         WHERE h.relowner <> t.relowner AND h.relkind IN ('r', 'p')
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I',
                                  moved.history::pg_catalog.regclass, pg_catalog.pg_get_userbyid(moved.owner));
    END LOOP;
END
$$;

-- A foreign table joining a bound table's inheritance tree is watched too.
DROP EVENT TRIGGER fsm_follow_table_changes;
CREATE EVENT TRIGGER fsm_follow_table_changes ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TYPE')
    EXECUTE FUNCTION fsm.follow_table_changes();

-- Called by the DDL event trigger (fsm.follow_table_changes): rows of a
-- partition attached to a bound table must hold states (src/ddl_watch.rs).
-- Not for direct use: it reads the table as the extension's owner.
CREATE FUNCTION fsm.check_new_partitions(tbl regclass) RETURNS void
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_check_new_partitions';
REVOKE ALL ON FUNCTION fsm.check_new_partitions(regclass) FROM PUBLIC;
COMMENT ON FUNCTION fsm.check_new_partitions(regclass)
    IS 'fsm: internal, for the DDL event trigger: checks the rows of partitions attached in this transaction';

-- A row of a partitioned bound table cannot change its key (it would move
-- between partitions as DELETE + INSERT, past the UPDATE's checks): the
-- trigger attach now creates on partitioned tables, added to those bound
-- before.
DO $upgrade$
DECLARE
    t record;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR t IN
        SELECT DISTINCT b.tbl
          FROM fsm.binding b
          JOIN pg_catalog.pg_class c ON c.oid = b.tbl::pg_catalog.oid
         WHERE c.relkind = 'p'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                            WHERE g.tgrelid = b.tbl::pg_catalog.oid AND g.tgname = 'zz_fsm_key')
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER zz_fsm_key BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION fsm.enforce()',
            t.tbl);
    END LOOP;
END
$upgrade$;
