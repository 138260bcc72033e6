-- Asking before acting: fsm.can_fire and fsm.available_events apply the
-- rules of fire (source state, roles, payload schema, guard) to the row as
-- the caller sees it now, without locking or changing anything.
\set SHOW_CONTEXT never
CREATE SCHEMA desk;
CREATE TABLE desk.claims (id int PRIMARY KEY, approved_by text, clerk text, state text);
CREATE FUNCTION desk.has_approver(c desk.claims, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT c.approved_by IS NOT NULL $$;
CREATE ROLE claims_clerk;
CREATE ROLE claims_manager;
GRANT USAGE ON SCHEMA desk TO claims_clerk;
SELECT fsm.create_machine('claim', '{
  "states": {"filed": {"initial": true}, "review": {}, "paid": {"final": true}, "rejected": {"final": true}},
  "events": {"submit": {"from": "filed", "to": "review", "payload": {"type": "object", "required": ["note"]}},
             "pay":    {"from": "review", "to": "paid", "guard": "desk.has_approver"},
             "reject": {"from": ["filed", "review"], "to": "rejected", "roles": ["claims_manager"]},
             "route":  {"from": "review", "to": ["paid", "rejected"]}}}');
SELECT fsm.attach('desk.claims', 'state', 'claim') IS NOT NULL AS attached;
INSERT INTO desk.claims (id, clerk) VALUES (1, 'claims_clerk'), (2, 'claims_clerk'), (3, 'someone_else');

-- Every event, in name order, with where it leads from here.
-- The payload is checked when the event is fired, not here.
SELECT * FROM fsm.available_events('desk.claims', 1);
-- can_fire checks the payload it is given.
SELECT fsm.can_fire('desk.claims', 1, 'submit') AS without_note,
       fsm.can_fire('desk.claims', 1, 'submit', '{"note": "receipt attached"}') AS with_note,
       fsm.can_fire('desk.claims', 1, 'pay') AS pay_from_filed;

-- In review: the guard sees the row as it is now.
SELECT fsm.fire('desk.claims', 1, 'submit', '{"note": "receipt attached"}');
SELECT event, to_states, allowed, reason FROM fsm.available_events('desk.claims', 1) WHERE event IN ('pay', 'route');
SELECT fsm.can_fire('desk.claims', 1, 'pay') AS before_approval;
UPDATE desk.claims SET approved_by = 'ada' WHERE id = 1;
SELECT fsm.can_fire('desk.claims', 1, 'pay') AS after_approval;
SELECT allowed, reason FROM fsm.available_events('desk.claims', 1) WHERE event = 'pay';

-- Asking changes nothing: no row moved, no history written.
SELECT state FROM desk.claims WHERE id = 1;
SELECT count(*) AS history_rows FROM desk.claims_state_history WHERE entity_key = 1;

-- As a role with SELECT but not the event's role.
GRANT SELECT ON desk.claims TO claims_clerk;
SET ROLE claims_clerk;
SELECT event, allowed, reason FROM fsm.available_events('desk.claims', 2) WHERE event = 'reject';
SELECT fsm.can_fire('desk.claims', 2, 'reject') AS clerk_may_reject;
RESET ROLE;
GRANT claims_manager TO claims_clerk;
SET ROLE claims_clerk;
SELECT fsm.can_fire('desk.claims', 2, 'reject') AS manager_may_reject;
RESET ROLE;
REVOKE claims_manager FROM claims_clerk;

-- Under row level security, a row the caller cannot see is not found.
ALTER TABLE desk.claims ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON desk.claims USING (clerk = current_user);
SET ROLE claims_clerk;
SELECT fsm.can_fire('desk.claims', 2, 'submit', '{"note": "n"}') AS visible_row;
SELECT fsm.can_fire('desk.claims', 3, 'submit', '{"note": "n"}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER TABLE desk.claims DISABLE ROW LEVEL SECURITY;

-- Errors, as for fire.
SELECT fsm.can_fire('desk.claims', 1, 'no_such_event');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.can_fire('desk.claims', 99, 'pay');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.available_events('desk.claims', 99);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.can_fire('desk.claims', 1.5, 'pay');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.can_fire('desk.claims', NULL::int, 'pay');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.can_fire('desk.claims', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.available_events(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.available_events('pg_class', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.available_events('desk.claims', 1, col => 'clerk');
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE claims_outsider;
GRANT USAGE ON SCHEMA desk TO claims_outsider;
SET ROLE claims_outsider;
SELECT fsm.can_fire('desk.claims', 1, 'pay');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The same rows in the select list as in FROM.
SELECT (e).event, (e).allowed FROM (SELECT fsm.available_events('desk.claims', 1) AS e) s
 WHERE (e).event IN ('pay', 'route') ORDER BY (e).event;
