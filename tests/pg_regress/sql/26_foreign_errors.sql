-- Errors that are not fsm's pass through as raised. Loaded in a backend,
-- fsm's hooks see every statement end; they must never catch, rewrite or
-- strip an error they did not raise: not its SQLSTATE (custom ones
-- included), message, detail, hint, CONTEXT, position or query. Each
-- statement below runs once before the library is loaded in this session
-- and once after, and both are compared. A guard's or an action's own
-- error also leaves fire, can_fire and a plain UPDATE as the function
-- raised it.
-- (Verbose error output would print source locations, which differ between
-- PostgreSQL versions: the default shows the rest, and the SQLSTATE is echoed.)
\set SHOW_CONTEXT always
CREATE EXTENSION IF NOT EXISTS fsm;
CREATE TABLE fe_ledger (id int PRIMARY KEY, amount int);
CREATE FUNCTION fe_ledger_refuses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fe_ledger entry % refused', NEW.id
        USING ERRCODE = 'LG001', DETAIL = 'amount ' || NEW.amount, HINT = 'ask accounting';
END $$;
CREATE TRIGGER fe_ledger_refuses AFTER INSERT ON fe_ledger FOR EACH ROW
    WHEN (NEW.amount < 0) EXECUTE FUNCTION fe_ledger_refuses();
CREATE PROCEDURE fe_settle(n int) LANGUAGE plpgsql AS $$
BEGIN
    IF n > 1 THEN
        RAISE EXCEPTION 'cannot settle %', n USING ERRCODE = 'SK001', TABLE = 'fe_ledger';
    END IF;
END $$;

-- Everything a handler can read of an error, as one row.
CREATE FUNCTION fe_caught(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    code text; message text; detail text; hint text; context text;
    tbl text; constr text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
        context = PG_EXCEPTION_CONTEXT, tbl = TABLE_NAME, constr = CONSTRAINT_NAME;
    RETURN concat_ws(' | ', code, message, detail, hint, tbl, constr, context);
END $$;
CREATE TABLE fe_statements (n int PRIMARY KEY, statement text);
INSERT INTO fe_statements VALUES
    (1, $q$DO $d$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'AB123'; END $d$$q$),
    (2, $$CALL fe_settle(2)$$),
    (3, $$INSERT INTO fe_ledger VALUES (1, -5)$$),
    (4, $$SELECT 'not a number'::int$$),
    (5, $q$DO $d$ BEGIN EXECUTE 'SELECT FROM WHERE'; END $d$$q$),
    (6, $$INSERT INTO fe_ledger VALUES (2, 1), (2, 1)$$);

-- Before fsm is loaded in this session (nothing above calls it).
CREATE TEMP TABLE before AS SELECT n, fe_caught(statement) AS error FROM fe_statements;
DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'AB123'; END $$;
\echo :LAST_ERROR_SQLSTATE
CALL fe_settle(2);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO fe_ledger VALUES (1, -5);
\echo :LAST_ERROR_SQLSTATE
SELECT 'not a number'::int;
\echo :LAST_ERROR_SQLSTATE
COPY fe_ledger FROM stdin;
3	-1
\.
DO $$
BEGIN
    CALL fe_settle(3);
EXCEPTION WHEN SQLSTATE 'SK001' THEN
    RAISE NOTICE 'caught SK001 by its code';
END $$;

-- Load fsm into this backend.
SELECT fsm.uuid7() IS NOT NULL AS loaded;
CREATE TEMP TABLE after AS SELECT n, fe_caught(statement) AS error FROM fe_statements;
DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'AB123'; END $$;
\echo :LAST_ERROR_SQLSTATE
CALL fe_settle(2);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO fe_ledger VALUES (1, -5);
\echo :LAST_ERROR_SQLSTATE
SELECT 'not a number'::int;
\echo :LAST_ERROR_SQLSTATE
COPY fe_ledger FROM stdin;
3	-1
\.
DO $$
BEGIN
    CALL fe_settle(3);
EXCEPTION WHEN SQLSTATE 'SK001' THEN
    RAISE NOTICE 'caught SK001 by its code';
END $$;

-- Every statement's error is the same, byte for byte.
SELECT b.n, b.error = a.error AS same, a.error
  FROM before b JOIN after a USING (n) ORDER BY n;

-- A guard's own error leaves fire, can_fire and UPDATE as it was raised.
\set SHOW_CONTEXT never
CREATE TABLE fe_claims (id int PRIMARY KEY, status text);
CREATE FUNCTION fe_claim_guard(c fe_claims, payload jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'claim % is under audit', c.id
        USING ERRCODE = 'GD001', DETAIL = 'audit 7', HINT = 'wait for the audit';
END $$;
CREATE FUNCTION fe_claim_action(c fe_claims, payload jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payout of claim % failed', c.id USING ERRCODE = 'AC001';
END $$;
SELECT fsm.create_machine('fe_claim', '{
  "states": {"open": {"initial": true}, "approved": {}, "paid": {}, "failed": {}},
  "events": {"approve": {"from": "open", "to": "approved", "guard": "public.fe_claim_guard"},
             "pay": {"from": "open", "to": "paid", "action": "public.fe_claim_action", "on_error": "failed"},
             "pay_strict": {"from": "open", "to": "paid", "action": "public.fe_claim_action"}}}') AS version;
SELECT fsm.attach('fe_claims', 'status', 'fe_claim') AS history;
INSERT INTO fe_claims VALUES (1), (2);
SELECT split_part(fe_caught($$SELECT fsm.fire('fe_claims', 1, 'approve')$$), ' | PL/pgSQL', 1) AS fire;
SELECT split_part(fe_caught($$SELECT fsm.can_fire('fe_claims', 1, 'approve')$$), ' | PL/pgSQL', 1) AS can_fire;
SELECT split_part(fe_caught($$UPDATE fe_claims SET status = 'approved' WHERE id = 1$$), ' | PL/pgSQL', 1) AS "update";
SELECT split_part(fe_caught($$SELECT fsm.fire('fe_claims', 1, 'pay_strict')$$), ' | PL/pgSQL', 1) AS action;
DO $$
BEGIN
    PERFORM fsm.fire('fe_claims', 1, 'approve');
EXCEPTION WHEN SQLSTATE 'GD001' THEN
    RAISE NOTICE 'caught GD001 by its code';
END $$;
-- on_error records the action's own SQLSTATE.
SELECT fsm.fire('fe_claims', 2, 'pay');
SELECT to_state, payload -> 'error' AS error FROM fe_claims_status_history
 WHERE entity_key = 2 AND event = 'pay';
SELECT * FROM fe_claims ORDER BY id;
