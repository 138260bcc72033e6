-- The history rows of a statement belong to it. fsm holds them until the
-- statement ends; a statement nested inside it (an AFTER trigger's own
-- writes, a function with SET fsm.actor, a SECURITY DEFINER trigger) ends
-- first, and must neither append them in its subtransaction (whose
-- rollback would lose them while the moves stay) nor record itself as who
-- made them.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS fsm;
SELECT fsm.create_machine('hr_lamp', '{
  "states": {"off": {"initial": true}, "on": {}},
  "events": {"switch_on": {"from": "off", "to": "on"}, "switch_off": {"from": "on", "to": "off"}}}') AS version;
CREATE TABLE hr_lamps (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_lamps', 's', 'hr_lamp') AS history;
CREATE TABLE hr_scratch (n int);
INSERT INTO hr_lamps (id) VALUES (1), (2);

-- An AFTER trigger that writes inside BEGIN ... EXCEPTION and rolls back.
CREATE FUNCTION note_and_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        INSERT INTO hr_scratch VALUES (NEW.id);
        RAISE EXCEPTION 'forget it';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN NULL;
END $$;
CREATE TRIGGER note_and_forget AFTER UPDATE ON hr_lamps FOR EACH ROW EXECUTE FUNCTION note_and_forget();
UPDATE hr_lamps SET s = 'on';
SELECT entity_key, event, from_state, to_state FROM hr_lamps_s_history ORDER BY id;
SELECT count(*) AS scratch_rows FROM hr_scratch;
DROP TRIGGER note_and_forget ON hr_lamps;

-- Who made the moves: the role and fsm.actor of the UPDATE, not of a
-- SECURITY DEFINER trigger nor of a function with its own fsm.actor.
CREATE ROLE hr_lamp_user;
CREATE ROLE hr_lamp_auditor;
GRANT SELECT, UPDATE ON hr_lamps TO hr_lamp_user;
GRANT INSERT ON hr_scratch TO hr_lamp_auditor;
CREATE FUNCTION audit_as_owner() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.hr_scratch VALUES (NEW.id);
    RETURN NULL;
END $$;
ALTER FUNCTION audit_as_owner() OWNER TO hr_lamp_auditor;
CREATE FUNCTION robot_write() RETURNS trigger LANGUAGE plpgsql SET fsm.actor = 'robot' AS $$
BEGIN
    INSERT INTO public.hr_scratch VALUES (-NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER a_audit AFTER UPDATE ON hr_lamps FOR EACH ROW EXECUTE FUNCTION audit_as_owner();
CREATE TRIGGER b_robot AFTER UPDATE ON hr_lamps FOR EACH ROW EXECUTE FUNCTION robot_write();
GRANT INSERT ON hr_scratch TO hr_lamp_user;
SET ROLE hr_lamp_user;
SET fsm.actor = 'ada';
UPDATE hr_lamps SET s = 'off';
RESET fsm.actor;
RESET ROLE;
SELECT entity_key, event, actor, db_user FROM hr_lamps_s_history WHERE event = 'switch_off' ORDER BY id;
SELECT count(*) AS history_rows FROM hr_lamps_s_history;

-- A BEFORE trigger that writes another state than fire's move: fire does
-- not report a move the row did not make, nor lose its payload.
CREATE FUNCTION hr_redirect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.s := 'off';
    RETURN NEW;
END $$;
DROP TRIGGER a_audit ON hr_lamps;
DROP TRIGGER b_robot ON hr_lamps;
UPDATE hr_lamps SET s = 'on' WHERE id = 1;
CREATE TRIGGER hr_redirect BEFORE UPDATE ON hr_lamps FOR EACH ROW EXECUTE FUNCTION hr_redirect();
SELECT fsm.fire('hr_lamps', 1, 'switch_off', '{"why": "night"}');
SELECT fsm.fire('hr_lamps', 2, 'switch_on', '{"why": "dusk"}');
\echo :LAST_ERROR_SQLSTATE
SELECT id, s FROM hr_lamps ORDER BY id;
SELECT entity_key, event, to_state, payload FROM hr_lamps_s_history ORDER BY id DESC LIMIT 2;
