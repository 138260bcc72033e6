//! fire, available_events, can_fire and history when things go as asked:
//! the states returned, the history rows written, idempotent retries, and
//! a transition rolled back with the caller's transaction.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{connect, fresh_table, order_machine, state_of};
use fsm_client::{available_events, can_fire, fire, history, AvailableEvent, ErrorKind};
use serde_json::{json, Value};

/// A history row without its id, moment and db_user:
/// (event, from_state, to_state, payload, actor).
type Step = (
    Option<String>,
    Option<String>,
    String,
    Option<Value>,
    Option<String>,
);

fn step(
    event: Option<&str>,
    from: Option<&str>,
    to: &str,
    payload: Option<Value>,
    actor: Option<&str>,
) -> Step {
    (
        event.map(str::to_owned),
        from.map(str::to_owned),
        to.to_owned(),
        payload,
        actor.map(str::to_owned),
    )
}

async fn steps(client: &tokio_postgres::Client, table: &str, key: &str) -> Vec<Step> {
    history(client, table, key)
        .await
        .expect("history")
        .into_iter()
        .map(|t| (t.event, t.from_state, t.to_state, t.payload, t.actor))
        .collect()
}

/// How many rows of the history table `history_table` carry `key`.
async fn rows_with_key(client: &tokio_postgres::Client, history_table: &str, key: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {history_table} WHERE idempotency_key = $1");
    client.query_one(&sql, &[&key]).await.unwrap().get(0)
}

#[tokio::test]
async fn fire_returns_each_new_state_and_history_records_each_step() {
    let client = connect().await;
    let table = fresh_table(&client, "rc_fire_success", &order_machine(), "").await;
    // Set after the inserts: their history rows have no actor.
    client
        .batch_execute("SET fsm.actor = 'alice'")
        .await
        .unwrap();

    let payment = json!({"amount": 12.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}]});
    assert_eq!(
        fire(&client, &table, "1", "pay", Some(&payment), None)
            .await
            .unwrap(),
        "paid"
    );
    assert_eq!(
        fire(&client, &table, "1", "ship", None, None)
            .await
            .unwrap(),
        "shipped"
    );
    assert_eq!(
        fire(&client, &table, "1", "deliver", None, None)
            .await
            .unwrap(),
        "delivered"
    );
    assert_eq!(state_of(&client, &table, 1).await, "delivered");

    assert_eq!(
        steps(&client, &table, "1").await,
        vec![
            step(
                Some("deliver"),
                Some("shipped"),
                "delivered",
                None,
                Some("alice")
            ),
            step(Some("ship"), Some("paid"), "shipped", None, Some("alice")),
            step(
                Some("pay"),
                Some("created"),
                "paid",
                Some(payment),
                Some("alice")
            ),
            step(None, None, "created", None, None),
        ]
    );
    // Entity 2's history is its own.
    assert_eq!(
        steps(&client, &table, "2").await,
        vec![step(None, None, "created", None, None)]
    );

    let rows = history(&client, &table, "1").await.unwrap();
    let me: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    for t in &rows {
        assert_eq!(t.db_user, me);
        // A UUIDv7 whose millisecond is the row's moment.
        assert_eq!(t.id.get_version_num(), 7, "{}", t.id);
        let (secs, nanos) = t.id.get_timestamp().expect("a UUIDv7 has a time").to_unix();
        assert_eq!(t.at, UNIX_EPOCH + Duration::new(secs, nanos), "{}", t.id);
    }
    // Newest first.
    let ids: Vec<_> = rows.iter().map(|t| t.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_moves_once() {
    let client = connect().await;
    let table = fresh_table(&client, "rc_fire_idempotent", &order_machine(), "").await;
    let payment = json!({"amount": 1});
    let first = fire(&client, &table, "1", "pay", Some(&payment), Some("req-1")).await;
    assert_eq!(first.unwrap(), "paid");
    let retry = fire(&client, &table, "1", "pay", Some(&payment), Some("req-1")).await;
    assert_eq!(retry.unwrap(), "paid");
    assert_eq!(
        rows_with_key(&client, "rc_fire_idempotent.items_state_history", "req-1").await,
        1
    );
    assert_eq!(
        steps(&client, &table, "1").await,
        vec![
            step(
                Some("pay"),
                Some("created"),
                "paid",
                Some(payment.clone()),
                None
            ),
            step(None, None, "created", None, None),
        ]
    );

    // After the entity has moved on, the retry still answers with the
    // state the first call moved to, and changes nothing.
    assert_eq!(
        fire(&client, &table, "1", "ship", None, None)
            .await
            .unwrap(),
        "shipped"
    );
    let late_retry = fire(&client, &table, "1", "pay", Some(&payment), Some("req-1")).await;
    assert_eq!(late_retry.unwrap(), "paid");
    assert_eq!(state_of(&client, &table, 1).await, "shipped");
    assert_eq!(history(&client, &table, "1").await.unwrap().len(), 3);
    assert_eq!(
        rows_with_key(&client, "rc_fire_idempotent.items_state_history", "req-1").await,
        1
    );

    // The same key for another entity is another request: refused.
    let reused = fire(&client, &table, "2", "pay", Some(&payment), Some("req-1"))
        .await
        .unwrap_err();
    assert_eq!(reused.kind(), ErrorKind::InvalidParameter);
    assert_eq!(reused.sqlstate(), Some("22023"));
    assert_eq!(
        reused.message(),
        Some(
            "idempotency key \"req-1\" was used for another entity, not for event \"pay\" \
             on key 2 of rc_fire_idempotent.items"
        )
    );
    assert_eq!(state_of(&client, &table, 2).await, "created");
}

#[tokio::test]
async fn available_events_and_can_fire_follow_the_state() {
    let client = connect().await;
    let table = fresh_table(&client, "rc_fire_available", &order_machine(), "").await;
    let event = |event: &str, to: &[&str], reason: Option<&str>| AvailableEvent {
        event: event.to_owned(),
        to_states: to.iter().map(|s| s.to_string()).collect(),
        allowed: reason.is_none(),
        reason: reason.map(str::to_owned),
    };
    assert_eq!(
        available_events(&client, &table, "1").await.unwrap(),
        vec![
            event("cancel", &["cancelled"], None),
            event(
                "deliver",
                &[],
                Some("event \"deliver\" is not allowed from state \"created\"")
            ),
            // Without a payload to check, the payload schema is not asked.
            event("pay", &["paid"], None),
            event(
                "ship",
                &[],
                Some("event \"ship\" is not allowed from state \"created\"")
            ),
        ]
    );
    let amount = json!({"amount": 3});
    assert!(can_fire(&client, &table, "1", "pay", Some(&amount))
        .await
        .unwrap());
    assert!(!can_fire(&client, &table, "1", "pay", Some(&json!({})))
        .await
        .unwrap());
    assert!(!can_fire(&client, &table, "1", "ship", None).await.unwrap());

    fire(&client, &table, "1", "pay", Some(&amount), None)
        .await
        .unwrap();
    assert_eq!(
        available_events(&client, &table, "1").await.unwrap(),
        vec![
            event("cancel", &["cancelled"], None),
            event(
                "deliver",
                &[],
                Some("event \"deliver\" is not allowed from state \"paid\"")
            ),
            event(
                "pay",
                &[],
                Some("event \"pay\" is not allowed from state \"paid\"")
            ),
            event("ship", &["shipped"], None),
        ]
    );
    assert!(can_fire(&client, &table, "1", "ship", None).await.unwrap());
    // Asking changed nothing.
    assert_eq!(state_of(&client, &table, 1).await, "paid");
}

#[tokio::test]
async fn a_transition_rolls_back_with_the_callers_transaction() {
    let mut client = connect().await;
    let table = fresh_table(&client, "rc_fire_transaction", &order_machine(), "").await;
    let tx = client.transaction().await.unwrap();
    let cancelled = fire(&tx, &table, "1", "cancel", None, None).await.unwrap();
    assert_eq!(cancelled, "cancelled");
    assert_eq!(history(&tx, &table, "1").await.unwrap().len(), 2);
    tx.rollback().await.unwrap();

    assert_eq!(state_of(&client, &table, 1).await, "created");
    assert_eq!(
        steps(&client, &table, "1").await,
        vec![step(None, None, "created", None, None)]
    );
}
