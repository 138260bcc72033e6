-- What must come back identical after dump and restore, one line per fact.
SELECT 'machine ' || name || ' v' || version || ' ' || owner || ' ' || definition::text FROM fsm.machines
UNION ALL SELECT 'version ' || machine || ' v' || version || ' ' || created_at || ' ' || definition::text FROM fsm.machine_versions
UNION ALL SELECT 'state ' || machine || ' ' || state || ' ' || initial || ' ' || final || ' ' || coalesce(meta::text, '') FROM fsm.states
UNION ALL SELECT 'transition ' || machine || ' ' || event || ' ' || from_state || ' ' || to_state FROM fsm.transitions
UNION ALL SELECT 'binding ' || tbl || '.' || col || ' ' || machine || ' ' || history || ' ' || protect || ' ' || coalesce(notify, '') FROM fsm.bindings
UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
           WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT tbl FROM fsm.bindings UNION SELECT history FROM fsm.bindings)
UNION ALL SELECT 'orders ' || o::text FROM orders o
UNION ALL SELECT 'ledger ' || l::text FROM ledger l
UNION ALL SELECT 'parcels ' || p::text FROM parcels p
UNION ALL SELECT 'history orders.status ' || h::text FROM orders_status_history h
UNION ALL SELECT 'history orders.payment ' || h::text FROM orders_payment_history h
UNION ALL SELECT 'history ledger ' || h::text FROM ledger_status_history h
UNION ALL SELECT 'history parcels ' || h::text FROM parcels_status_history h
ORDER BY 1;
