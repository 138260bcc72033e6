-- Each check prints one row; any 'FAIL' fails the test.
-- 1. Every entity's history, in id order, replays as a chain from the
--    initial state to its column value.
WITH h AS (
    SELECT entity_key, from_state, to_state,
           lag(to_state) OVER (PARTITION BY entity_key ORDER BY id) AS previous,
           row_number() OVER (PARTITION BY entity_key ORDER BY id DESC) AS from_end,
           row_number() OVER (PARTITION BY entity_key ORDER BY id) AS from_start
      FROM items_state_history)
SELECT CASE WHEN count(*) FILTER (WHERE from_start > 1 AND from_state IS DISTINCT FROM previous) = 0
             AND count(*) FILTER (WHERE from_start = 1 AND (from_state IS NOT NULL OR to_state <> 'a')) = 0
            THEN 'ok' ELSE 'FAIL' END || ' chains' AS result,
       count(*) FILTER (WHERE from_start > 1 AND from_state IS DISTINCT FROM previous) AS broken_links
  FROM h
UNION ALL
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'FAIL' END || ' last row equals column', count(*)
  FROM items i
  JOIN LATERAL (SELECT to_state FROM items_state_history WHERE entity_key = i.id ORDER BY id DESC LIMIT 1) l ON true
 WHERE l.to_state <> i.state
UNION ALL
-- 2. One history row per successful transition (plus one per INSERT).
SELECT CASE WHEN (SELECT count(*) FROM items_state_history WHERE event IS NOT NULL) = (SELECT count(*) FROM successes)
            THEN 'ok' ELSE 'FAIL' END || ' history rows = successes',
       (SELECT count(*) FROM successes)
UNION ALL
SELECT CASE WHEN (SELECT count(*) FROM successes) > 100 THEN 'ok' ELSE 'FAIL' END || ' enough transitions ran',
       (SELECT count(*) FROM successes);
