-- Machines the isolation specs use (a spec's SQL blocks cannot hold the
-- braces of a JSON literal). run.sh loads this once.
SELECT fsm.create_machine('iso_order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid"}, "ship": {"from": "paid", "to": "shipped"}}}');
SELECT fsm.create_machine('iso_ticket', '{
  "states": {"open": {"initial": true}, "taken": {}, "closed": {"final": true}},
  "events": {"take": {"from": "open", "to": "taken"}, "close": {"from": ["open", "taken"], "to": "closed"}}}');
SELECT fsm.create_machine('iso_box', '{
  "states": {"new": {"initial": true}, "sent": {}, "home": {"final": true}},
  "events": {"send": {"from": "new", "to": "sent"}, "arrive": {"from": "sent", "to": "home"}}}');
CREATE FUNCTION iso_lamp(on_is_final boolean) RETURNS jsonb LANGUAGE sql AS $$
  SELECT CASE WHEN on_is_final
    THEN '{"states": {"off": {"initial": true}, "on": {"final": true}},
           "events": {"turn_on": {"from": "off", "to": "on"}}}'::jsonb
    ELSE '{"states": {"off": {"initial": true}, "on": {}},
           "events": {"turn_on": {"from": "off", "to": "on"}, "turn_off": {"from": "on", "to": "off"}}}'::jsonb
  END $$;
SELECT fsm.create_machine('iso_lamp', iso_lamp(false));
SELECT fsm.create_machine('iso_timer', '{
  "states": {"waiting": {"initial": true, "timeout": {"after": "1 millisecond", "event": "expire"}},
             "expired": {"final": true}, "done": {"final": true}},
  "events": {"expire": {"from": "waiting", "to": "expired"}, "finish": {"from": "waiting", "to": "done"}}}');
-- iso_relay: version 1 has turn_off; version 2 keeps the states and drops
-- events (the ids of the rest change); version 3 drops the state "broken".
CREATE FUNCTION iso_relay(v int) RETURNS jsonb LANGUAGE sql AS $$
  SELECT CASE v
    WHEN 1 THEN '{"states": {"off": {"initial": true}, "on": {}, "broken": {"final": true}},
                  "events": {"turn_on": {"from": "off", "to": "on"}, "turn_off": {"from": "on", "to": "off"},
                             "break": {"from": "on", "to": "broken"}}}'::jsonb
    WHEN 2 THEN '{"states": {"off": {"initial": true}, "on": {}, "broken": {"final": true}},
                  "events": {"turn_on": {"from": "off", "to": "on"}, "a": {"from": "on", "to": "broken"}}}'::jsonb
    ELSE '{"states": {"off": {"initial": true}, "on": {}},
           "events": {"turn_on": {"from": "off", "to": "on"}, "turn_off": {"from": "on", "to": "off"}}}'::jsonb
  END $$;
SELECT fsm.create_machine('iso_relay', iso_relay(1));
