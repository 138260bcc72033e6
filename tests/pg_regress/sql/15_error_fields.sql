-- Machine-readable refusals: every refused transition sets PostgreSQL's
-- standard error fields (schema, table, column = the state column,
-- constraint = machine:event, or the machine where no event applies), the
-- same from fire and from the trigger. A client reads them without parsing
-- text: libpq PG_DIAG_*, psycopg e.diag, PL/pgSQL GET STACKED DIAGNOSTICS.
\set SHOW_CONTEXT never
CREATE SCHEMA depot;
CREATE TABLE depot.parcels (id int PRIMARY KEY, tracking text, status text);
CREATE FUNCTION depot.has_tracking(p depot.parcels, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT p.tracking IS NOT NULL $$;
CREATE FUNCTION depot.broken_guard(p depot.parcels, payload jsonb) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the guard itself failed' USING ERRCODE = 'check_violation'; END $$;
CREATE ROLE parcel_clerk;
SELECT fsm.create_machine('courier_box', '{
  "states": {"new": {"initial": true}, "paid": {}, "sent": {}, "gone": {"final": true}},
  "events": {"pay":   {"from": "new", "to": "paid", "payload": {"type": "object", "required": ["amount"]}},
             "send":  {"from": "paid", "to": "sent", "guard": "depot.has_tracking"},
             "lose":  {"from": "sent", "to": "gone", "guard": "depot.broken_guard"},
             "void":  {"from": ["new", "paid"], "to": "gone", "roles": ["parcel_clerk"]}}}');
SELECT fsm.attach('depot.parcels', 'status', 'courier_box') IS NOT NULL AS attached;
INSERT INTO depot.parcels (id) VALUES (1), (2);

-- What a client sees of an error: its SQLSTATE and the four fields.
CREATE FUNCTION diag(statement text)
RETURNS TABLE (code text, schema_name text, table_name text, column_name text, constraint_name text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN QUERY SELECT 'no error', NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, schema_name = SCHEMA_NAME,
        table_name = TABLE_NAME, column_name = COLUMN_NAME, constraint_name = CONSTRAINT_NAME;
    RETURN NEXT;
END $$;

-- From fire: the event is named.
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'send')$$);
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'pay')$$);
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'pay', '{"amount": 1}', expect => 'paid')$$);
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 99, 'pay', '{"amount": 1}')$$);
CREATE ROLE parcel_outsider;
GRANT USAGE ON SCHEMA depot TO parcel_outsider;
GRANT SELECT, UPDATE ON depot.parcels TO parcel_outsider;
SET ROLE parcel_outsider;
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'void')$$);
RESET ROLE;
SELECT fsm.fire('depot.parcels', 1, 'pay', '{"amount": 1}');
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'send')$$);
-- An unknown event: no event of the machine applies.
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'nope')$$);

-- From the trigger: the same fields, the same SQLSTATEs.
SELECT * FROM diag($$UPDATE depot.parcels SET status = 'new' WHERE id = 1$$);
SELECT * FROM diag($$UPDATE depot.parcels SET status = 'sent' WHERE id = 1$$);
SELECT * FROM diag($$INSERT INTO depot.parcels (id, status) VALUES (3, 'paid')$$);
SELECT * FROM diag($$UPDATE depot.parcels SET status = 'bogus' WHERE id = 1$$);

-- From can_fire, for what is not a "no".
SELECT * FROM diag($$SELECT fsm.can_fire('depot.parcels', 99, 'pay')$$);

-- An error that is not fsm's refusal gets no fields, even with the same
-- SQLSTATE right after one that had them (here a guard's own 23514).
UPDATE depot.parcels SET tracking = 'T1' WHERE id = 1;
SELECT fsm.fire('depot.parcels', 1, 'send');
SELECT fsm.fire('depot.parcels', 2, 'pay', '{"amount": 1}');
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 2, 'send')$$);
SELECT * FROM diag($$SELECT fsm.fire('depot.parcels', 1, 'lose')$$);
SELECT * FROM diag($$SELECT 1 / 0$$);

-- An error PostgreSQL raises with fields of its own keeps them when it
-- passes through fsm: a CHECK violation of the table fire updates, and a
-- unique violation in an action, read as from a plain UPDATE (fire's
-- UPDATE runs inside fsm's function, which re-raises the error at its
-- boundary).
CREATE TABLE depot.crates (id int PRIMARY KEY, status text,
                           CONSTRAINT no_paid_crate CHECK (status IS DISTINCT FROM 'paid'));
SELECT fsm.create_machine('crate', '{
  "states": {"new": {"initial": true}, "paid": {"final": true}},
  "events": {"pay": {"from": "new", "to": "paid"}}}');
SELECT fsm.attach('depot.crates', 'status', 'crate') IS NOT NULL AS attached;
INSERT INTO depot.crates (id) VALUES (1);
SELECT * FROM diag($$SELECT fsm.fire('depot.crates', 1, 'pay')$$);
SELECT * FROM diag($$UPDATE depot.crates SET status = 'paid' WHERE id = 1$$);
CREATE TABLE depot.bins (id int PRIMARY KEY, status text, slot int CONSTRAINT one_bin_per_slot UNIQUE);
CREATE FUNCTION depot.take_slot_one(b depot.bins, payload jsonb) RETURNS void
    LANGUAGE sql AS $$ UPDATE depot.bins SET slot = 1 WHERE id = b.id $$;
SELECT fsm.create_machine('slotted', '{
  "states": {"new": {"initial": true}, "done": {"final": true}},
  "events": {"finish": {"from": "new", "to": "done", "action": "depot.take_slot_one"}}}');
SELECT fsm.attach('depot.bins', 'status', 'slotted') IS NOT NULL AS attached;
INSERT INTO depot.bins (id, slot) VALUES (1, 1), (2, 2);
SELECT * FROM diag($$SELECT fsm.fire('depot.bins', 2, 'finish')$$);
-- Nothing moved.
SELECT id, status, slot FROM depot.bins ORDER BY id;
-- A refusal right after still gets fsm's own fields, not those.
SELECT * FROM diag($$SELECT fsm.fire('depot.bins', 2, 'nope')$$);
