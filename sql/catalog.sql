-- fsm catalog: machines and bindings, and the views users read them through.
-- Everything here is extension configuration: pg_dump brings it back.

-- fsm reads and writes names (states, events, keys as text) as UTF-8: in a
-- database of another encoding they would be stored garbled. Refused here,
-- once, rather than half-working.
DO $encoding$
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION 'fsm needs a database encoded in UTF8; this one is %', pg_catalog.getdatabaseencoding()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Create the database with ENCODING ''UTF8'' (CREATE DATABASE … ENCODING ''UTF8'' TEMPLATE template0).';
    END IF;
END
$encoding$;

CREATE TABLE fsm.machine (
    name       text PRIMARY KEY,
    version    integer NOT NULL CHECK (version > 0),
    definition jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The role that created it: only that role (or a member, or a
    -- superuser) replaces or drops it. regrole, so pg_dump writes the
    -- role's name and a restore into another cluster finds the same role.
    owner      regrole NOT NULL
);
COMMENT ON TABLE fsm.machine IS 'fsm machines: the normalized definition of each, and its version';

-- Every version of every machine, as stored (fsm.machine_definition(name,
-- version)): history rows name the version they were checked against.
CREATE TABLE fsm.machine_version (
    machine    text NOT NULL REFERENCES fsm.machine (name) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version > 0),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine, version)
);
COMMENT ON TABLE fsm.machine_version IS 'fsm machines: every stored version of each definition';

-- The expanded model, written by fsm.create_machine from the compiled machine.
CREATE TABLE fsm.machine_state (
    machine  text NOT NULL REFERENCES fsm.machine (name) ON DELETE CASCADE,
    position integer NOT NULL,
    state    text NOT NULL,
    initial  boolean NOT NULL,
    final    boolean NOT NULL,
    meta     jsonb,
    PRIMARY KEY (machine, state)
);

CREATE TABLE fsm.machine_transition (
    machine    text NOT NULL REFERENCES fsm.machine (name) ON DELETE CASCADE,
    event      text NOT NULL,
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (machine, event, from_state, to_state)
);

CREATE TABLE fsm.binding (
    tbl     regclass NOT NULL,
    col     name NOT NULL,
    machine text NOT NULL REFERENCES fsm.machine (name),
    history regclass NOT NULL,
    protect boolean NOT NULL DEFAULT false,
    notify  text,
    PRIMARY KEY (tbl, col)
);
CREATE INDEX ON fsm.binding (machine);
COMMENT ON TABLE fsm.binding IS 'fsm bindings: which machine governs which table column';

SELECT pg_catalog.pg_extension_config_dump('fsm.machine', '');
SELECT pg_catalog.pg_extension_config_dump('fsm.machine_version', '');
SELECT pg_catalog.pg_extension_config_dump('fsm.machine_state', '');
SELECT pg_catalog.pg_extension_config_dump('fsm.machine_transition', '');
SELECT pg_catalog.pg_extension_config_dump('fsm.binding', '');

CREATE VIEW fsm.machines AS
    SELECT name, version, definition, owner FROM fsm.machine;

CREATE VIEW fsm.machine_versions AS
    SELECT machine, version, definition, created_at FROM fsm.machine_version;

CREATE VIEW fsm.states AS
    SELECT machine, state, initial, final, meta FROM fsm.machine_state;

CREATE VIEW fsm.transitions AS
    SELECT machine, event, from_state, to_state FROM fsm.machine_transition;

CREATE VIEW fsm.bindings AS
    SELECT tbl, col, machine, history, protect, notify FROM fsm.binding;

-- Definitions are not secret, and the trigger reads them as the caller.
-- Only the extension's functions write them (as the extension's owner,
-- after checking the caller's rights: API.md §8).
GRANT USAGE ON SCHEMA fsm TO PUBLIC;
GRANT SELECT ON fsm.machine, fsm.machine_version, fsm.machine_state, fsm.machine_transition, fsm.binding TO PUBLIC;
GRANT SELECT ON fsm.machines, fsm.machine_versions, fsm.states, fsm.transitions, fsm.bindings TO PUBLIC;

-- The row trigger (src/enforce.rs).
CREATE FUNCTION fsm.enforce() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'fsm_enforce';
COMMENT ON FUNCTION fsm.enforce() IS 'fsm: enforces a bound machine on INSERT and UPDATE; created by fsm.attach()';

-- History tables are append-only for everyone.
CREATE FUNCTION fsm.refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fsm history table %.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'History rows are only appended, by fsm. fsm.detach(tbl, col, drop_history => true) removes a history.';
END
$$;

-- A dropped table takes its bindings with it. A bound column or a history
-- table cannot be dropped on its own (a table whose writes fail, or
-- transitions recorded nowhere): fsm.detach() first. A column drop only
-- reaches here with CASCADE, since the binding's triggers depend on it.
CREATE FUNCTION fsm.forget_dropped_tables() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lost record;
BEGIN
    DELETE FROM fsm.binding b
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid = 0 AND d.objid = b.tbl::pg_catalog.oid;
    SELECT b.tbl, b.col, d.object_identity AS identity INTO lost
      FROM fsm.binding b JOIN pg_catalog.pg_event_trigger_dropped_objects() d
        ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND ((d.objsubid = 0 AND d.objid = b.history::pg_catalog.oid)
            OR (d.objsubid > 0 AND d.objid = b.tbl::pg_catalog.oid
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                 WHERE a.attrelid = b.tbl::pg_catalog.oid AND a.attname = b.col
                                   AND NOT a.attisdropped)))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot drop %: the fsm binding of %.% needs it', lost.identity, lost.tbl, lost.col
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = pg_catalog.format('Run SELECT fsm.detach(%L, %L) first (drop_history => true drops its history too).',
                                           lost.tbl::pg_catalog.text, lost.col);
    END IF;
END
$$;
CREATE EVENT TRIGGER fsm_forget_dropped_tables ON sql_drop EXECUTE FUNCTION fsm.forget_dropped_tables();

-- After ALTER TABLE and CREATE TABLE: follow what a binding can follow,
-- refuse what it cannot (the statement fails, nothing changes).
--   * a renamed bound column: the binding takes the new name (the
--     triggers' WHEN clauses keep columns by number and follow by themselves);
--   * a new owner: the history table (and its partitions, if its owner
--     partitioned it) follows it (history is written and read as the
--     history table's owner, who must stay the table's owner);
--   * the primary key gone, composite, or of another type than the history's
--     entity_key: refused (entities would merge or vanish in history);
--   * a key whose type modifier changed: refused until the history's
--     entity_key is altered to match (the owner does it, not this function);
--   * an enum label a state uses renamed away: refused;
--   * a bound table in an inheritance tree, or turned into a partition:
--     refused (its rows would be reached without its triggers, or twice),
--     a foreign table inheriting from it included.
CREATE FUNCTION fsm.follow_table_changes() RETURNS event_trigger
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
CREATE EVENT TRIGGER fsm_follow_table_changes ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TYPE')
    EXECUTE FUNCTION fsm.follow_table_changes();

-- Ids (src/uuid7.rs); uuid7(at) and uuid7_time(id) are declared by pgrx.
-- PARALLEL RESTRICTED: a parallel worker has its own generator, and its
-- ids would not be ordered with the session's.
CREATE FUNCTION fsm.uuid7() RETURNS uuid LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'fsm_uuid7';
COMMENT ON FUNCTION fsm.uuid7() IS 'fsm: a new UUIDv7, strictly increasing within the session';
