-- Nothing another role plants in public is ever run by the extension's own
-- SQL (CVE-2018-1058). A role with CREATE on public plants operators and
-- functions for every type pair and function the extension uses; then a
-- superuser, with public first on its search_path, uses every function of
-- the extension. A planted object that ran would log itself in
-- public.planted_ran (and try to make its author a superuser).
\set SHOW_CONTEXT never
CREATE ROLE planter LOGIN;
GRANT CREATE ON SCHEMA public TO planter;
CREATE TABLE public.planted_ran (what text);
GRANT INSERT ON public.planted_ran TO PUBLIC;

SET ROLE planter;
CREATE FUNCTION public.planted(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_ran VALUES (what);
    BEGIN
        ALTER ROLE planter SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END $$;
-- Comparison operators for every pair of types the extension compares.
DO $$
DECLARE
    t text;
    op text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'name', 'oid', 'regclass', 'bigint', 'integer', 'smallint',
                             'uuid', '"char"', 'varchar', 'boolean', 'numeric', 'jsonb', 'int2vector']
    LOOP
        EXECUTE format('CREATE FUNCTION public.planted_cmp(a %s, b %s) RETURNS boolean
                        LANGUAGE sql AS $f$ SELECT public.planted(%L) $f$', t, t, 'operator on ' || t);
        FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>=']
        LOOP
            EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.planted_cmp)',
                           op, t, t);
        END LOOP;
    END LOOP;
END $$;
CREATE FUNCTION public.planted_cmp_ro(a regclass, b oid) RETURNS boolean
    LANGUAGE sql AS $f$ SELECT public.planted('operator on regclass, oid') $f$;
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = public.planted_cmp_ro);
CREATE FUNCTION public.planted_concat(a text, b text) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('operator ||') THEN a END $f$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.planted_concat);
-- Functions the extension calls, with signatures that would win over
-- pg_catalog's by matching more exactly.
CREATE FUNCTION public.format(text, text, text) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('format') THEN $1 END $f$;
CREATE FUNCTION public.quote_ident(name) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('quote_ident') THEN $1::text END $f$;
CREATE FUNCTION public.quote_literal(varchar) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('quote_literal') THEN $1::text END $f$;
CREATE FUNCTION public.format_type(oid, integer) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('format_type') THEN 'text' END $f$;
CREATE FUNCTION public.to_regprocedure(text) RETURNS regprocedure
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('to_regprocedure') THEN NULL::regprocedure END $f$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('unnest') THEN NULL::text END $f$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('unnest') THEN NULL::bigint END $f$;
CREATE FUNCTION public.concat(text, text, text, text, text) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('concat') THEN $1 END $f$;
CREATE FUNCTION public.strpos(varchar, varchar) RETURNS integer
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('strpos') THEN 0 END $f$;
CREATE FUNCTION public.now() RETURNS timestamptz
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('now') THEN pg_catalog.now() END $f$;
CREATE FUNCTION public.count(bigint) RETURNS bigint
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('count') THEN 0::bigint END $f$;
CREATE FUNCTION public.pg_notify(varchar, varchar) RETURNS void
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('pg_notify') THEN NULL END $f$;
CREATE FUNCTION public.array_to_string(name[], text) RETURNS text
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('array_to_string') THEN '' END $f$;
CREATE FUNCTION public.uuid7_time(uuid) RETURNS timestamptz
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('uuid7_time') THEN pg_catalog.now() END $f$;
CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('pg_advisory_xact_lock') THEN NULL END $f$;
CREATE FUNCTION public.hashtextextended(varchar, integer) RETURNS bigint
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('hashtextextended') THEN 0::bigint END $f$;
CREATE FUNCTION public.planted_agg_step(bigint[], bigint) RETURNS bigint[]
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('array_agg') THEN $1 END $f$;
CREATE AGGREGATE public.array_agg(bigint) (SFUNC = public.planted_agg_step, STYPE = bigint[]);
CREATE FUNCTION public.planted_plus(timestamptz, interval) RETURNS timestamptz
    LANGUAGE sql AS $f$ SELECT CASE WHEN public.planted('operator + on timestamptz') THEN $1 END $f$;
CREATE OPERATOR public.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.planted_plus);
-- Casts between the types the extension compares cannot be planted at all:
-- only an owner of one of the types may create a cast.
CREATE CAST (text AS bigint) WITH INOUT;
\echo :LAST_ERROR_SQLSTATE
CREATE CAST (bigint AS text) WITH INOUT;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A superuser with public first on its search_path uses everything (the
-- test's own statements qualify their operators, so only the extension's
-- SQL is on trial).
SET search_path = public, pg_catalog, fsm;
CREATE SCHEMA store;
CREATE TABLE store.parcels (id bigint PRIMARY KEY, status text, note text);
CREATE FUNCTION store.has_paid(o store.parcels, p jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
SELECT fsm.create_machine('courier', '{
  "states": {"new": {"initial": true}, "sent": {}, "done": {"final": true}},
  "events": {"send": {"from": "new", "to": "sent"},
             "finish": {"from": "sent", "to": "done", "guard": "store.has_paid", "payload": {"type": "object"}},
             "touch": {"from": "sent", "to": "sent"}}}');
SELECT fsm.create_machine('courier', (SELECT definition FROM fsm.machines WHERE name OPERATOR(pg_catalog.=) 'courier'), true);
SELECT fsm.attach('store.parcels', 'status', 'courier');
INSERT INTO store.parcels (id) SELECT g FROM generate_series(1, 5) g;
UPDATE store.parcels SET status = 'sent' WHERE id OPERATOR(pg_catalog.<=) 2;
SELECT fsm.fire('store.parcels', 3, 'send', '{}');
SELECT fsm.fire('store.parcels', 4::integer, 'send', '{}', expect => 'new');
SELECT fsm.fire('store.parcels', 1, 'finish', '{}');
SELECT fsm.fire('store.parcels', 2, 'touch');
SELECT fsm.drop_machine('courier');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM fsm.history('store.parcels', 1::bigint, since => pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour', lim => 10);
SELECT count(*) FROM fsm.current_states('store.parcels', ARRAY[1, 2, 3, 4, 5]::bigint[]);
SELECT count(*) FROM fsm.current_states('store.parcels', ARRAY[1, 2]::integer[]);
SELECT count(*) FROM fsm.changes('store.parcels', since => pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour', event => 'send', lim => 10);
SELECT count(*) FROM fsm.states_at('store.parcels', ARRAY[1, 2, 3]::bigint[], pg_catalog.now());
SELECT fsm.can_fire('store.parcels', 5, 'send', '{}'), fsm.can_fire('store.parcels', 1, 'finish', '{}');
SELECT count(*) FROM fsm.available_events('store.parcels', 5);
SELECT fsm.machine_definition('courier', 1) IS NOT NULL AS first_version;
SELECT fsm.fire('store.parcels', 5, 'send', '{}', idempotency_key => 'once'),
       fsm.fire('store.parcels', 5, 'send', '{}', idempotency_key => 'once');
SELECT fsm.to_dot('courier') IS NOT NULL, fsm.to_mermaid('courier') IS NOT NULL;
SELECT fsm.detach('store.parcels', 'status');
SELECT fsm.attach('store.parcels', 'note', 'courier');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.detach('store.parcels', 'status');
\echo :LAST_ERROR_SQLSTATE
RESET search_path;

-- Nothing planted ran, and the planter is no superuser.
SELECT what AS planted_object_that_ran, count(*) FROM public.planted_ran GROUP BY 1 ORDER BY 1;
SELECT rolsuper FROM pg_roles WHERE rolname = 'planter';
