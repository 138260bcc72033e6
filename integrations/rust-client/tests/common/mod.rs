//! What the integration tests share: a connection, and a fresh machine
//! bound to a fresh table for each test. Each test names its own schema
//! (and machine, of the same name), so the tests run in parallel and can
//! run again against the same database.

use fsm_client::connect_from_env;
use serde_json::{json, Value};
use tokio_postgres::Client;

pub async fn connect() -> Client {
    connect_from_env()
        .await
        .expect("connect to PostgreSQL (DATABASE_URL or PGHOST, PGPORT, PGUSER, PGDATABASE)")
}

/// The orders machine most tests use.
pub fn order_machine() -> Value {
    json!({
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
    })
}

/// Drops what an earlier run of this test left, then creates the schema
/// `name` with the table `name.items (id bigint PRIMARY KEY, state text)`,
/// runs `before_machine` (guard functions need the table's row type),
/// creates the machine `name` from `definition`, attaches it to
/// `items.state` and inserts the rows with keys 1 and 2. Returns the
/// table's name, `name.items`.
pub async fn fresh_table(
    client: &Client,
    name: &str,
    definition: &Value,
    before_machine: &str,
) -> String {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE;
             CREATE SCHEMA {name};
             CREATE TABLE {name}.items (id bigint PRIMARY KEY, state text);
             {before_machine}"
        ))
        .await
        .expect("create the schema and table");
    client
        .execute(
            "SELECT fsm.drop_machine(name) FROM fsm.machines WHERE name = $1",
            &[&name],
        )
        .await
        .expect("drop the machine an earlier run left");
    client
        .execute("SELECT fsm.create_machine($1, $2)", &[&name, definition])
        .await
        .expect("create the machine");
    let table = format!("{name}.items");
    client
        .execute(
            "SELECT fsm.attach($1::text::regclass, 'state', $2)",
            &[&table, &name],
        )
        .await
        .expect("attach the machine");
    client
        .batch_execute(&format!("INSERT INTO {name}.items (id) VALUES (1), (2)"))
        .await
        .expect("insert the entities");
    table
}

/// The entity's current state, read from the table.
pub async fn state_of(client: &Client, table: &str, id: i64) -> String {
    client
        .query_one(&format!("SELECT state FROM {table} WHERE id = $1"), &[&id])
        .await
        .expect("read the state")
        .get(0)
}
