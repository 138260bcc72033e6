-- Schema for every workload in BENCH.md: one machine, and for each
-- workload prefix (w1, w2, w3, …) the same table in up to five variants:
--
--   <p>_bare   no history, no checks                  (W3 stretch reference)
--   <p>_floor  no checks; the caller writes the history row itself in the
--              same statement (a data-modifying CTE, gen_random_uuid() ids)
--   <p>_pl     what a user writes today: a transitions table, BEFORE
--              triggers in PL/pgSQL (UPDATE OF status, WHEN clause), a
--              PL/pgSQL guard, a history table with a timestamp index
--   <p>_fsm    fsm.attach, moved by UPDATE
--   <p>_fire   fsm.attach, moved by fsm.fire
--
-- All history tables have fsm's shape (uuid id, entity_key, event,
-- from_state, to_state, payload, actor, db_user) and an index on
-- (entity_key, <order>); the PL/pgSQL one adds the `at` column its users
-- need because gen_random_uuid() carries no time.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fsm;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

-- The guard is overloaded per table (make_variants creates bench.may_ship
-- for each bound table's row type); create_machine needs one to exist.
CREATE TYPE bench.any_order AS (id bigint, status text);
CREATE FUNCTION bench.may_ship(o bench.any_order, payload jsonb) RETURNS boolean
LANGUAGE sql AS 'SELECT true';

SELECT fsm.create_machine('bench_order', '{
  "states": {"created": {"initial": true}, "paid": {}, "on_hold": {}, "shipped": {},
             "delivered": {"final": true}, "cancelled": {"final": true}},
  "events": {"pay":     {"from": "created", "to": "paid"},
             "hold":    {"from": "paid", "to": "on_hold"},
             "resume":  {"from": "on_hold", "to": "paid"},
             "ship":    {"from": "paid", "to": "shipped", "guard": "bench.may_ship"},
             "deliver": {"from": "shipped", "to": "delivered"},
             "cancel":  {"from": ["created", "paid", "on_hold"], "to": "cancelled"}}
}', replace => true);

-- The PL/pgSQL baseline's transitions table: the same machine, one row per
-- (from, to) pair, with a flag for the pair whose event has a guard.
CREATE TABLE bench.pl_transition (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    event      text NOT NULL,
    guarded    boolean NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO bench.pl_transition
SELECT from_state, to_state, event, event = 'ship' FROM fsm.transitions WHERE machine = 'bench_order';

-- Creates the variants of one workload's table.
CREATE FUNCTION bench.make_variants(p text, variants text[]) RETURNS void
LANGUAGE plpgsql AS $make$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY variants LOOP
        EXECUTE format('CREATE TABLE bench.%I (id bigint PRIMARY KEY, status text, note integer NOT NULL DEFAULT 0)',
                       p || '_' || v);
    END LOOP;

    IF 'floor' = ANY (variants) THEN
        EXECUTE format($$
            CREATE TABLE bench.%1$I (id uuid PRIMARY KEY, entity_key bigint NOT NULL, event text,
                                     from_state text, to_state text NOT NULL, payload jsonb,
                                     actor text, db_user text NOT NULL DEFAULT current_user);
            CREATE INDEX ON bench.%1$I (entity_key, id);$$, p || '_floor_history');
    END IF;

    IF 'pl' = ANY (variants) THEN
        EXECUTE format($$
            CREATE TABLE bench.%1$I (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), entity_key bigint NOT NULL,
                                     event text, from_state text, to_state text NOT NULL, payload jsonb,
                                     actor text, db_user text NOT NULL DEFAULT current_user,
                                     at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON bench.%1$I (entity_key, at);

            CREATE FUNCTION bench.%2$I(o bench.%3$I) RETURNS boolean
            LANGUAGE plpgsql AS 'BEGIN RETURN o.id IS NOT NULL; END';

            CREATE FUNCTION bench.%4$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                IF NEW.status IS NULL THEN
                    NEW.status := 'created';
                ELSIF NEW.status <> 'created' THEN
                    RAISE EXCEPTION 'orders start in state created, not %%', NEW.status
                        USING ERRCODE = 'object_not_in_prerequisite_state';
                END IF;
                INSERT INTO bench.%1$I (entity_key, to_state, actor)
                VALUES (NEW.id, NEW.status, current_setting('fsm.actor', true));
                RETURN NEW;
            END $body$;

            CREATE FUNCTION bench.%5$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            DECLARE
                t bench.pl_transition;
            BEGIN
                SELECT * INTO t FROM bench.pl_transition
                 WHERE from_state = OLD.status AND to_state = NEW.status;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'no event leads from %% to %%', OLD.status, NEW.status
                        USING ERRCODE = 'object_not_in_prerequisite_state';
                END IF;
                IF t.guarded AND NOT bench.%2$I(NEW) THEN
                    RAISE EXCEPTION 'guard refused %%', t.event USING ERRCODE = 'check_violation';
                END IF;
                INSERT INTO bench.%1$I (entity_key, event, from_state, to_state, actor)
                VALUES (NEW.id, t.event, OLD.status, NEW.status, current_setting('fsm.actor', true));
                RETURN NEW;
            END $body$;

            CREATE TRIGGER pl_insert BEFORE INSERT ON bench.%3$I
                FOR EACH ROW EXECUTE FUNCTION bench.%4$I();
            CREATE TRIGGER pl_update BEFORE UPDATE OF status ON bench.%3$I
                FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
                EXECUTE FUNCTION bench.%5$I();$$,
            p || '_pl_history', p || '_pl_may_ship', p || '_pl', p || '_pl_on_insert', p || '_pl_on_update');
    END IF;

    FOREACH v IN ARRAY ARRAY['fsm', 'fire', 'fire_into'] LOOP
        CONTINUE WHEN NOT v = ANY (variants);
        EXECUTE format($$
            CREATE FUNCTION bench.may_ship(o bench.%1$I, payload jsonb) RETURNS boolean
            LANGUAGE plpgsql AS 'BEGIN RETURN o.id IS NOT NULL; END';$$, p || '_' || v);
        PERFORM fsm.attach(format('bench.%I', p || '_' || v)::regclass, 'status', 'bench_order');
    END LOOP;
END
$make$;

-- The same table partitioned by hash of the key into `parts` partitions:
-- `<p>_floorpart` (with its history table) and `<p>_fsmpart` (attached as a
-- whole), for W3 on a partitioned table.
CREATE FUNCTION bench.make_partitioned_variants(p text, parts integer) RETURNS void
LANGUAGE plpgsql AS $make$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['floorpart', 'fsmpart'] LOOP
        EXECUTE format('CREATE TABLE bench.%I (id bigint PRIMARY KEY, status text, note integer NOT NULL DEFAULT 0)
                        PARTITION BY HASH (id)', p || '_' || v);
        FOR i IN 0 .. parts - 1 LOOP
            EXECUTE format('CREATE TABLE bench.%I PARTITION OF bench.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                           p || '_' || v || '_' || i, p || '_' || v, parts, i);
        END LOOP;
    END LOOP;
    EXECUTE format($$
        CREATE TABLE bench.%1$I (id uuid PRIMARY KEY, entity_key bigint NOT NULL, event text,
                                 from_state text, to_state text NOT NULL, payload jsonb,
                                 actor text, db_user text NOT NULL DEFAULT current_user);
        CREATE INDEX ON bench.%1$I (entity_key, id);
        CREATE FUNCTION bench.may_ship(o bench.%2$I, payload jsonb) RETURNS boolean
        LANGUAGE plpgsql AS 'BEGIN RETURN o.id IS NOT NULL; END';$$,
        p || '_floorpart_history', p || '_fsmpart');
    PERFORM fsm.attach(format('bench.%I', p || '_fsmpart')::regclass, 'status', 'bench_order');
END
$make$;

-- Drops what make_variants made (fsm bindings and their history first).
CREATE FUNCTION bench.drop_variants(prefix text) RETURNS void
LANGUAGE plpgsql AS $drop$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT tbl FROM fsm.bindings WHERE tbl::text LIKE 'bench.' || prefix || '\_%' LOOP
        PERFORM fsm.detach(r.tbl, 'status', drop_history => true);
    END LOOP;
    -- Partitioned tables go with their partitions.
    FOR r IN SELECT c.oid::regclass AS tbl FROM pg_class c
              WHERE c.relnamespace = 'bench'::regnamespace AND c.relkind IN ('r', 'p')
                AND NOT c.relispartition AND c.relname LIKE prefix || '\_%' LOOP
        EXECUTE format('DROP TABLE %s CASCADE', r.tbl);
    END LOOP;
    FOR r IN SELECT f.oid::regprocedure AS fn FROM pg_proc f
              WHERE f.pronamespace = 'bench'::regnamespace AND f.proname LIKE prefix || '\_%' LOOP
        EXECUTE format('DROP FUNCTION %s', r.fn);
    END LOOP;
END
$drop$;

SELECT bench.make_variants('w1', ARRAY['floor', 'pl', 'fsm', 'fire']);
CREATE SEQUENCE bench.w1_ids;

SELECT bench.make_variants('w2', ARRAY['bare', 'fsm']);
