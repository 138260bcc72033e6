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
