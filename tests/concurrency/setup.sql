-- A cyclic machine where some attempts are refused: next always fits,
-- back only from b and c. Every attempt records its outcome in `attempts`
-- only if it succeeded (a refused attempt rolls back to its savepoint).
CREATE EXTENSION fsm;
SELECT fsm.create_machine('cycle', '{
  "states": {"a": {"initial": true}, "b": {}, "c": {}},
  "events": {"next_ab": {"from": "a", "to": "b"}, "next_bc": {"from": "b", "to": "c"},
             "next_ca": {"from": "c", "to": "a"}, "back": {"from": ["b", "c"], "to": "a"}}
}');
CREATE TABLE items (id int PRIMARY KEY, state text);
SELECT fsm.attach('items', 'state', 'cycle');
INSERT INTO items (id) SELECT generate_series(1, 10);
CREATE TABLE successes (n int);

CREATE FUNCTION try_move(k int, how int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        IF how = 1 THEN
            -- fire the event that fits the current state
            PERFORM fsm.fire('items', k, CASE (SELECT state FROM items WHERE id = k)
                                           WHEN 'a' THEN 'next_ab' WHEN 'b' THEN 'next_bc' ELSE 'next_ca' END);
        ELSIF how = 2 THEN
            PERFORM fsm.fire('items', k, 'back');           -- refused from a
        ELSE
            UPDATE items SET state = CASE state WHEN 'a' THEN 'b' WHEN 'b' THEN 'c' ELSE 'a' END
             WHERE id = k;                                  -- plain UPDATE
        END IF;
        INSERT INTO successes VALUES (1);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        NULL;  -- refused: nothing of it may remain
    END;
END $$;
