-- fsm.fire (src/fire.rs): a raw C function, so every argument is read and
-- checked by the extension (a NULL is 22004, not a crash or a silent NULL).
CREATE FUNCTION fsm.fire(tbl regclass, key anyelement, event text,
                         payload jsonb DEFAULT NULL, expect text DEFAULT NULL, "to" text DEFAULT NULL,
                         col name DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fsm_fire';
COMMENT ON FUNCTION fsm.fire(regclass, anyelement, text, jsonb, text, text, name)
    IS 'fsm: fires an event on one entity; returns its new state';
