-- fsm 0.1.0 -> 0.2.0 (ALTER EXTENSION fsm UPDATE TO '0.2.0').
-- tests/upgrade/run.sh installs 0.1.0 (commit e9d40d4), makes bindings with
-- history, runs this script, and compares the schema with a fresh 0.2.0.
\echo Use "ALTER EXTENSION fsm UPDATE TO '0.2.0'" to load this file. \quit

-- Machines have owners (API.md §8). Those made before 0.2.0 belong to the
-- extension's owner: a superuser, who may hand them on with UPDATE.
ALTER TABLE fsm.machine ADD COLUMN owner regrole;
UPDATE fsm.machine SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension e
                                 WHERE e.extname OPERATOR(pg_catalog.=) 'fsm')::pg_catalog.regrole;
ALTER TABLE fsm.machine ALTER COLUMN owner SET NOT NULL;
CREATE OR REPLACE VIEW fsm.machines AS
    SELECT name, version, definition, owner FROM fsm.machine;

-- create_machine and fire became raw C functions (NULLs are 22004, the
-- caller's jsonb is kept as given); fire takes col.
DROP FUNCTION fsm.create_machine(text, jsonb, boolean);
CREATE FUNCTION fsm.create_machine(name text, definition jsonb, replace boolean DEFAULT false)
RETURNS integer LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_create_machine';
COMMENT ON FUNCTION fsm.create_machine(text, jsonb, boolean)
    IS 'fsm: stores a machine (or, with replace, a new version of it); returns its version';

DROP FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text);
CREATE FUNCTION fsm.fire(tbl regclass, key anyelement, event text,
                         payload jsonb DEFAULT NULL, expect text DEFAULT NULL, "to" text DEFAULT NULL,
                         col name DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name)
    IS 'fsm: fires an event on one entity; returns its new state';

-- NULL arguments are refused with 22004 instead of returning NULL.
CREATE OR REPLACE FUNCTION fsm.drop_machine("name" text) RETURNS void
    VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'drop_machine_wrapper';
CREATE OR REPLACE FUNCTION fsm.machine_definition("name" text) RETURNS jsonb
    STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'machine_definition_wrapper';
CREATE OR REPLACE FUNCTION fsm.to_dot("name" text) RETURNS text
    STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'to_dot_wrapper';
CREATE OR REPLACE FUNCTION fsm.to_mermaid("name" text) RETURNS text
    STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'to_mermaid_wrapper';

-- A parallel worker's ids would not be ordered with its leader's.
ALTER FUNCTION fsm.uuid7() PARALLEL RESTRICTED;

-- Bindings: history tables gain the columns of API.md; bound tables get
-- 0.2.0's triggers (one set per table, checking and recording after the
-- write); history tables lose the SELECT grants 0.1.0 copied from the
-- table (history is read through fsm.history and the other read functions,
-- which check SELECT on the table at each call; the owner may grant again).
DO $upgrade$
DECLARE
    b record;
    t record;
    g record;
    columns text[];
BEGIN
    FOR b IN SELECT bb.tbl, bb.col, bb.history FROM fsm.binding bb LOOP
        EXECUTE pg_catalog.format(
            'ALTER TABLE %s ADD COLUMN machine_version pg_catalog.int4, ADD COLUMN idempotency_key pg_catalog.text',
            b.history);
        FOR g IN
            SELECT DISTINCT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS grantee
              FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid OPERATOR(pg_catalog.=) b.history::pg_catalog.oid
               AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
        LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', b.history, g.grantee);
            RAISE NOTICE 'fsm 0.2.0: revoked the grants of % on history table %', g.grantee, b.history;
        END LOOP;
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', b.history);
    END LOOP;
    FOR t IN SELECT DISTINCT bb.tbl FROM fsm.binding bb LOOP
        FOR g IN
            SELECT tg.tgname FROM pg_catalog.pg_trigger tg
             WHERE tg.tgrelid OPERATOR(pg_catalog.=) t.tbl::pg_catalog.oid AND NOT tg.tgisinternal
               AND tg.tgfoid OPERATOR(pg_catalog.=) 'fsm.enforce()'::pg_catalog.regprocedure
        LOOP
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', g.tgname, t.tbl);
        END LOOP;
        SELECT pg_catalog.array_agg(pg_catalog.quote_ident(bb.col::pg_catalog.text) ORDER BY bb.col::pg_catalog.text)
          INTO columns FROM fsm.binding bb WHERE bb.tbl OPERATOR(pg_catalog.=) t.tbl;
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER zz_fsm_fill BEFORE INSERT ON %1$s FOR EACH ROW WHEN (%2$s) EXECUTE FUNCTION fsm.enforce();
             CREATE TRIGGER zz_fsm_inserted AFTER INSERT ON %1$s FOR EACH ROW EXECUTE FUNCTION fsm.enforce();
             CREATE TRIGGER zz_fsm_updated AFTER UPDATE ON %1$s FOR EACH ROW WHEN (%3$s) EXECUTE FUNCTION fsm.enforce();',
            t.tbl,
            (SELECT pg_catalog.string_agg(pg_catalog.format('NEW.%s IS NULL', c), ' OR ') FROM pg_catalog.unnest(columns) c),
            (SELECT pg_catalog.string_agg(pg_catalog.format('OLD.%1$s IS DISTINCT FROM NEW.%1$s', c), ' OR ')
               FROM pg_catalog.unnest(columns) c));
    END LOOP;
END
$upgrade$;

-- Event triggers: dropped history tables and columns refused, renamed
-- columns followed, keys and inheritance checked, owners followed.
CREATE OR REPLACE FUNCTION fsm.forget_dropped_tables() RETURNS event_trigger
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

    SELECT b.tbl, b.col INTO bad FROM fsm.binding b JOIN pg_catalog.pg_class t ON t.oid = b.tbl::pg_catalog.oid
     WHERE t.relispartition
        OR EXISTS (SELECT FROM pg_catalog.pg_inherits i
                    WHERE i.inhrelid = t.oid
                       OR (i.inhparent = t.oid AND t.relkind <> 'p'))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the fsm binding of %.% does not cover inheritance, nor a partition of its own', bad.tbl, bad.col
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Use declarative partitioning and attach the machine to the partitioned table.';
    END IF;

    FOR moved IN
        SELECT DISTINCT h.oid AS history, t.relowner AS owner
          FROM fsm.binding b
          JOIN pg_catalog.pg_class t ON t.oid = b.tbl::pg_catalog.oid
          JOIN pg_catalog.pg_class h ON h.oid = b.history::pg_catalog.oid
         WHERE h.relowner <> t.relowner
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I',
                                  moved.history::pg_catalog.regclass, pg_catalog.pg_get_userbyid(moved.owner));
    END LOOP;
END
$$;
CREATE EVENT TRIGGER fsm_follow_table_changes ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE') EXECUTE FUNCTION fsm.follow_table_changes();

