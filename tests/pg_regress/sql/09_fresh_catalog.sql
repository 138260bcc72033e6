-- Catalog facts are read as they are now, never as an older snapshot saw
-- them: a session in REPEATABLE READ whose snapshot predates another
-- session's replace of the machine enforces the new rules, then and after.
-- (On e9d40d4 it loaded and kept the old rules.) A second session is
-- driven through dblink.
\set SHOW_CONTEXT never
CREATE EXTENSION dblink;
SELECT fsm.create_machine('lamp', '{"states": {"off": {"initial": true}, "on": {}},
  "events": {"turn_on": {"from": "off", "to": "on"}, "turn_off": {"from": "on", "to": "off"}}}');
CREATE TABLE lamps (id int PRIMARY KEY, status text);
SELECT fsm.attach('lamps', 'status', 'lamp');
INSERT INTO lamps VALUES (1), (2);
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));

BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM lamps;
-- Another session replaces the machine: "on" becomes final.
SELECT version FROM dblink('other', $$SELECT fsm.create_machine('lamp', '{"states": {"off": {"initial": true},
  "on": {"final": true}}, "events": {"turn_on": {"from": "off", "to": "on"}}}', true)$$) AS t(version integer);
UPDATE lamps SET status = 'on' WHERE id = 1;
UPDATE lamps SET status = 'off' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- And in the next transaction too.
UPDATE lamps SET status = 'on' WHERE id = 2;
UPDATE lamps SET status = 'off' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
SELECT id, status FROM lamps ORDER BY id;
SELECT dblink_disconnect('other');
