-- The raw C functions (src/v1.rs): their arguments are read and checked by
-- the extension itself (src/args.rs), so a NULL is 22004 and a wrong type a
-- clean error, never a crash.

-- fsm.create_machine (src/machines.rs): a raw C function, so the definition
-- arrives as the caller's own jsonb and NULL arguments are refused (22004).
CREATE FUNCTION fsm.create_machine(name text, definition jsonb, replace boolean DEFAULT false)
RETURNS integer LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_create_machine';
COMMENT ON FUNCTION fsm.create_machine(text, jsonb, boolean)
    IS 'fsm: stores a machine (or, with replace, a new version of it); returns its version';

-- fsm.fire (src/fire.rs): a raw C function, so every argument is read and
-- checked by the extension (a NULL is 22004, not a crash or a silent NULL).
CREATE FUNCTION fsm.fire(tbl regclass, key anyelement, event text,
                         payload jsonb DEFAULT NULL, expect text DEFAULT NULL, "to" text DEFAULT NULL,
                         col name DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name, text)
    IS 'fsm: fires an event on one entity; returns its new state';

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

-- Reading state and history: C functions (src/read.rs) that run one query
-- per call over the binding's tables, through a plan kept per backend, with
-- the caller's rights, so table grants and row security apply.

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

-- Called by the DDL event trigger (fsm.follow_table_changes): rows of a
-- partition attached to a bound table must hold states (src/ddl_watch.rs).
-- Not for direct use: it reads the table as the extension's owner.
CREATE FUNCTION fsm.check_new_partitions(tbl regclass) RETURNS void
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_check_new_partitions';
REVOKE ALL ON FUNCTION fsm.check_new_partitions(regclass) FROM PUBLIC;
COMMENT ON FUNCTION fsm.check_new_partitions(regclass)
    IS 'fsm: internal, for the DDL event trigger: checks the rows of partitions attached in this transaction';
