-- Everything the fsm extension owns, described as text, one line per fact,
-- sorted: two databases hold the same extension schema exactly when this
-- prints the same lines. Oids are never printed; objects are named.
WITH members AS (
  SELECT d.classid, d.objid FROM pg_depend d
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fsm')
), facts AS (
  SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) AS fact FROM members m
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '')
    FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
  UNION ALL
  SELECT 'column ' || c.oid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
         || coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '') || ' #' || a.attnum
    FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  UNION ALL
  SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '')
         || coalesce(' view ' || pg_get_viewdef(c.oid), '')
    FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  UNION ALL
  SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
    FROM members m JOIN pg_constraint co ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM members m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
  UNION ALL
  SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent || ' ' || e.evtfoid::regproc || ' '
         || coalesce(e.evttags::text, '') || ' ' || e.evtenabled::text
    FROM members m JOIN pg_event_trigger e ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid
  UNION ALL
  SELECT 'config dump ' || cfg::regclass || ' ' || coalesce(cond, '')
    FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS u(cfg, cond) WHERE x.extname = 'fsm'
  UNION ALL
  SELECT 'schema acl ' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.nspname = 'fsm'
  UNION ALL
  SELECT 'comment ' || pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) || ' ' || ds.description
    FROM members m JOIN pg_description ds ON ds.classoid = m.classid AND ds.objoid = m.objid
)
SELECT fact FROM facts ORDER BY fact;
