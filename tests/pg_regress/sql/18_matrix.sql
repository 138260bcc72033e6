-- The transition matrix of one machine, as a table of cases: from a state,
-- an event (by fsm.fire, or by a plain UPDATE that the trigger checks),
-- the state it ends in or the SQLSTATE it is refused with (API.md §3):
--   55000 not allowed from the current state   42704 unknown event
--   22023 "to" not among the event's targets    23514 the guard said no
--   42501 a role missing                        40001 "expect" differs
-- Each case gets its own door, brought to its "from" state by allowed
-- events, then fired once as matrix_visitor (no member of matrix_keeper)
-- unless it names another role. Besides the outcome, each case checks that
-- a move appended exactly one history row (event, from, to), and that a
-- refusal changed nothing. Everything is rolled back at the end.
BEGIN;
CREATE SCHEMA matrix;
CREATE TABLE matrix.doors (id int PRIMARY KEY, state text, has_key boolean NOT NULL DEFAULT true);
CREATE FUNCTION matrix.has_key(d matrix.doors, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT d.has_key $$;
CREATE ROLE matrix_keeper NOLOGIN;
CREATE ROLE matrix_porter NOLOGIN IN ROLE matrix_keeper;
CREATE ROLE matrix_visitor NOLOGIN;
GRANT USAGE ON SCHEMA matrix TO matrix_porter, matrix_visitor;
GRANT SELECT, UPDATE ON matrix.doors TO matrix_porter, matrix_visitor;
DO $$ BEGIN
  PERFORM fsm.create_machine('matrix_door', '{
    "states": {
      "closed": {"initial": true}, "open": {}, "locked": {}, "jammed": {},
      "broken": {"final": true}, "gone": {"final": true}
    },
    "events": {
      "open":   {"from": "closed", "to": "open"},
      "close":  {"from": "open", "to": "closed"},
      "knock":  {"from": "open", "to": "open"},
      "lock":   {"from": "closed", "to": "locked", "guard": "matrix.has_key"},
      "unlock": {"from": "locked", "to": "closed", "roles": ["matrix_keeper"]},
      "kick":   {"from": ["closed", "locked"], "to": ["open", "broken"]},
      "jam":    {"from": "*", "to": "jammed"},
      "reset":  {"from": "+", "to": "closed"},
      "remove": {"from": "*", "to": "gone"}
    }
  }');
  PERFORM fsm.attach('matrix.doors', 'state', 'matrix_door');
END $$;

-- One case: a new door (key n) brought to from_state, then
--   via 'fire':         fsm.fire(event, "to" => to_state, expect => expect_state)
--   via 'update':       UPDATE … SET state = to_state (the trigger infers the event)
--   via 'update+event': the same, with SET LOCAL fsm.event = event
-- Returns the state it ends in, or the SQLSTATE; anything else that is
-- wrong (history, a refusal that moved the row) is appended in brackets.
-- On a successful 'update' with no event, the column did not change: no
-- history row may be written.
CREATE FUNCTION matrix.try_case(n int, via text, from_state text, event text, to_state text,
                                expect_state text, as_role text, has_key boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  got text;
  failed boolean := false;
  rows_before bigint;
  rows_after bigint;
  last record;
  now_in text;
BEGIN
  INSERT INTO matrix.doors (id) VALUES (n);
  CASE from_state
    WHEN 'closed' THEN NULL;
    WHEN 'open'   THEN PERFORM fsm.fire('matrix.doors', n, 'open');
    WHEN 'locked' THEN PERFORM fsm.fire('matrix.doors', n, 'lock');
    WHEN 'jammed' THEN PERFORM fsm.fire('matrix.doors', n, 'jam');
    WHEN 'broken' THEN PERFORM fsm.fire('matrix.doors', n, 'kick', "to" => 'broken');
    WHEN 'gone'   THEN PERFORM fsm.fire('matrix.doors', n, 'remove');
  END CASE;
  UPDATE matrix.doors d SET has_key = try_case.has_key WHERE d.id = n;
  SELECT count(*) INTO rows_before FROM fsm.history('matrix.doors', n);

  PERFORM set_config('role', coalesce(as_role, 'matrix_visitor'), true);
  BEGIN
    IF via = 'fire' THEN
      got := fsm.fire('matrix.doors', n, event, "to" => to_state, expect => expect_state);
    ELSE
      IF via = 'update+event' THEN
        PERFORM set_config('fsm.event', event, true);
      END IF;
      UPDATE matrix.doors d SET state = to_state WHERE d.id = n;
      SELECT d.state INTO got FROM matrix.doors d WHERE d.id = n;
    END IF;
  EXCEPTION WHEN OTHERS THEN
    got := SQLSTATE;
    failed := true;
  END;
  RESET ROLE;
  RESET fsm.event;

  SELECT d.state INTO now_in FROM matrix.doors d WHERE d.id = n;
  SELECT count(*) INTO rows_after FROM fsm.history('matrix.doors', n);
  SELECT h.event, h.from_state, h.to_state INTO last FROM fsm.history('matrix.doors', n, lim => 1) h;
  IF failed THEN
    IF now_in IS DISTINCT FROM from_state OR rows_after <> rows_before THEN
      got := got || format(' [moved to %s, %s new history rows]', now_in, rows_after - rows_before);
    END IF;
  ELSIF now_in IS DISTINCT FROM got THEN
    got := got || format(' [row in %s]', now_in);
  ELSIF event IS NULL AND via = 'update' THEN
    IF rows_after <> rows_before THEN
      got := got || format(' [%s new history rows]', rows_after - rows_before);
    END IF;
  ELSIF rows_after - rows_before <> 1
        OR (last.event, last.from_state, last.to_state) IS DISTINCT FROM (event, from_state, got) THEN
    got := got || format(' [%s new history rows, last %s: %s -> %s]',
                         rows_after - rows_before, last.event, last.from_state, last.to_state);
  END IF;
  RETURN got;
END $$;

SELECT c.n AS "case", c.via, c.from_state AS "from", c.event, c.to_state AS "to",
       concat_ws(', ', 'expect ' || c.expect_state, 'as ' || c.as_role,
                 CASE WHEN NOT c.has_key THEN 'no key' END) AS given,
       c.expected, got,
       CASE WHEN got = c.expected THEN 'ok' ELSE 'FAILED' END AS result
FROM (VALUES
  --  n  via             from      event     to         expect    as              key    expected
  -- one state as "from"
  (  1, 'fire',         'closed', 'open',   NULL,      NULL,     NULL,           true,  'open'),
  (  2, 'fire',         'open',   'open',   NULL,      NULL,     NULL,           true,  '55000'),
  (  3, 'fire',         'open',   'close',  NULL,      NULL,     NULL,           true,  'closed'),
  (  4, 'fire',         'closed', 'close',  NULL,      NULL,     NULL,           true,  '55000'),
  (  5, 'fire',         'closed', 'open',   'open',    NULL,     NULL,           true,  'open'),
  (  6, 'fire',         'closed', 'open',   'locked',  NULL,     NULL,           true,  '22023'),
  -- a self-transition, declared
  (  7, 'fire',         'open',   'knock',  NULL,      NULL,     NULL,           true,  'open'),
  (  8, 'fire',         'closed', 'knock',  NULL,      NULL,     NULL,           true,  '55000'),
  -- a list as "from", and a dynamic target: "to" picks one of the list
  (  9, 'fire',         'closed', 'kick',   'broken',  NULL,     NULL,           true,  'broken'),
  ( 10, 'fire',         'locked', 'kick',   'open',    NULL,     NULL,           true,  'open'),
  ( 11, 'fire',         'closed', 'kick',   NULL,      NULL,     NULL,           true,  '22023'),
  ( 12, 'fire',         'closed', 'kick',   'jammed',  NULL,     NULL,           true,  '22023'),
  ( 13, 'fire',         'open',   'kick',   'broken',  NULL,     NULL,           true,  '55000'),
  ( 14, 'fire',         'jammed', 'kick',   NULL,      NULL,     NULL,           true,  '55000'),
  -- "*": every non-final state, the target itself included (a self-loop)
  ( 15, 'fire',         'closed', 'jam',    NULL,      NULL,     NULL,           true,  'jammed'),
  ( 16, 'fire',         'jammed', 'jam',    NULL,      NULL,     NULL,           true,  'jammed'),
  ( 17, 'fire',         'locked', 'remove', NULL,      NULL,     NULL,           true,  'gone'),
  ( 18, 'fire',         'gone',   'remove', NULL,      NULL,     NULL,           true,  '55000'),
  ( 19, 'fire',         'broken', 'jam',    NULL,      NULL,     NULL,           true,  '55000'),
  -- "+": every non-final state but the target
  ( 20, 'fire',         'open',   'reset',  NULL,      NULL,     NULL,           true,  'closed'),
  ( 21, 'fire',         'jammed', 'reset',  NULL,      NULL,     NULL,           true,  'closed'),
  ( 22, 'fire',         'closed', 'reset',  NULL,      NULL,     NULL,           true,  '55000'),
  ( 23, 'fire',         'broken', 'reset',  NULL,      NULL,     NULL,           true,  '55000'),
  -- a guard
  ( 24, 'fire',         'closed', 'lock',   NULL,      NULL,     NULL,           true,  'locked'),
  ( 25, 'fire',         'closed', 'lock',   NULL,      NULL,     NULL,           false, '23514'),
  ( 26, 'fire',         'open',   'lock',   NULL,      NULL,     NULL,           false, '55000'),
  -- roles
  ( 27, 'fire',         'locked', 'unlock', NULL,      NULL,     NULL,           true,  '42501'),
  ( 28, 'fire',         'locked', 'unlock', NULL,      NULL,     'matrix_porter', true, 'closed'),
  ( 29, 'fire',         'open',   'unlock', NULL,      NULL,     'matrix_porter', true, '55000'),
  -- expect
  ( 30, 'fire',         'open',   'close',  NULL,      'open',   NULL,           true,  'closed'),
  ( 31, 'fire',         'open',   'close',  NULL,      'closed', NULL,           true,  '40001'),
  -- unknown events
  ( 32, 'fire',         'closed', 'fly',    NULL,      NULL,     NULL,           true,  '42704'),
  ( 33, 'fire',         'gone',   'fly',    NULL,      NULL,     NULL,           true,  '42704'),
  -- plain UPDATE: one event leads there, the trigger takes it
  ( 34, 'update',       'closed', 'lock',   'locked',  NULL,     NULL,           true,  'locked'),
  ( 35, 'update',       'closed', 'kick',   'broken',  NULL,     NULL,           true,  'broken'),
  ( 36, 'update',       'locked', 'kick',   'open',    NULL,     NULL,           true,  'open'),
  ( 37, 'update',       'jammed', 'reset',  'closed',  NULL,     NULL,           true,  'closed'),
  ( 38, 'update',       'open',   'remove', 'gone',    NULL,     NULL,           true,  'gone'),
  -- plain UPDATE: several events lead there, fsm.event names one
  ( 39, 'update',       'closed', NULL,     'open',    NULL,     NULL,           true,  '55000'),
  ( 40, 'update+event', 'closed', 'open',   'open',    NULL,     NULL,           true,  'open'),
  ( 41, 'update+event', 'closed', 'kick',   'open',    NULL,     NULL,           true,  'open'),
  ( 42, 'update',       'open',   NULL,     'closed',  NULL,     NULL,           true,  '55000'),
  ( 43, 'update+event', 'open',   'reset',  'closed',  NULL,     NULL,           true,  'closed'),
  -- plain UPDATE: refused as fire refuses
  ( 44, 'update',       'open',   NULL,     'locked',  NULL,     NULL,           true,  '55000'),
  ( 45, 'update',       'broken', NULL,     'closed',  NULL,     NULL,           true,  '55000'),
  ( 46, 'update',       'closed', NULL,     'nowhere', NULL,     NULL,           true,  '55000'),
  ( 47, 'update',       'closed', 'lock',   'locked',  NULL,     NULL,           false, '23514'),
  ( 48, 'update+event', 'locked', 'unlock', 'closed',  NULL,     NULL,           true,  '42501'),
  ( 49, 'update+event', 'locked', 'unlock', 'closed',  NULL,     'matrix_porter', true, 'closed'),
  ( 50, 'update+event', 'locked', 'reset',  'closed',  NULL,     NULL,           true,  'closed'),
  -- plain UPDATE that writes the state it is in: no transition, nothing recorded
  ( 51, 'update',       'closed', NULL,     'closed',  NULL,     NULL,           true,  'closed'),
  ( 52, 'update',       'open',   NULL,     'open',    NULL,     NULL,           true,  'open'),
  ( 53, 'update',       'jammed', NULL,     'jammed',  NULL,     NULL,           true,  'jammed'),
  ( 54, 'update',       'gone',   NULL,     'gone',    NULL,     NULL,           true,  'gone')
) AS c(n, via, from_state, event, to_state, expect_state, as_role, has_key, expected)
CROSS JOIN LATERAL matrix.try_case(c.n, c.via, c.from_state, c.event, c.to_state,
                                   c.expect_state, c.as_role, c.has_key) AS got
ORDER BY c.n;
ROLLBACK;
