-- The bound tables and their history tables, described without oids:
-- columns, triggers, indexes, grants. The same bindings made by a release
-- and upgraded, or made by a fresh install, must print the same lines.
SELECT 'binding ' || b.tbl || '.' || b.col || ' ' || b.machine || ' ' || b.history || ' ' || b.protect || ' ' || coalesce(b.notify, '')
  FROM fsm.binding b
UNION ALL
SELECT 'history column ' || b.history || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '')
  FROM fsm.binding b JOIN pg_attribute a ON a.attrelid = b.history AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = b.history AND ad.adnum = a.attnum
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM (SELECT DISTINCT tbl AS rel FROM fsm.binding UNION SELECT history FROM fsm.binding) r
  JOIN pg_trigger t ON t.tgrelid = r.rel AND NOT t.tgisinternal
UNION ALL
SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), 'INDEX \S+ ON', 'INDEX ON')
  FROM fsm.binding b JOIN pg_index i ON i.indrelid = b.history
UNION ALL
SELECT 'history grants ' || b.history || ' ' || coalesce(c.relacl::text, '')
  FROM fsm.binding b JOIN pg_class c ON c.oid = b.history
ORDER BY 1;
