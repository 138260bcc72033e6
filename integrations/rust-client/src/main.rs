//! The runnable example: an order through its lifecycle with fsm, from
//! Rust. Sets up (once) the machine `rust_example_order` and the table
//! `rust_example_orders` bound to it, inserts a new order, pays it (with a
//! payload and an idempotency key, then retries the payment), ships it,
//! lists the events available, tries to cancel the shipped order and prints
//! that refusal's error fields, and prints the order's history.
//!
//! Connects as `DATABASE_URL` or the PG* variables say
//! ([`fsm_client::connect_from_env`]); needs `CREATE EXTENSION fsm` done in
//! that database. Exits non-zero if anything does not go as described.

use std::error::Error;
use std::time::UNIX_EPOCH;

use fsm_client::{available_events, connect_from_env, fire, history, ErrorKind};
use serde_json::json;

const MACHINE: &str = "rust_example_order";
const TABLE: &str = "rust_example_orders";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let client = connect_from_env().await?;

    // Set up once; running the example again reuses both.
    let definition = json!({
        "states": {
            "created": {"initial": true},
            "paid": {},
            "shipped": {},
            "delivered": {"final": true},
            "cancelled": {"final": true}
        },
        "events": {
            "pay": {"from": "created", "to": "paid",
                    "payload": {"type": "object", "required": ["amount"]}},
            "ship": {"from": "paid", "to": "shipped"},
            "deliver": {"from": "shipped", "to": "delivered"},
            "cancel": {"from": ["created", "paid"], "to": "cancelled"}
        }
    });
    client
        .execute(
            "SELECT fsm.create_machine($1, $2) \
             WHERE NOT EXISTS (SELECT FROM fsm.machines WHERE name = $1)",
            &[&MACHINE, &definition],
        )
        .await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS rust_example_orders (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               status text)",
        )
        .await?;
    client
        .execute(
            "SELECT fsm.attach($1::text::regclass, 'status', $2) \
             WHERE NOT EXISTS (SELECT FROM fsm.bindings WHERE tbl = $1::text::regclass)",
            &[&TABLE, &MACHINE],
        )
        .await?;

    // Recorded as `actor` on each history row this session writes.
    client
        .execute(
            "SELECT set_config('fsm.actor', $1, false)",
            &[&"rust-example"],
        )
        .await?;

    // A new order starts in the initial state.
    let id: i64 = client
        .query_one(
            "INSERT INTO rust_example_orders DEFAULT VALUES RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let key = id.to_string();
    println!("order {id} created");

    let payment = json!({"amount": 42.5, "currency": "EUR"});
    let request = format!("payment-{id}");
    let state = fire(&client, TABLE, &key, "pay", Some(&payment), Some(&request)).await?;
    println!("pay      -> {state}");
    // A retried request (same idempotency key) does not move twice.
    let state = fire(&client, TABLE, &key, "pay", Some(&payment), Some(&request)).await?;
    println!("pay again (same idempotency key) -> {state}, no second transition");
    let state = fire(&client, TABLE, &key, "ship", None, None).await?;
    println!("ship     -> {state}");

    println!("events now:");
    for available in available_events(&client, TABLE, &key).await? {
        match available.reason {
            None => println!("  {:8} -> {:?}", available.event, available.to_states),
            Some(reason) => println!("  {:8} refused: {reason}", available.event),
        }
    }

    // A shipped order cannot be cancelled: fsm refuses, and says where.
    match fire(&client, TABLE, &key, "cancel", None, None).await {
        Ok(state) => return Err(format!("cancel was not refused: {state}").into()),
        Err(e) if e.kind() == ErrorKind::TransitionNotAllowed => {
            println!("cancel refused: {:?}", e.kind());
            println!("  sqlstate {}", e.sqlstate().unwrap_or_default());
            println!("  message  {}", e.message().unwrap_or_default());
            println!("  hint     {}", e.hint().unwrap_or_default());
            println!(
                "  schema {}, table {}, column {}, machine {}, event {}",
                e.schema().unwrap_or_default(),
                e.table().unwrap_or_default(),
                e.column().unwrap_or_default(),
                e.machine().unwrap_or_default(),
                e.event().unwrap_or_default(),
            );
        }
        Err(e) => return Err(e.into()),
    }

    println!("history of order {id}, newest first:");
    for t in history(&client, TABLE, &key).await? {
        let at = t.at.duration_since(UNIX_EPOCH)?;
        println!(
            "  {} at {}.{:03} (Unix time): {} {} -> {} payload {} actor {}",
            t.id,
            at.as_secs(),
            at.subsec_millis(),
            t.event.as_deref().unwrap_or("(insert)"),
            t.from_state.as_deref().unwrap_or("-"),
            t.to_state,
            t.payload.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            t.actor.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
