//! fire's refusals as FsmError: the kind from the SQLSTATE, the message,
//! HINT and PostgreSQL's error fields (schema, table, column, machine and
//! event from constraint_name), and PostgreSQL's own errors of the same
//! SQLSTATEs left as ErrorKind::Other.

mod common;

use common::{connect, fresh_table, order_machine, state_of};
use fsm_client::{fire, history, ErrorKind, FsmError};
use serde_json::{json, Value};

/// The fields of a refusal by fsm on `schema.items.state`.
#[track_caller]
fn assert_fields(e: &FsmError, schema: &str, machine: &str, event: Option<&str>) {
    assert_eq!(e.schema(), Some(schema), "{e}");
    assert_eq!(e.table(), Some("items"), "{e}");
    assert_eq!(e.column(), Some("state"), "{e}");
    assert_eq!(e.machine(), Some(machine), "{e}");
    assert_eq!(e.event(), event, "{e}");
    assert_eq!(e.detail(), None, "{e}");
}

/// One refusal of `fire` on the entity `key` and what it must carry.
struct Refusal {
    key: &'static str,
    event: &'static str,
    payload: Option<Value>,
    kind: ErrorKind,
    sqlstate: &'static str,
    message: String,
    hint: Option<&'static str>,
    /// The event named by constraint_name.
    event_field: Option<&'static str>,
}

#[tokio::test]
async fn each_refusal_of_fire_has_its_kind_sqlstate_message_and_fields() {
    let client = connect().await;
    let s = "rc_err_refusals";
    let table = fresh_table(&client, s, &order_machine(), "").await;
    let created_hint = Some("Events allowed from state \"created\": cancel, pay.");
    let cases = [
        // An event declared, but not from the current state.
        Refusal {
            key: "1",
            event: "deliver",
            payload: None,
            kind: ErrorKind::TransitionNotAllowed,
            sqlstate: "55000",
            message: format!(
                "event \"deliver\" is not allowed from state \"created\" \
                 (table {s}.items, key 1, state \"created\")"
            ),
            hint: created_hint,
            event_field: Some("deliver"),
        },
        Refusal {
            key: "999",
            event: "pay",
            payload: Some(json!({"amount": 1})),
            kind: ErrorKind::KeyNotFound,
            sqlstate: "P0002",
            message: format!("no row of {s}.items has key 999 (event \"pay\")"),
            hint: None,
            event_field: Some("pay"),
        },
        Refusal {
            key: "1",
            event: "pay",
            payload: Some(json!({"amount_cents": 100})),
            kind: ErrorKind::InvalidParameter,
            sqlstate: "22023",
            message: format!(
                "payload of event \"pay\" does not match its schema: \"amount\" is a required \
                 property (table {s}.items, key 1, state \"created\")"
            ),
            hint: created_hint,
            event_field: Some("pay"),
        },
        // An unknown event: constraint_name is the machine alone.
        Refusal {
            key: "1",
            event: "teleport",
            payload: None,
            kind: ErrorKind::UnknownName,
            sqlstate: "42704",
            message: format!(
                "event \"teleport\" is not an event of machine \"{s}\" \
                 (table {s}.items, key 1, state \"created\")"
            ),
            hint: created_hint,
            event_field: None,
        },
    ];
    for case in cases {
        let e = fire(
            &client,
            &table,
            case.key,
            case.event,
            case.payload.as_ref(),
            None,
        )
        .await
        .expect_err(case.event);
        assert_eq!(e.kind(), case.kind, "{e}");
        assert_eq!(e.sqlstate(), Some(case.sqlstate), "{e}");
        assert_eq!(e.message(), Some(case.message.as_str()));
        assert_eq!(
            e.to_string(),
            format!("{}: {}", case.sqlstate, case.message)
        );
        assert_eq!(e.hint(), case.hint, "{e}");
        assert_fields(&e, s, s, case.event_field);
    }
    // Nothing moved, nothing was recorded.
    assert_eq!(state_of(&client, &table, 1).await, "created");
    assert_eq!(history(&client, &table, "1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_guard_that_says_no_is_guard_refused_but_a_check_constraint_is_other() {
    let client = connect().await;
    let s = "rc_err_guard";
    let mut machine = order_machine();
    machine["events"]["ship"]["guard"] = json!("rc_err_guard.approved");
    let table = fresh_table(
        &client,
        s,
        &machine,
        "CREATE FUNCTION rc_err_guard.approved(r rc_err_guard.items, p jsonb) RETURNS boolean
           LANGUAGE sql AS $$SELECT coalesce((p->>'approved')::boolean, false)$$;
         ALTER TABLE rc_err_guard.items
           ADD CONSTRAINT never_cancelled CHECK (state IS DISTINCT FROM 'cancelled');",
    )
    .await;
    fire(
        &client,
        &table,
        "1",
        "pay",
        Some(&json!({"amount": 5})),
        None,
    )
    .await
    .unwrap();

    let e = fire(&client, &table, "1", "ship", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::GuardRefused, "{e}");
    assert_eq!(e.sqlstate(), Some("23514"));
    assert_eq!(
        e.message(),
        Some(
            "guard rc_err_guard.approved refused event \"ship\" \
             (table rc_err_guard.items, key 1, state \"paid\")"
        )
    );
    assert_eq!(
        e.hint(),
        Some("Events allowed from state \"paid\": cancel, ship.")
    );
    assert_fields(&e, s, s, Some("ship"));
    assert_eq!(state_of(&client, &table, 1).await, "paid");

    let approved = json!({"approved": true});
    let shipped = fire(&client, &table, "1", "ship", Some(&approved), None).await;
    assert_eq!(shipped.unwrap(), "shipped");

    // The same SQLSTATE from the table's own CHECK constraint, raised by
    // PostgreSQL: not a refusal by fsm, and no machine or event.
    let e = fire(&client, &table, "2", "cancel", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert_eq!(e.sqlstate(), Some("23514"));
    assert_eq!(
        e.message(),
        Some("new row for relation \"items\" violates check constraint \"never_cancelled\"")
    );
    assert_eq!(e.detail(), Some("Failing row contains (2, cancelled)."));
    assert_eq!((e.machine(), e.event()), (None, None));
    assert_eq!(state_of(&client, &table, 2).await, "created");
}

#[tokio::test]
async fn a_missing_role_is_permission_denied_but_a_missing_table_grant_is_other() {
    let mut client = connect().await;
    let s = "rc_err_roles";
    let mut machine = order_machine();
    machine["events"]["cancel"]["roles"] = json!(["rc_err_roles_support"]);
    let table = fresh_table(&client, s, &machine, "").await;

    // Roles are cluster-wide: made inside a transaction that is rolled
    // back, they never outlive the test.
    let mut tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "CREATE ROLE rc_err_roles_support;
         CREATE ROLE rc_err_roles_clerk;
         GRANT USAGE ON SCHEMA rc_err_roles TO rc_err_roles_clerk;
         GRANT SELECT ON rc_err_roles.items TO rc_err_roles_clerk;
         SET LOCAL ROLE rc_err_roles_clerk",
    )
    .await
    .unwrap();

    // No UPDATE on the table: PostgreSQL's own 42501.
    let savepoint = tx.transaction().await.unwrap();
    let e = fire(&savepoint, &table, "1", "cancel", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert_eq!(e.sqlstate(), Some("42501"));
    assert_eq!(e.message(), Some("permission denied for table items"));
    assert_eq!((e.machine(), e.event()), (None, None));
    savepoint.rollback().await.unwrap();

    // UPDATE granted, but not a member of the event's role: fsm's 42501.
    tx.batch_execute(
        "RESET ROLE;
         GRANT UPDATE ON rc_err_roles.items TO rc_err_roles_clerk;
         SET LOCAL ROLE rc_err_roles_clerk",
    )
    .await
    .unwrap();
    let e = fire(&tx, &table, "1", "cancel", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.sqlstate(), Some("42501"));
    assert_eq!(
        e.message(),
        Some(
            "event \"cancel\" needs membership in one of: rc_err_roles_support \
             (table rc_err_roles.items, key 1, state \"created\")"
        )
    );
    assert_fields(&e, s, s, Some("cancel"));
    tx.rollback().await.unwrap();
    assert_eq!(state_of(&client, &table, 1).await, "created");
}

#[tokio::test]
async fn postgres_own_errors_are_other_without_fsm_fields() {
    let client = connect().await;
    let table = fresh_table(&client, "rc_err_postgres", &order_machine(), "").await;
    // table, key => SQLSTATE, message
    let cases = [
        (
            "rc_err_postgres.nosuch",
            "1",
            "42P01",
            "relation \"rc_err_postgres.nosuch\" does not exist",
        ),
        (
            table.as_str(),
            "abc",
            "22P02",
            "invalid input syntax for type bigint: \"abc\"",
        ),
    ];
    for (table, key, sqlstate, message) in cases {
        let e = fire(&client, table, key, "cancel", None, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Other, "{e}");
        assert_eq!(e.sqlstate(), Some(sqlstate));
        assert_eq!(e.message(), Some(message));
        assert_eq!((e.table(), e.machine(), e.event()), (None, None, None));
    }
}
