-- After the concurrent runs through pgbouncer (run.sh). One row per check;
-- any 'FAIL' fails the test. :fires is how many step fires pgbench made.
-- 1. Every step the runs fired has its one history row.
SELECT CASE WHEN count(*) = :fires THEN 'ok' ELSE 'FAIL' END || ' step history rows = fires made' AS result,
       count(*) AS n
  FROM items_state_history WHERE event = 'step'
UNION ALL
-- 2. Every row's actor is its own transaction's: client-<id> where it set
--    one, NULL where it did not.
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'FAIL' END || ' rows whose actor is not their client''s', count(*)
  FROM items_state_history
 WHERE event = 'step'
   AND actor IS DISTINCT FROM CASE WHEN payload ? 'client' THEN 'client-' || (payload->>'client') END
UNION ALL
-- 3. The clients shared the pool's two server backends: both were used,
--    transactions of different clients (and of none) took turns on each
--    (in id order, exact within a backend), and clients moved between
--    them. How often is up to pgbouncer; that it happens is what makes
--    check 2 mean something.
SELECT CASE WHEN count(DISTINCT payload->>'backend') = 2 THEN 'ok' ELSE 'FAIL' END || ' server backends used',
       count(DISTINCT payload->>'backend')
  FROM items_state_history WHERE event = 'step'
UNION ALL
SELECT CASE WHEN count(*) FILTER (WHERE who IS DISTINCT FROM before) > 0 THEN 'ok' ELSE 'FAIL' END
       || ' transactions that followed another client''s on their backend',
       count(*) FILTER (WHERE who IS DISTINCT FROM before)
  FROM (SELECT payload->>'run' || '/' || coalesce(payload->>'client', 'none') AS who,
               lag(payload->>'run' || '/' || coalesce(payload->>'client', 'none'))
                 OVER (PARTITION BY payload->>'backend' ORDER BY id) AS before
          FROM items_state_history WHERE event = 'step') t
UNION ALL
SELECT CASE WHEN count(*) FILTER (WHERE backends = 2) > 0 THEN 'ok' ELSE 'FAIL' END
       || ' clients (of 16) whose transactions ran on both backends',
       count(*) FILTER (WHERE backends = 2)
  FROM (SELECT count(DISTINCT payload->>'backend') AS backends
          FROM items_state_history WHERE payload ? 'client'
         GROUP BY payload->>'run', payload->>'client') c
UNION ALL
-- 4. Each item's history replays as a chain from the initial state to its
--    column's value.
SELECT CASE WHEN count(*) FILTER (WHERE n > 1 AND from_state IS DISTINCT FROM previous) = 0
             AND count(*) FILTER (WHERE n = 1 AND (from_state IS NOT NULL OR to_state <> 'a')) = 0
            THEN 'ok' ELSE 'FAIL' END || ' broken links in the items'' chains',
       count(*) FILTER (WHERE n > 1 AND from_state IS DISTINCT FROM previous)
  FROM (SELECT from_state, to_state,
               lag(to_state) OVER (PARTITION BY entity_key ORDER BY id) AS previous,
               row_number() OVER (PARTITION BY entity_key ORDER BY id) AS n
          FROM items_state_history) h
UNION ALL
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'FAIL' END || ' items whose state is not their last row''s to_state', count(*)
  FROM items i
  JOIN LATERAL (SELECT to_state FROM items_state_history WHERE entity_key = i.id ORDER BY id DESC LIMIT 1) l ON true
 WHERE l.to_state <> i.state
UNION ALL
-- 5. Duplicates: each of orders 51-100 that was fired at is paid, with
--    exactly one pay row carrying its key; the others never moved.
SELECT CASE WHEN count(*) FILTER (WHERE (o.status = 'paid') <> (p.n = 1) OR p.n > 1 OR p.keyed <> p.n) = 0
             AND count(*) FILTER (WHERE o.status = 'paid') > 40
            THEN 'ok' ELSE 'FAIL' END || ' orders 51-100 paid once (count paid)',
       count(*) FILTER (WHERE o.status = 'paid')
  FROM orders o
  CROSS JOIN LATERAL (SELECT count(*) AS n,
                             count(*) FILTER (WHERE idempotency_key = 'order-' || o.id) AS keyed
                        FROM orders_status_history h WHERE h.entity_key = o.id AND h.event = 'pay') p
 WHERE o.id BETWEEN 51 AND 100;
