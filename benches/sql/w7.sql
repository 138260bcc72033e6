-- W7: backend memory across :transitions transitions in one session (a
-- third each by INSERT-then-UPDATE, fsm.fire and UPDATE, committing every
-- 1,000 entities). RssAnon is the backend's private memory: shared
-- buffers it touches are not counted.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT bench.drop_variants('w7');
SELECT bench.make_variants('w7', ARRAY['fsm']);
CREATE OR REPLACE PROCEDURE bench.w7_run(entities integer) LANGUAGE plpgsql AS $$
DECLARE
    base bigint := coalesce((SELECT max(id) FROM bench.w7_fsm), 0);
BEGIN
    FOR i IN 1..entities LOOP
        INSERT INTO bench.w7_fsm (id) VALUES (base + i);
        UPDATE bench.w7_fsm SET status = 'paid' WHERE id = base + i;
        PERFORM fsm.fire('bench.w7_fsm', base + i, 'ship');
        UPDATE bench.w7_fsm SET status = 'delivered' WHERE id = base + i;
        IF i % 1000 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION bench.rss_anon_kb() RETURNS bigint LANGUAGE sql AS
$$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1]::bigint $$;
-- Warm up: caches filled, plans kept.
CALL bench.w7_run(1000);
SELECT bench.rss_anon_kb() AS before_kb \gset
CALL bench.w7_run(:transitions / 3);
SELECT :before_kb AS before_kb, bench.rss_anon_kb() AS after_kb,
       (SELECT count(*) FROM bench.w7_fsm_status_history) AS history_rows;
