//! In-database tests (`#[pg_test]`): a success and an error case for every
//! SQL function, asserting exact states, history rows and SQLSTATEs.

#[pgrx::pg_schema]
mod tests {
    use pgrx::pg_sys::panic::CaughtError;
    use pgrx::prelude::*;
    use pgrx::{PgSqlErrorCode, PgSqlErrorCode::*};

    /// Runs `sql`, which must fail, in a subtransaction that is rolled back;
    /// returns its SQLSTATE and message.
    fn error_of(sql: &str) -> (PgSqlErrorCode, String) {
        match crate::savepoint::attempt(|| Spi::run(sql).expect("SPI")) {
            Ok(()) => panic!("expected an error from: {sql}"),
            Err(CaughtError::PostgresError(r) | CaughtError::ErrorReport(r)) => {
                (r.sql_error_code(), r.message().to_string())
            }
            Err(panic) => panic.rethrow(),
        }
    }

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).expect("query")
    }

    const ORDER: &str = r#"{"states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true}},
        "events": {"pay": {"from": "created", "to": "paid", "payload": {"type": "object", "required": ["amount"]}},
                   "ship": {"from": "paid", "to": "shipped"},
                   "review": {"from": "paid", "to": ["paid", "shipped"]}}}"#;

    fn setup_orders() {
        Spi::run(&format!("SELECT fsm.create_machine('order', '{ORDER}')")).unwrap();
        Spi::run("CREATE TABLE orders (id bigint PRIMARY KEY, status text)").unwrap();
        Spi::run("SELECT fsm.attach('orders', 'status', 'order')").unwrap();
        Spi::run("INSERT INTO orders (id) VALUES (1), (2)").unwrap();
    }

    #[pg_test]
    fn create_machine_versions_and_refuses_broken_rules() {
        assert_eq!(
            one::<i32>(&format!("SELECT fsm.create_machine('order', '{ORDER}')")),
            Some(1)
        );
        assert_eq!(
            one::<i32>(&format!(
                "SELECT fsm.create_machine('order', '{ORDER}', true)"
            )),
            Some(2)
        );
        let (code, message) = error_of(
            r#"SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "b"}}}')"#,
        );
        assert_eq!(code, ERRCODE_INVALID_OBJECT_DEFINITION);
        assert_eq!(
            message,
            r#"machine "bad": event "go": target state "b" does not exist"#
        );
        assert_eq!(
            error_of(&format!("SELECT fsm.create_machine('order', '{ORDER}')")).0,
            ERRCODE_DUPLICATE_OBJECT
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM fsm.transitions WHERE machine = 'order'"),
            Some(4)
        );
    }

    #[pg_test]
    fn drop_machine_refused_while_attached() {
        setup_orders();
        assert_eq!(
            error_of("SELECT fsm.drop_machine('order')").0,
            ERRCODE_OBJECT_IN_USE
        );
        Spi::run("SELECT fsm.detach('orders', 'status')").unwrap();
        Spi::run("SELECT fsm.drop_machine('order')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM fsm.machines"), Some(0));
        assert_eq!(
            error_of("SELECT fsm.drop_machine('order')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
    }

    #[pg_test]
    fn introspection_and_diagrams() {
        Spi::run(&format!("SELECT fsm.create_machine('order', '{ORDER}')")).unwrap();
        assert_eq!(
            one::<String>("SELECT fsm.machine_definition('order') -> 'events' -> 'ship' ->> 'to'"),
            Some(r#"["shipped"]"#.into())
        );
        assert!(one::<String>("SELECT fsm.to_mermaid('order')")
            .unwrap()
            .contains("created --> paid : pay\n"));
        assert!(one::<String>("SELECT fsm.to_dot('order')")
            .unwrap()
            .contains(r#""paid" -> "shipped" [label="ship"];"#));
        for f in ["machine_definition", "to_dot", "to_mermaid"] {
            assert_eq!(
                error_of(&format!("SELECT fsm.{f}('nope')")).0,
                ERRCODE_UNDEFINED_OBJECT,
                "{f}"
            );
        }
    }

    #[pg_test]
    fn attach_creates_history_and_refuses_keyless_tables() {
        setup_orders();
        assert_eq!(
            one::<String>("SELECT history::text FROM fsm.bindings"),
            Some("orders_status_history".into())
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM orders_status_history WHERE event IS NULL"),
            Some(2)
        );
        Spi::run("CREATE TABLE keyless (status text)").unwrap();
        assert_eq!(
            error_of("SELECT fsm.attach('keyless', 'status', 'order')").0,
            ERRCODE_INVALID_TABLE_DEFINITION
        );
    }

    #[pg_test]
    fn detach_removes_enforcement() {
        setup_orders();
        Spi::run("SELECT fsm.detach('orders', 'status')").unwrap();
        Spi::run("UPDATE orders SET status = 'anything' WHERE id = 1").unwrap();
        assert_eq!(
            error_of("SELECT fsm.detach('orders', 'status')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
    }

    #[pg_test]
    fn fire_moves_the_row_and_records_event_and_payload() {
        setup_orders();
        assert_eq!(
            one::<String>(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 3}')"#),
            Some("paid".into())
        );
        assert_eq!(
            one::<String>("SELECT status FROM orders WHERE id = 1"),
            Some("paid".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT concat_ws(' ', event, from_state, to_state, payload::text) FROM orders_status_history
                  WHERE entity_key = 1 ORDER BY id DESC LIMIT 1"
            ),
            Some(r#"pay created paid {"amount": 3}"#.into())
        );
    }

    #[pg_test]
    fn fire_errors_have_their_sqlstates() {
        setup_orders();
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 9, 'pay')").0,
            ERRCODE_NO_DATA_FOUND
        );
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 1, 'fly')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 1, 'ship')").0,
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        );
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 1, 'pay', '{}')").0,
            ERRCODE_INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            error_of(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}', expect => 'paid')"#).0,
            ERRCODE_T_R_SERIALIZATION_FAILURE
        );
        Spi::run(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}')"#).unwrap();
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 1, 'review')").0,
            ERRCODE_INVALID_PARAMETER_VALUE
        );
        let (code, message) = error_of("SELECT fsm.fire('orders', 1, 'pay')");
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(
            message,
            r#"event "pay" is not allowed from state "paid" (table orders, key 1, state "paid")"#
        );
        // Nothing of the refused attempts was recorded.
        assert_eq!(
            one::<i64>("SELECT count(*) FROM orders_status_history WHERE entity_key = 1"),
            Some(2)
        );
    }

    #[pg_test]
    fn trigger_refuses_with_the_same_sqlstate_as_fire() {
        setup_orders();
        let (code, message) = error_of("UPDATE orders SET status = 'shipped' WHERE id = 2");
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(
            message,
            r#"no event leads to "shipped" (table orders, key 2, state "created")"#
        );
        assert_eq!(
            error_of("INSERT INTO orders VALUES (3, 'paid')").0,
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        );
        assert_eq!(
            one::<String>("SELECT status FROM orders WHERE id = 2"),
            Some("created".into())
        );
    }

    #[pg_test]
    fn replacing_a_machine_reaches_the_cached_binding() {
        setup_orders();
        // Warm this backend's cache, then add an event and use it at once.
        Spi::run("UPDATE orders SET status = status").unwrap();
        let wider = ORDER.replace(
            r#""ship": {"#,
            r#""skip": {"from": "created", "to": "shipped"}, "ship": {"#,
        );
        Spi::run(&format!(
            "SELECT fsm.create_machine('order', '{wider}', replace => true)"
        ))
        .unwrap();
        Spi::run("UPDATE orders SET status = 'shipped' WHERE id = 2").unwrap();
        assert_eq!(
            one::<String>("SELECT event FROM orders_status_history WHERE entity_key = 2 ORDER BY id DESC LIMIT 1"),
            Some("skip".into())
        );
    }

    #[pg_test]
    fn history_and_current_states() {
        setup_orders();
        Spi::run(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}')"#).unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(to_state, ',') FROM fsm.history('orders', 1::bigint)"),
            Some("paid,created".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key || '=' || state || '/' || coalesce(last_event, '-'), ',')
                   FROM fsm.current_states('orders', ARRAY[2, 1, 7]::bigint[])"
            ),
            Some("2=created/-,1=paid/pay".into())
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.history('pg_class', 1)").0,
            ERRCODE_UNDEFINED_OBJECT
        );
    }

    #[pg_test]
    fn reads_cover_every_bound_column_and_key_type() {
        setup_orders();
        Spi::run(r#"SELECT fsm.create_machine('pay', '{"states": {"open": {"initial": true}, "settled": {}},
                     "events": {"settle": {"from": "open", "to": "settled"}}}')"#)
        .unwrap();
        Spi::run("ALTER TABLE orders ADD COLUMN payment text DEFAULT 'open'").unwrap();
        Spi::run("SELECT fsm.attach('orders', 'payment', 'pay')").unwrap();
        Spi::run("INSERT INTO orders (id) VALUES (3)").unwrap();
        Spi::run("UPDATE orders SET payment = 'settled' WHERE id = 3").unwrap();
        Spi::run(r#"SELECT fsm.fire('orders', 3, 'pay', '{"amount": 1}')"#).unwrap();
        // One history, newest first, over both columns' history tables;
        // the key may come as int or bigint (a plan per key type).
        assert_eq!(
            one::<String>(
                "SELECT string_agg(event || ':' || to_state, ',') FROM fsm.history('orders', 3)"
            ),
            Some("pay:paid,settle:settled".into())
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM fsm.history('orders', 3::bigint, lim => 3)"),
            Some(3)
        );
        // col names the binding; without it, current_states refuses to guess.
        assert_eq!(
            one::<String>(
                "SELECT state || '/' || last_event FROM fsm.current_states('orders', ARRAY[3], col => 'status')"
            ),
            Some("paid/pay".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT state || '/' || last_event FROM fsm.current_states('orders', ARRAY[3], col => 'payment')"
            ),
            Some("settled/settle".into())
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.current_states('orders', ARRAY[3])").0,
            ERRCODE_AMBIGUOUS_FUNCTION
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(event, ',') FROM fsm.history('orders', 3, col => 'payment')"
            ),
            Some("settle".into())
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.history('orders', 3, col => 'note')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.current_states(NULL, ARRAY[3])").0,
            ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
    }

    #[pg_test]
    fn every_version_of_a_machine_is_kept() {
        setup_orders();
        Spi::run(&format!(
            "SELECT fsm.create_machine('order', '{}', replace => true)",
            ORDER.replace(
                r#""shipped": {"final": true}"#,
                r#""shipped": {"final": true}, "lost": {"final": true}"#
            )
        ))
        .unwrap();
        assert_eq!(
            one::<bool>("SELECT fsm.machine_definition('order', 1) -> 'states' ? 'lost'"),
            Some(false)
        );
        assert_eq!(
            one::<bool>("SELECT fsm.machine_definition('order', 2) -> 'states' ? 'lost'"),
            Some(true)
        );
        assert_eq!(
            one::<bool>(
                "SELECT fsm.machine_definition('order') = fsm.machine_definition('order', 2)"
            ),
            Some(true)
        );
        // History rows name the version they were checked against.
        Spi::run("INSERT INTO orders (id) VALUES (3)").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key || ':' || machine_version, ',' ORDER BY id) FROM orders_status_history"
            ),
            Some("1:1,2:1,3:2".into())
        );
        let (code, message) = error_of("SELECT fsm.machine_definition('order', 3)");
        assert_eq!(code, ERRCODE_UNDEFINED_OBJECT);
        assert_eq!(message, r#"machine "order" has no version 3"#);
        assert_eq!(
            error_of("SELECT fsm.machine_definition('nope', 1)").0,
            ERRCODE_UNDEFINED_OBJECT
        );
        // Dropping a machine drops its versions.
        Spi::run("SELECT fsm.detach('orders', 'status', drop_history => true)").unwrap();
        Spi::run("SELECT fsm.drop_machine('order')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM fsm.machine_versions WHERE machine = 'order'"),
            Some(0)
        );
    }

    #[pg_test]
    fn changes_and_states_at_read_the_whole_table_and_the_past() {
        setup_orders();
        Spi::run(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}')"#).unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key || ':' || coalesce(event, '-') || ':' || to_state, ',')
                   FROM fsm.changes('orders')"
            ),
            Some("1:pay:paid,2:-:created,1:-:created".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key, ',') FROM fsm.changes('orders', event => 'pay')"
            ),
            Some("1".into())
        );
        // Entity 7 was imported with history at known moments.
        Spi::run(
            "INSERT INTO orders_status_history (id, entity_key, event, from_state, to_state) VALUES
               (fsm.uuid7('2024-01-01 10:00+00'), 7, NULL, NULL, 'created'),
               (fsm.uuid7('2024-01-01 11:00+00'), 7, 'pay', 'created', 'paid')",
        )
        .unwrap();
        let state_at = |at: &str| {
            one::<String>(&format!(
                "SELECT string_agg(entity_key || '=' || state, ',') FROM fsm.states_at('orders', ARRAY[7, 1], '{at}')"
            ))
        };
        assert_eq!(state_at("2024-01-01 09:59:59.999+00"), None);
        assert_eq!(
            state_at("2024-01-01 10:59:59.999+00"),
            Some("7=created".into())
        );
        assert_eq!(state_at("2024-01-01 11:00:00+00"), Some("7=paid".into()));
        assert_eq!(
            state_at("2100-01-01 00:00+00"),
            Some("7=paid,1=paid".into())
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM fsm.changes('orders', since => '2024-01-01 10:00+00', until => '2024-01-01 11:00+00')"
            ),
            Some(1)
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.states_at('orders', ARRAY[7], NULL)").0,
            ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.states_at('orders', ARRAY[7.5], now())").0,
            ERRCODE_INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.changes('pg_class')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
    }

    #[pg_test]
    fn can_fire_and_available_events_ask_without_moving() {
        setup_orders();
        // The payload schema of "pay" is checked by can_fire, not by
        // available_events (which has no payload to check).
        assert_eq!(
            one::<bool>("SELECT fsm.can_fire('orders', 1, 'pay')"),
            Some(false)
        );
        assert_eq!(
            one::<bool>(r#"SELECT fsm.can_fire('orders', 1, 'pay', '{"amount": 5}')"#),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT fsm.can_fire('orders', 1, 'ship')"),
            Some(false)
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(event || ':' || to_states::text || ':' || allowed || ':' || coalesce(reason, '-'), ' | ')
                   FROM fsm.available_events('orders', 1)"
            ),
            Some(
                r#"pay:{paid}:true:- | review:{}:false:event "review" is not allowed from state "created" | ship:{}:false:event "ship" is not allowed from state "created""#
                    .into()
            )
        );
        Spi::run(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 5}')"#).unwrap();
        assert_eq!(
            one::<String>(
                "SELECT to_states::text FROM fsm.available_events('orders', 1) WHERE event = 'review'"
            ),
            Some("{paid,shipped}".into())
        );
        // Nothing moved, nothing recorded by asking.
        assert_eq!(
            one::<i64>("SELECT count(*) FROM orders_status_history WHERE entity_key = 1"),
            Some(2)
        );
        assert_eq!(
            error_of("SELECT fsm.can_fire('orders', 1, 'nope')").0,
            ERRCODE_UNDEFINED_OBJECT
        );
        assert_eq!(
            error_of("SELECT fsm.can_fire('orders', 9, 'pay')").0,
            ERRCODE_NO_DATA_FOUND
        );
        assert_eq!(
            error_of("SELECT fsm.can_fire('orders', 1.5, 'pay')").0,
            ERRCODE_INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.available_events('orders', NULL::bigint)").0,
            ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
    }

    /// The error fields of the error `sql` raises, as PL/pgSQL reads them:
    /// "sqlstate schema/table/column/constraint".
    fn fields_of(sql: &str) -> String {
        Spi::run("CREATE TEMP TABLE IF NOT EXISTS seen (f text)").unwrap();
        Spi::run("TRUNCATE seen").unwrap();
        Spi::run(&format!(
            "DO $do$ DECLARE c text; s text; t text; col text; n text; BEGIN
               EXECUTE {sql};
             EXCEPTION WHEN OTHERS THEN
               GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, s = SCHEMA_NAME, t = TABLE_NAME,
                                       col = COLUMN_NAME, n = CONSTRAINT_NAME;
               INSERT INTO seen VALUES (c || ' ' || concat_ws('/', s, t, col, n));
             END $do$",
            sql = pgrx::spi::quote_literal(sql)
        ))
        .unwrap();
        one::<String>("SELECT f FROM seen").expect("an error was raised")
    }

    #[pg_test]
    fn refusals_carry_the_standard_error_fields() {
        setup_orders();
        let schema = one::<String>(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'orders'::regclass",
        )
        .unwrap();
        assert_eq!(
            fields_of("SELECT fsm.fire('orders', 1, 'ship')"),
            format!("55000 {schema}/orders/status/order:ship")
        );
        assert_eq!(
            fields_of("SELECT fsm.fire('orders', 1, 'pay')"),
            format!("22023 {schema}/orders/status/order:pay")
        );
        assert_eq!(
            fields_of("UPDATE orders SET status = 'shipped' WHERE id = 1"),
            format!("55000 {schema}/orders/status/order")
        );
        assert_eq!(
            fields_of("INSERT INTO orders (id, status) VALUES (5, 'paid')"),
            format!("55000 {schema}/orders/status/order")
        );
        // Not fsm's refusal: no fields, even right after one that had them.
        assert_eq!(fields_of("SELECT 1 / 0"), "22012 ///");
    }

    #[pg_test]
    fn an_idempotency_key_never_moves_twice() {
        setup_orders();
        let pay =
            r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}', idempotency_key => 'r1')"#;
        assert_eq!(one::<String>(pay), Some("paid".into()));
        assert_eq!(one::<String>(pay), Some("paid".into()));
        assert_eq!(
            one::<String>(
                "SELECT string_agg(coalesce(event, '-') || ':' || coalesce(idempotency_key, '-'), ',' ORDER BY id)
                   FROM orders_status_history WHERE entity_key = 1"
            ),
            Some("-:-,pay:r1".into())
        );
        let (code, message) = error_of(
            r#"SELECT fsm.fire('orders', 2, 'pay', '{"amount": 1}', idempotency_key => 'r1')"#,
        );
        assert_eq!(code, ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(
            message,
            r#"idempotency key "r1" was used for another entity, not for event "pay" on key 2 of orders"#
        );
        assert_eq!(
            error_of("SELECT fsm.fire('orders', 1, 'ship', idempotency_key => repeat('x', 256))").0,
            ERRCODE_INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            one::<String>("SELECT status FROM orders WHERE id = 2"),
            Some("created".into())
        );
    }

    #[pg_test]
    fn actions_run_after_the_change_and_on_error_recovers() {
        Spi::run(
            "CREATE TABLE cards (id int PRIMARY KEY, status text, note text);
             CREATE FUNCTION public.note_it(r cards, p jsonb) RETURNS void LANGUAGE sql
               AS $$ UPDATE cards SET note = 'in ' || r.status WHERE id = r.id $$;
             CREATE FUNCTION public.decline(r cards, p jsonb) RETURNS void LANGUAGE plpgsql
               AS $$ BEGIN UPDATE cards SET note = 'half' WHERE id = r.id;
                     RAISE EXCEPTION 'declined' USING ERRCODE = 'P0001'; END $$",
        )
        .unwrap();
        Spi::run(
            r#"SELECT fsm.create_machine('card', '{"states": {"new": {"initial": true},
                 "charged": {"final": true}, "failed": {"final": true}},
               "events": {"note": {"from": "new", "to": "charged", "action": "public.note_it"},
                          "charge": {"from": "new", "to": "charged", "action": "public.decline",
                                     "on_error": "failed"},
                          "strict": {"from": "new", "to": "charged", "action": "public.decline"}}}')"#,
        )
        .unwrap();
        Spi::run(
            "SELECT fsm.attach('cards', 'status', 'card'); INSERT INTO cards (id) VALUES (1), (2)",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT fsm.fire('cards', 1, 'note')"),
            Some("charged".into())
        );
        assert_eq!(
            one::<String>("SELECT note FROM cards WHERE id = 1"),
            Some("in charged".into())
        );
        assert_eq!(
            error_of("SELECT fsm.fire('cards', 2, 'strict')"),
            (ERRCODE_RAISE_EXCEPTION, "declined".into())
        );
        assert_eq!(
            one::<String>(r#"SELECT fsm.fire('cards', 2, 'charge', '[1]')"#),
            Some("failed".into())
        );
        assert_eq!(
            one::<String>("SELECT status || ':' || coalesce(note, '-') FROM cards WHERE id = 2"),
            Some("failed:-".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(coalesce(event, '-') || ':' || to_state || ':' || coalesce(payload::text, '-'), ',' ORDER BY id)
                   FROM cards_status_history WHERE entity_key = 2"
            ),
            Some(r#"-:new:-,charge:failed:{"error": {"message": "declined", "sqlstate": "P0001"}, "payload": [1]}"#.into())
        );
    }

    #[pg_test]
    fn time_in_state_and_state_stats_are_exact_over_the_window() {
        setup_orders();
        Spi::run(
            "INSERT INTO orders_status_history (id, entity_key, event, from_state, to_state) VALUES
               (fsm.uuid7('2026-03-01 00:00+00'), 7, NULL, NULL, 'created'),
               (fsm.uuid7('2026-03-01 06:00+00'), 7, 'pay', 'created', 'paid'),
               (fsm.uuid7('2026-03-02 00:00+00'), 7, 'ship', 'paid', 'shipped')",
        )
        .unwrap();
        let window = "'2026-03-01 03:00+00', '2026-03-01 12:00+00'";
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(state || '=' || extract(epoch FROM duration) || '/' || entered, ',')
                   FROM fsm.time_in_state('orders', ARRAY[7, 8], {window})"
            )),
            Some("created=10800.000000/0,paid=21600.000000/1".into())
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(state || ':' || entered || ':' || still_in || ':' || coalesce(median_stay::text, '-') || ':' || next::text, ',')
                   FROM fsm.state_stats('orders', {window})"
            )),
            Some(r#"created:0:0:03:00:00:{"paid": 1},paid:1:1:-:{},shipped:0:0:-:{}"#.into())
        );
        assert_eq!(
            error_of(&format!(
                "SELECT * FROM fsm.time_in_state('orders', ARRAY[7], {window}, col => 'nope')"
            ))
            .0,
            ERRCODE_UNDEFINED_OBJECT
        );
        assert_eq!(
            error_of("SELECT * FROM fsm.state_stats('orders', '2026-03-02', '2026-03-01')").0,
            ERRCODE_INVALID_PARAMETER_VALUE
        );
    }

    #[pg_test]
    fn tick_fires_due_timers_once() {
        Spi::run(
            r#"SELECT fsm.create_machine('alarm', '{"states": {"set": {"initial": true,
                 "timeout": {"after": "10 minutes", "event": "ring"}}, "rung": {"final": true}},
               "events": {"ring": {"from": "set", "to": "rung"}}}')"#,
        )
        .unwrap();
        Spi::run(
            "CREATE TABLE alarms (id int PRIMARY KEY, state text);
             SELECT fsm.attach('alarms', 'state', 'alarm');
             -- Alarm 1 was set an hour ago (imported history), alarm 2 now.
             SET LOCAL session_replication_role = replica;
             INSERT INTO alarms VALUES (1, 'set');
             RESET session_replication_role;
             INSERT INTO alarms_state_history (id, entity_key, to_state)
                  VALUES (fsm.uuid7(now() - interval '1 hour'), 1, 'set');
             INSERT INTO alarms VALUES (2)",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(entity_key || ':' || event, ',' ORDER BY due) FROM fsm.timers WHERE tbl = 'alarms'::regclass"),
            Some("1:ring,2:ring".into())
        );
        assert_eq!(one::<i32>("SELECT fsm.tick()"), Some(1));
        assert_eq!(one::<i32>("SELECT fsm.tick()"), Some(0));
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM alarms"),
            Some("1:rung,2:set".into())
        );
        assert_eq!(
            error_of("SELECT fsm.tick(-5)").0,
            ERRCODE_INVALID_PARAMETER_VALUE
        );
    }

    #[pg_test]
    fn branches_take_the_first_that_passes() {
        // A parcel's timer: lost if uninsured, else claimed. Each branch of
        // the timeout event has one target; the guard picks.
        Spi::run(
            r#"CREATE TABLE parcels (id int PRIMARY KEY, state text, insured boolean NOT NULL);
               CREATE FUNCTION is_insured(p parcels, payload jsonb) RETURNS boolean
                   LANGUAGE sql AS $$ SELECT p.insured $$;
               SELECT fsm.create_machine('parcel', '{"states": {
                   "sent": {"initial": true, "timeout": {"after": "3 days", "event": "expire"}},
                   "claimed": {"final": true}, "lost": {"final": true}, "delivered": {"final": true}},
                 "events": {
                   "expire": [{"from": "sent", "to": "claimed", "guard": "is_insured"},
                              {"from": "sent", "to": "lost"}],
                   "deliver": {"from": "sent", "to": "delivered"}}}');
               SELECT fsm.attach('parcels', 'state', 'parcel');
               SET LOCAL session_replication_role = replica;
               INSERT INTO parcels VALUES (1, 'sent', true), (2, 'sent', false);
               RESET session_replication_role;
               INSERT INTO parcels_state_history (id, entity_key, to_state)
                    VALUES (fsm.uuid7(now() - interval '4 days'), 1, 'sent'),
                           (fsm.uuid7(now() - interval '5 days'), 2, 'sent');
               INSERT INTO parcels VALUES (3, NULL, true), (4, NULL, false);"#,
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT fsm.tick()"), Some(2));
        // fire and a plain UPDATE choose by the same rule.
        assert_eq!(
            one::<String>("SELECT fsm.fire('parcels', 3, 'expire')"),
            Some("claimed".into())
        );
        let (code, message) = error_of("UPDATE parcels SET state = 'claimed' WHERE id = 4");
        assert_eq!(code, ERRCODE_CHECK_VIOLATION);
        assert_eq!(
            message,
            "guard public.is_insured refused event \"expire\" (table parcels, key 4, state \"sent\")"
        );
        Spi::run("UPDATE parcels SET state = 'lost' WHERE id = 4").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(h.entity_key || ':' || h.event || ':' || h.to_state, ',' ORDER BY h.entity_key)
                   FROM parcels_state_history h WHERE h.event IS NOT NULL"
            ),
            Some("1:expire:claimed,2:expire:lost,3:expire:claimed,4:expire:lost".into())
        );
        // One row per (event, from, to) in the view, one name in the hint.
        assert_eq!(
            one::<String>(
                "SELECT string_agg(event || ':' || from_state || '>' || to_state, ',' ORDER BY event, to_state)
                   FROM fsm.transitions WHERE machine = 'parcel'"
            ),
            Some("deliver:sent>delivered,expire:sent>claimed,expire:sent>lost".into())
        );
        let (code, _) = error_of(
            r#"SELECT fsm.create_machine('parcel_broken', '{"states": {"a": {"initial": true}},
                 "events": {"e": [{"from": "a", "to": "a"}, {"from": "a", "to": "nowhere"}]}}')"#,
        );
        assert_eq!(code, ERRCODE_INVALID_OBJECT_DEFINITION);
    }

    #[pg_test]
    fn enum_and_integer_state_columns() {
        Spi::run(
            r#"CREATE TYPE lamp_state AS ENUM ('off', 'on', 'spare');
               SELECT fsm.create_machine('lamp', '{"states": {"off": {"initial": true}, "on": {}},
                 "events": {"switch": {"from": "off", "to": "on"}, "unswitch": {"from": "on", "to": "off"}}}');
               CREATE TABLE lamps (id int PRIMARY KEY, state lamp_state);
               SELECT fsm.attach('lamps', 'state', 'lamp');
               INSERT INTO lamps (id) VALUES (1);
               SELECT fsm.fire('lamps', 1, 'switch');
               UPDATE lamps SET state = 'off' WHERE id = 1;"#,
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(coalesce(from_state, '-') || '>' || to_state, ',' ORDER BY id) FROM lamps_state_history"),
            Some("->off,off>on,on>off".into())
        );
        assert_eq!(
            error_of("UPDATE lamps SET state = 'spare' WHERE id = 1").0,
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        );
        Spi::run(
            r#"SELECT fsm.create_machine('level', '{"states": {"1": {"initial": true}, "2": {}},
                 "events": {"raise": {"from": "1", "to": "2"}}}');
               CREATE TABLE levels (id int PRIMARY KEY, level smallint);
               SELECT fsm.attach('levels', 'level', 'level');
               INSERT INTO levels (id) VALUES (1);"#,
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT fsm.fire('levels', 1, 'raise')"),
            Some("2".into())
        );
        assert_eq!(one::<i16>("SELECT level FROM levels WHERE id = 1"), Some(2));
        // A machine whose states the column cannot hold is refused at attach.
        Spi::run("CREATE TABLE wrong_levels (id int PRIMARY KEY, level smallint)").unwrap();
        let (code, message) = error_of("SELECT fsm.attach('wrong_levels', 'level', 'lamp')");
        assert_eq!(code, ERRCODE_DATATYPE_MISMATCH);
        assert_eq!(
            message,
            "state \"on\" is not a value of column wrong_levels.level (type smallint)"
        );
    }

    #[pg_test]
    fn set_based_update_appends_a_history_row_per_row() {
        Spi::run(
            r#"SELECT fsm.create_machine('flow', '{"states": {"a": {"initial": true}, "b": {}},
                     "events": {"go": {"from": "a", "to": "b"}}}')"#,
        )
        .unwrap();
        Spi::run("CREATE TABLE items (id bigint PRIMARY KEY, status text)").unwrap();
        Spi::run("SELECT fsm.attach('items', 'status', 'flow')").unwrap();
        Spi::run("INSERT INTO items (id) SELECT g FROM generate_series(1, 500) g").unwrap();
        Spi::run("UPDATE items SET status = 'b'").unwrap();
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM items_status_history h JOIN items i ON i.id = h.entity_key
                  WHERE h.event = 'go' AND h.from_state = 'a' AND h.to_state = 'b'"
            ),
            Some(500)
        );
        // Visible to the next statement of the same transaction, through fsm.history too.
        assert_eq!(
            one::<String>(
                "SELECT string_agg(to_state, ',') FROM fsm.history('items', 250::bigint)"
            ),
            Some("b,a".into())
        );
    }

    #[pg_test]
    fn fire_without_guard_records_the_state_it_left() {
        Spi::run(
            r#"SELECT fsm.create_machine('ticket', '{"states": {"open": {"initial": true}, "held": {}, "closed": {"final": true}},
                     "events": {"hold": {"from": "open", "to": "held"},
                                "close": {"from": ["open", "held"], "to": "closed"},
                                "touch": {"from": "held", "to": "held"}}}')"#,
        )
        .unwrap();
        Spi::run("CREATE TABLE tickets (id int PRIMARY KEY, state text)").unwrap();
        Spi::run("SELECT fsm.attach('tickets', 'state', 'ticket', protect => true)").unwrap();
        Spi::run("INSERT INTO tickets (id) VALUES (1), (2)").unwrap();
        // One UPDATE decides among several sources; protect lets fire through.
        Spi::run("SELECT fsm.fire('tickets', 1, 'hold', expect => 'open')").unwrap();
        Spi::run("SELECT fsm.fire('tickets', 1, 'touch')").unwrap();
        Spi::run("SELECT fsm.fire('tickets', 1, 'close')").unwrap();
        Spi::run("SELECT fsm.fire('tickets', 2, 'close')").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key || ':' || event || ':' || from_state || '>' || to_state, ',' ORDER BY id)
                   FROM tickets_state_history WHERE event IS NOT NULL"
            ),
            Some("1:hold:open>held,1:touch:held>held,1:close:held>closed,2:close:open>closed".into())
        );
        // Refusals still say exactly why, after the one UPDATE matched nothing.
        assert_eq!(
            error_of("SELECT fsm.fire('tickets', 2, 'hold')"),
            (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                r#"event "hold" is not allowed from state "closed" (table tickets, key 2, state "closed")"#.into()
            )
        );
        assert_eq!(
            error_of("SELECT fsm.fire('tickets', 3, 'hold')").0,
            ERRCODE_NO_DATA_FOUND
        );
        Spi::run("INSERT INTO tickets (id) VALUES (4)").unwrap();
        assert_eq!(
            error_of("SELECT fsm.fire('tickets', 4, 'close', expect => 'held')").0,
            ERRCODE_T_R_SERIALIZATION_FAILURE
        );
    }

    #[pg_test]
    fn uuid7_orders_and_reads_back_its_time() {
        assert_eq!(one::<bool>("SELECT fsm.uuid7() < fsm.uuid7()"), Some(true));
        assert_eq!(
            one::<String>("SELECT fsm.uuid7('2024-05-06 07:08:09.123+00')::text"),
            Some("018f4cbb-3823-7000-8000-000000000000".into())
        );
        assert_eq!(
            one::<bool>("SELECT fsm.uuid7_time(fsm.uuid7('2024-05-06 07:08:09.123+00')) = '2024-05-06 07:08:09.123+00'"),
            Some(true)
        );
    }

    /// A guard that fires on another entity while the outer fire is in
    /// progress: each fire's context stays with its own row.
    #[pg_test]
    fn nested_fire_keeps_each_context_with_its_row() {
        Spi::run("CREATE TABLE nested (id int PRIMARY KEY, status text)").unwrap();
        Spi::run(
            "CREATE FUNCTION public.go_other(r nested, p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN
                 IF r.id = 1 THEN
                     PERFORM fsm.fire('nested', 2, 'plain', '{\"inner\": true}');
                 END IF;
                 RETURN true;
             END $$",
        )
        .unwrap();
        Spi::run(
            r#"SELECT fsm.create_machine('nest', '{"states": {"a": {"initial": true}, "b": {}, "c": {"final": true}},
                "events": {"go": {"from": "a", "to": "b", "guard": "public.go_other"},
                           "plain": {"from": "a", "to": "b"},
                           "end": {"from": "b", "to": "c"}}}')"#,
        )
        .unwrap();
        Spi::run("SELECT fsm.attach('nested', 'status', 'nest')").unwrap();
        Spi::run("INSERT INTO nested VALUES (1), (2)").unwrap();
        assert_eq!(
            one::<String>(r#"SELECT fsm.fire('nested', 1, 'go', '{"outer": true}')"#),
            Some("b".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(entity_key || ':' || event || ':' || payload::text, ' ' ORDER BY entity_key)
                   FROM nested_status_history WHERE event IS NOT NULL"
            ),
            Some(r#"1:go:{"outer": true} 2:plain:{"inner": true}"#.into())
        );
    }

    /// A user trigger that cascades an UPDATE to another attached table
    /// during fire: the cascaded change is checked as a plain UPDATE, never
    /// taken for the fire's own move.
    #[pg_test]
    fn cascading_update_is_checked_on_its_own() {
        Spi::run(
            r#"SELECT fsm.create_machine('casc', '{"states": {"a": {"initial": true}, "b": {}, "c": {}},
                "events": {"go": {"from": "a", "to": "b"}, "jump": {"from": "b", "to": "c"}}}')"#,
        )
        .unwrap();
        Spi::run("CREATE TABLE parent (id int PRIMARY KEY, status text)").unwrap();
        Spi::run("CREATE TABLE child (id int PRIMARY KEY, status text)").unwrap();
        Spi::run("SELECT fsm.attach('parent', 'status', 'casc')").unwrap();
        Spi::run("SELECT fsm.attach('child', 'status', 'casc')").unwrap();
        Spi::run("INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1)").unwrap();
        // The cascade tries a move no event allows (a -> c): refused.
        Spi::run(
            "CREATE FUNCTION public.cascade() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN UPDATE child SET status = 'c' WHERE id = NEW.id; RETURN NEW; END $$;
             CREATE TRIGGER a_cascade BEFORE UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION public.cascade()",
        )
        .unwrap();
        let (code, message) = error_of("SELECT fsm.fire('parent', 1, 'go')");
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(
            message,
            r#"no event leads to "c" (table child, key 1, state "a")"#
        );
        assert_eq!(one::<String>("SELECT status FROM parent"), Some("a".into()));
        assert_eq!(one::<String>("SELECT status FROM child"), Some("a".into()));
    }

    /// The key column's type changes (history first, then the table): the
    /// binding is reloaded with the new type, and a key is never read as
    /// the old one.
    #[pg_test]
    fn key_type_change_reloads_the_binding() {
        setup_orders();
        Spi::run(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}')"#).unwrap();
        // Refused while the history still keys by bigint (entities would
        // no longer match their history): nothing changes.
        assert_eq!(
            error_of("ALTER TABLE orders ALTER COLUMN id TYPE text").0,
            ERRCODE_INVALID_TABLE_DEFINITION
        );
        Spi::run("ALTER TABLE orders_status_history ALTER COLUMN entity_key TYPE text").unwrap();
        Spi::run("ALTER TABLE orders ALTER COLUMN id TYPE text").unwrap();
        assert_eq!(
            one::<String>("SELECT fsm.fire('orders', '1'::text, 'ship')"),
            Some("shipped".into())
        );
        // A key of another type converts to the new key type.
        assert_eq!(
            one::<String>(r#"SELECT fsm.fire('orders', 2, 'pay', '{"amount": 2}')"#),
            Some("paid".into())
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(to_state, ' ' ORDER BY id) FROM fsm.history('orders', '1'::text)"
            ),
            Some("created paid shipped".into())
        );
    }

    /// A history table altered by its owner is refused by the read
    /// functions, never read as the declared type.
    #[pg_test]
    fn altered_history_table_is_refused_by_reads() {
        setup_orders();
        Spi::run("ALTER TABLE orders_status_history ALTER COLUMN event TYPE varchar(40)").unwrap();
        let (code, message) = error_of("SELECT * FROM fsm.history('orders', 1)");
        assert_eq!(code, ERRCODE_DATATYPE_MISMATCH);
        assert_eq!(
            message,
            "the history of orders does not have the columns fsm reads: a history table was altered"
        );
    }

    #[pg_test]
    fn uuid7_is_not_run_in_parallel_workers() {
        assert_eq!(
            one::<String>(
                "SELECT proparallel::text FROM pg_proc WHERE oid = 'fsm.uuid7()'::regprocedure"
            ),
            Some("r".into())
        );
    }

    /// `ORDER` without the payload schema: plain UPDATEs may move rows.
    const PLAIN_ORDER: &str = r#"{"states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true}},
        "events": {"pay": {"from": "created", "to": "paid"}, "ship": {"from": "paid", "to": "shipped"}}}"#;

    fn setup_plain_orders(table_sql: &str) {
        Spi::run(&format!(
            "SELECT fsm.create_machine('order', '{PLAIN_ORDER}')"
        ))
        .unwrap();
        Spi::run(table_sql).unwrap();
        Spi::run("SELECT fsm.attach('orders', 'status', 'order')").unwrap();
        Spi::run("INSERT INTO orders (id) VALUES (1), (2)").unwrap();
    }

    /// The history of orders, oldest first, as "event:from>to" (INSERT
    /// rows as ">to").
    fn trail() -> String {
        one::<String>(
            "SELECT string_agg(coalesce(event, '') || ':' || coalesce(from_state, '') || '>' || to_state, ' ' ORDER BY id)
               FROM orders_status_history",
        )
        .unwrap_or_default()
    }

    /// Rows that were not written leave no history; an upsert's move is
    /// checked and recorded as a move.
    #[pg_test]
    fn upserts_record_exactly_what_they_wrote() {
        setup_plain_orders("CREATE TABLE orders (id bigint PRIMARY KEY, status text)");
        Spi::run("INSERT INTO orders (id) VALUES (1) ON CONFLICT DO NOTHING").unwrap();
        Spi::run(
            "INSERT INTO orders (id, status) VALUES (2, 'paid') ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status",
        )
        .unwrap();
        assert_eq!(trail(), ":>created :>created pay:created>paid");
        let (code, _) = error_of(
            "INSERT INTO orders (id, status) VALUES (2, 'created') ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status",
        );
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(
            one::<String>("SELECT status FROM orders WHERE id = 2"),
            Some("paid".into())
        );
    }

    /// A BEFORE trigger of the user's that sets the state (the SET list does
    /// not name it) is checked and recorded; one that skips the row leaves
    /// no history.
    #[pg_test]
    fn changes_made_by_other_triggers_are_checked_and_recorded() {
        setup_plain_orders("CREATE TABLE orders (id bigint PRIMARY KEY, status text)");
        Spi::run(
            "CREATE FUNCTION ship_it() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN NEW.status := 'shipped'; RETURN NEW; END $$;
             CREATE TRIGGER a_ship BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION ship_it();",
        )
        .unwrap();
        let (code, message) = error_of("UPDATE orders SET id = id WHERE id = 1");
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(
            message,
            r#"no event leads to "shipped" (table orders, key 1, state "created")"#
        );
        Spi::run(
            "DROP TRIGGER a_ship ON orders;
             CREATE FUNCTION skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
             CREATE TRIGGER zzz_skip BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION skip();
             INSERT INTO orders (id) VALUES (3);",
        )
        .unwrap();
        assert_eq!(trail(), ":>created :>created");
    }

    /// A partitioned table is attached as a whole; its partitions are
    /// reached through it, and one alone cannot be attached.
    #[pg_test]
    fn partitioned_tables_are_covered_as_a_whole() {
        setup_plain_orders(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text) PARTITION BY RANGE (id);
             CREATE TABLE orders_a PARTITION OF orders FOR VALUES FROM (0) TO (10);",
        );
        Spi::run(
            "CREATE TABLE orders_b PARTITION OF orders FOR VALUES FROM (10) TO (20);
             INSERT INTO orders (id) VALUES (11);
             UPDATE orders_b SET status = 'paid';",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT fsm.fire('orders', 1, 'pay')"),
            Some("paid".into())
        );
        assert_eq!(
            trail(),
            ":>created :>created :>created pay:created>paid pay:created>paid"
        );
        let (code, _) = error_of("UPDATE orders_a SET status = 'created' WHERE id = 1");
        assert_eq!(code, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        let (code, _) = error_of("SELECT fsm.attach('orders_b', 'status', 'order')");
        assert_eq!(code, ERRCODE_FEATURE_NOT_SUPPORTED);
    }

    /// Renames are followed; drops the binding cannot follow are refused.
    #[pg_test]
    fn schema_changes_are_followed_or_refused() {
        setup_plain_orders("CREATE TABLE orders (id bigint PRIMARY KEY, status text)");
        Spi::run("ALTER TABLE orders RENAME COLUMN status TO state").unwrap();
        assert_eq!(
            one::<String>("SELECT col::text FROM fsm.bindings WHERE tbl = 'orders'::regclass"),
            Some("state".into())
        );
        Spi::run(
            "UPDATE orders SET state = 'paid' WHERE id = 1; INSERT INTO orders (id) VALUES (3)",
        )
        .unwrap();
        assert_eq!(trail(), ":>created :>created pay:created>paid :>created");
        let (code, _) = error_of("DROP TABLE orders_status_history");
        assert_eq!(code, ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST);
        let (code, _) = error_of("ALTER TABLE orders DROP CONSTRAINT orders_pkey");
        assert_eq!(code, ERRCODE_INVALID_TABLE_DEFINITION);
    }

    /// A definition whose `*` sources and target lists expand past the cap
    /// is refused with the count, before anything is stored.
    #[pg_test]
    fn expansion_is_capped() {
        let states: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    r#""s{i}": {}"#,
                    if i == 0 { r#"{"initial": true}"# } else { "{}" }
                )
            })
            .collect();
        let targets: Vec<String> = (0..400).map(|i| format!(r#""s{i}""#)).collect();
        let definition = format!(
            r#"{{"states": {{{}}}, "events": {{"jump": {{"from": "*", "to": [{}]}}}}}}"#,
            states.join(", "),
            targets.join(", ")
        );
        let (code, message) =
            error_of(&format!("SELECT fsm.create_machine('big', '{definition}')"));
        assert_eq!(code, ERRCODE_INVALID_OBJECT_DEFINITION);
        assert!(
            message.contains("brings the expanded transitions to 160000"),
            "{message}"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM fsm.machines"), Some(0));
    }

    /// A Rust panic inside one of fsm's V1 functions (the convention of
    /// the trigger, fire and the read functions) becomes an ERROR; the
    /// session, and its transaction after a rollback to savepoint, go on.
    #[pg_test]
    fn a_panic_becomes_an_error_and_the_session_goes_on() {
        setup_orders();
        let (code, message) = error_of("SELECT tests.fsm_panics()");
        assert_eq!(code, ERRCODE_INTERNAL_ERROR);
        assert_eq!(message, "fsm test: a deliberate panic");
        assert_eq!(
            one::<String>(r#"SELECT fsm.fire('orders', 1, 'pay', '{"amount": 1}')"#),
            Some("paid".into())
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM orders_status_history WHERE event = 'pay'"),
            Some(1)
        );
    }

    v1_function!(fsm_panics, pg_finfo_fsm_panics, panics);

    unsafe fn panics(_: pg_sys::FunctionCallInfo) -> crate::error::FsmResult<pg_sys::Datum> {
        panic!("fsm test: a deliberate panic")
    }

    pgrx::extension_sql!(
        "CREATE FUNCTION tests.fsm_panics() RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fsm_panics';",
        name = "test_panics"
    );
}
