-- fsm.create_machine (src/machines.rs): a raw C function, so the definition
-- arrives as the caller's own jsonb and NULL arguments are refused (22004).
CREATE FUNCTION fsm.create_machine(name text, definition jsonb, replace boolean DEFAULT false)
RETURNS integer LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_create_machine';
COMMENT ON FUNCTION fsm.create_machine(text, jsonb, boolean)
    IS 'fsm: stores a machine (or, with replace, a new version of it); returns its version';
