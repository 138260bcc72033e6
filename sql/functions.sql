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
                         col name DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name)
    IS 'fsm: fires an event on one entity; returns its new state';

-- Reading state and history: C functions (src/read.rs) that run one query
-- per call over the binding's tables, through a plan kept per backend, with
-- the caller's rights, so table grants and row security apply.

CREATE FUNCTION fsm.history(tbl regclass, key anyelement,
                            since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                            lim integer DEFAULT NULL)
RETURNS TABLE (id uuid, at timestamptz, event text, from_state text, to_state text,
               payload jsonb, actor text, db_user text)
LANGUAGE c STABLE ROWS 10 AS 'MODULE_PATHNAME', 'fsm_history';
COMMENT ON FUNCTION fsm.history(regclass, anyelement, timestamptz, timestamptz, integer)
    IS 'fsm: one entity''s history, newest first; since inclusive, until exclusive (millisecond precision)';

CREATE FUNCTION fsm.current_states(tbl regclass, keys anyarray)
RETURNS TABLE (entity_key anyelement, state text, since timestamptz, last_event text, transition_id uuid)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fsm_current_states';
COMMENT ON FUNCTION fsm.current_states(regclass, anyarray)
    IS 'fsm: the state of each existing key, with the moment, event and id of its last transition';
