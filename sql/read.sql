-- Reading state and history. Each function builds one query over the
-- binding's history table (names quoted by regclass output and format %s of
-- regtype) and runs it with the caller's rights, so table grants apply.

CREATE FUNCTION fsm.history(tbl regclass, key anyelement,
                            since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                            lim integer DEFAULT NULL)
RETURNS TABLE (id uuid, at timestamptz, event text, from_state text, to_state text,
               payload jsonb, actor text, db_user text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    q text;
BEGIN
    SELECT string_agg(pg_catalog.format(
               'SELECT h.id, fsm.uuid7_time(h.id), h.event, h.from_state, h.to_state, h.payload, h.actor, h.db_user
                  FROM %s h
                 WHERE h.entity_key = $1::%s
                   AND ($2 IS NULL OR h.id >= fsm.uuid7($2))
                   AND ($3 IS NULL OR h.id <  fsm.uuid7($3))',
               b.history, pg_catalog.format_type(a.atttypid, a.atttypmod)), ' UNION ALL ')
      INTO q
      FROM fsm.binding b
      JOIN pg_catalog.pg_index i ON i.indrelid = b.tbl AND i.indisprimary
      JOIN pg_catalog.pg_attribute a ON a.attrelid = b.tbl AND a.attnum = i.indkey[0]
     WHERE b.tbl = history.tbl;
    IF q IS NULL THEN
        RAISE EXCEPTION 'no machine is attached to %', tbl USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY EXECUTE 'SELECT * FROM (' || q || ') h ORDER BY 1 DESC LIMIT $4'
        USING key, since, until, lim;
END
$$;
COMMENT ON FUNCTION fsm.history(regclass, anyelement, timestamptz, timestamptz, integer)
    IS 'fsm: one entity''s history, newest first; since inclusive, until exclusive (millisecond precision)';

CREATE FUNCTION fsm.current_states(tbl regclass, keys anyarray)
RETURNS TABLE (entity_key anyelement, state text, since timestamptz, last_event text, transition_id uuid)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    q text;
BEGIN
    -- A table with several machines answers for its first bound column.
    SELECT pg_catalog.format(
               'SELECT k.key, t.%1$I::text, fsm.uuid7_time(h.id), h.event, h.id
                  FROM unnest($1) WITH ORDINALITY AS k(key, ord)
                  JOIN %2$s t ON t.%3$I = k.key::%4$s
                  LEFT JOIN LATERAL (SELECT h.id, h.event FROM %5$s h
                                      WHERE h.entity_key = t.%3$I ORDER BY h.id DESC LIMIT 1) h ON true
                 ORDER BY k.ord',
               b.col, b.tbl, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), b.history)
      INTO q
      FROM fsm.binding b
      JOIN pg_catalog.pg_attribute c ON c.attrelid = b.tbl AND c.attname = b.col
      JOIN pg_catalog.pg_index i ON i.indrelid = b.tbl AND i.indisprimary
      JOIN pg_catalog.pg_attribute a ON a.attrelid = b.tbl AND a.attnum = i.indkey[0]
     WHERE b.tbl = current_states.tbl
     ORDER BY c.attnum
     LIMIT 1;
    IF q IS NULL THEN
        RAISE EXCEPTION 'no machine is attached to %', tbl USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY EXECUTE q USING keys;
END
$$;
COMMENT ON FUNCTION fsm.current_states(regclass, anyarray)
    IS 'fsm: the state of each existing key, with the moment, event and id of its last transition';
