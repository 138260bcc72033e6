//! A small typed client for the `fsm` PostgreSQL extension over
//! tokio-postgres: fire an event ([`fire`]), ask what may be fired
//! ([`available_events`], [`can_fire`]), read an entity's history
//! ([`history`]), and read a refusal's kind and PostgreSQL error fields
//! ([`FsmError`]) without parsing message text.
//!
//! Every function takes any [`GenericClient`]: a [`Client`] or a
//! [`tokio_postgres::Transaction`], so a transition can commit or roll back
//! with the caller's other writes.
//!
//! # Tables and keys are sent as text
//!
//! `table` is a table name as PostgreSQL reads it (`orders`,
//! `shop.orders`, `"Odd Name"`), cast to `regclass` on the server. It is
//! bound as `text` and cast with `$1::text::regclass`: a bare
//! `$1::regclass` would make the parameter itself a `regclass`, which
//! tokio-postgres would have to send as an oid, not a name.
//!
//! `key` is the entity's primary key written as text (`"42"`, a UUID's
//! hyphenated form, a text key as it is). `fsm.fire`'s `key` is
//! `anyelement`, and a parameter of a polymorphic type has no type that
//! PostgreSQL can infer when the statement is prepared; binding it as
//! `$2::text` picks the text overloads of `fsm.fire`,
//! `fsm.available_events` and `fsm.can_fire` (and makes `fsm.history`'s
//! `anyelement` a text), and fsm casts the text to the table's key type.
//! One function therefore serves every key type. A key that is not a
//! value of that type is PostgreSQL's own 22P02 ([`ErrorKind::Other`]).

use std::error::Error as StdError;
use std::fmt;
use std::time::SystemTime;

use serde_json::Value;
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Row};
use uuid::Uuid;

/// What kind of refusal an [`FsmError`] is: one per SQLSTATE of API.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 55000: the event does not lead from the entity's current state.
    TransitionNotAllowed,
    /// 23514: the event's guard said no.
    GuardRefused,
    /// P0002: no row of the table has that key.
    KeyNotFound,
    /// 42501: the caller is a member of none of the event's `roles`.
    PermissionDenied,
    /// 22023: the payload fails the event's JSON Schema, or the
    /// idempotency key was already used for another entity or event.
    InvalidParameter,
    /// 40001: `expect` did not match the current state.
    StateChanged,
    /// 42704: unknown machine, event or binding.
    UnknownName,
    /// 22004: a required argument was NULL.
    NullArgument,
    /// 42725: the event is in several machines of the table.
    AmbiguousEvent,
    /// Anything fsm did not raise itself: PostgreSQL's own errors (a table
    /// that does not exist, a missing table privilege, a key that does not
    /// parse, a CHECK constraint), fsm's other errors, and connection errors.
    Other,
}

impl ErrorKind {
    /// The kind of an error raised with `sqlstate` by fsm itself.
    fn of_fsm_sqlstate(sqlstate: &str) -> ErrorKind {
        match sqlstate {
            "55000" => ErrorKind::TransitionNotAllowed,
            "23514" => ErrorKind::GuardRefused,
            "P0002" => ErrorKind::KeyNotFound,
            "42501" => ErrorKind::PermissionDenied,
            "22023" => ErrorKind::InvalidParameter,
            "40001" => ErrorKind::StateChanged,
            "42704" => ErrorKind::UnknownName,
            "22004" => ErrorKind::NullArgument,
            "42725" => ErrorKind::AmbiguousEvent,
            _ => ErrorKind::Other,
        }
    }
}

/// An error from one of this crate's functions: its [`ErrorKind`], and
/// the fields PostgreSQL sent with it (read from tokio-postgres's
/// [`DbError`], never parsed out of the message).
///
/// On each refusal of a transition fsm sets `schema_name`, `table_name`,
/// `column_name` (the state column) and `constraint_name` =
/// `<machine>:<event>`, or `<machine>` alone where no event applies (an
/// unknown event); [`machine`](Self::machine) and [`event`](Self::event)
/// are that constraint name split.
#[derive(Debug)]
pub struct FsmError {
    kind: ErrorKind,
    machine: Option<String>,
    event: Option<String>,
    source: tokio_postgres::Error,
}

impl FsmError {
    /// Decodes `source`. `fired` is the event the failed call named, when
    /// there was one: machine and event names may both contain `:`, and
    /// knowing the event tells where the machine's name ends.
    fn decode(source: tokio_postgres::Error, fired: Option<&str>) -> FsmError {
        // fsm reports its own errors from the routine `fsm`: an error of
        // the same SQLSTATE that PostgreSQL raises itself (a table's CHECK
        // constraint is 23514 too, its constraint_name that CHECK's) is not
        // a refusal by fsm.
        let fsm_db = source.as_db_error().filter(|db| {
            db.routine()
                .is_some_and(|r| r == "fsm" || r.starts_with("fsm::"))
        });
        let kind = fsm_db.map_or(ErrorKind::Other, |db| {
            ErrorKind::of_fsm_sqlstate(db.code().code())
        });
        let (machine, event) = match fsm_db.and_then(DbError::constraint) {
            Some(constraint) => split_constraint(constraint, fired),
            None => (None, None),
        };
        FsmError {
            kind,
            machine,
            event,
            source,
        }
    }

    /// The kind of refusal ([`ErrorKind::Other`] for anything else).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error PostgreSQL sent, with all its fields; `None` for an error
    /// of the connection itself.
    pub fn db(&self) -> Option<&DbError> {
        self.source.as_db_error()
    }

    /// The SQLSTATE, e.g. `"55000"`.
    pub fn sqlstate(&self) -> Option<&str> {
        self.db().map(|db| db.code().code())
    }

    /// The primary message (names the table, key, current state and event).
    pub fn message(&self) -> Option<&str> {
        self.db().map(DbError::message)
    }

    /// DETAIL.
    pub fn detail(&self) -> Option<&str> {
        self.db().and_then(DbError::detail)
    }

    /// HINT (for a refused transition: the events allowed now).
    pub fn hint(&self) -> Option<&str> {
        self.db().and_then(DbError::hint)
    }

    /// The bound table's schema.
    pub fn schema(&self) -> Option<&str> {
        self.db().and_then(DbError::schema)
    }

    /// The bound table's name (without its schema).
    pub fn table(&self) -> Option<&str> {
        self.db().and_then(DbError::table)
    }

    /// The state column.
    pub fn column(&self) -> Option<&str> {
        self.db().and_then(DbError::column)
    }

    /// The machine: `constraint_name` up to `:<event>`; `None` for an error
    /// fsm did not raise (see [`db`](Self::db) for its constraint name).
    pub fn machine(&self) -> Option<&str> {
        self.machine.as_deref()
    }

    /// The refused event: `constraint_name` after `<machine>:`; `None`
    /// where fsm named the machine alone.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }
}

/// Splits `<machine>:<event>`. Given the event that was fired, a
/// constraint name that does not end in `:<that event>` is the machine
/// alone; without it, the first `:` is taken as the separator.
fn split_constraint(constraint: &str, fired: Option<&str>) -> (Option<String>, Option<String>) {
    let (machine, event) = match fired {
        Some(fired) => match constraint
            .strip_suffix(fired)
            .and_then(|rest| rest.strip_suffix(':'))
        {
            Some(machine) => (machine, Some(fired)),
            None => (constraint, None),
        },
        None => match constraint.split_once(':') {
            Some((machine, event)) => (machine, Some(event)),
            None => (constraint, None),
        },
    };
    (Some(machine.to_owned()), event.map(str::to_owned))
}

impl From<tokio_postgres::Error> for FsmError {
    fn from(source: tokio_postgres::Error) -> FsmError {
        FsmError::decode(source, None)
    }
}

impl fmt::Display for FsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.db() {
            Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
            None => self.source.fmt(f),
        }
    }
}

impl StdError for FsmError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Fires `event` on the row of `table` whose key is `key` (see the crate
/// documentation for how both are written) and returns its new state.
///
/// `payload` is checked against the event's schema and stored in the
/// history as given. With `idempotency_key`, a retry of the same request
/// (same entity, same event) returns the state the first call moved to and
/// changes nothing.
///
/// # Errors
///
/// fsm's refusals, by [`ErrorKind`]: [`TransitionNotAllowed`],
/// [`GuardRefused`], [`KeyNotFound`], [`PermissionDenied`] (roles),
/// [`InvalidParameter`] (payload, reused idempotency key), [`UnknownName`]
/// (event); anything else as [`ErrorKind::Other`].
///
/// [`TransitionNotAllowed`]: ErrorKind::TransitionNotAllowed
/// [`GuardRefused`]: ErrorKind::GuardRefused
/// [`KeyNotFound`]: ErrorKind::KeyNotFound
/// [`PermissionDenied`]: ErrorKind::PermissionDenied
/// [`InvalidParameter`]: ErrorKind::InvalidParameter
/// [`UnknownName`]: ErrorKind::UnknownName
pub async fn fire(
    client: &impl GenericClient,
    table: &str,
    key: &str,
    event: &str,
    payload: Option<&Value>,
    idempotency_key: Option<&str>,
) -> Result<String, FsmError> {
    let row = client
        .query_one(
            "SELECT fsm.fire($1::text::regclass, $2::text, $3::text, \
             payload => $4::jsonb, idempotency_key => $5::text)",
            &[&table, &key, &event, &payload, &idempotency_key],
        )
        .await
        .map_err(|e| FsmError::decode(e, Some(event)))?;
    Ok(row.get(0))
}

/// Whether `event` would be allowed now (with `payload`), without firing it.
///
/// # Errors
///
/// As [`fire`] for an unknown table, key or event.
pub async fn can_fire(
    client: &impl GenericClient,
    table: &str,
    key: &str,
    event: &str,
    payload: Option<&Value>,
) -> Result<bool, FsmError> {
    let row = client
        .query_one(
            "SELECT fsm.can_fire($1::text::regclass, $2::text, $3::text, payload => $4::jsonb)",
            &[&table, &key, &event, &payload],
        )
        .await
        .map_err(|e| FsmError::decode(e, Some(event)))?;
    Ok(row.get(0))
}

/// One row of [`available_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailableEvent {
    /// The event's name.
    pub event: String,
    /// Where it would lead from the current state (empty when it does not
    /// leave from there).
    pub to_states: Vec<String>,
    /// Whether the caller may fire it now.
    pub allowed: bool,
    /// Why not, when it is not allowed.
    pub reason: Option<String>,
}

/// Every event of the entity's machine, whether it may be fired now, and
/// why not, in fsm's order (by event name).
///
/// # Errors
///
/// [`ErrorKind::KeyNotFound`] for a key with no row; PostgreSQL's own
/// errors (unknown table) as [`ErrorKind::Other`].
pub async fn available_events(
    client: &impl GenericClient,
    table: &str,
    key: &str,
) -> Result<Vec<AvailableEvent>, FsmError> {
    let rows = client
        .query(
            "SELECT event, to_states, allowed, reason \
             FROM fsm.available_events($1::text::regclass, $2::text)",
            &[&table, &key],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| AvailableEvent {
            event: row.get("event"),
            to_states: row.get("to_states"),
            allowed: row.get("allowed"),
            reason: row.get("reason"),
        })
        .collect())
}

/// One row of an entity's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// A UUIDv7: the moment of the change is the time inside it.
    pub id: Uuid,
    /// That moment (millisecond precision).
    pub at: SystemTime,
    /// `None` on the row written when the entity was inserted.
    pub event: Option<String>,
    /// `None` on the row written when the entity was inserted.
    pub from_state: Option<String>,
    pub to_state: String,
    /// The payload exactly as it was fired (`None` without one).
    pub payload: Option<Value>,
    /// The session's `fsm.actor` at the time, if it was set.
    pub actor: Option<String>,
    /// The database role that made the change.
    pub db_user: String,
}

impl Transition {
    fn from_row(row: &Row) -> Transition {
        Transition {
            id: row.get("id"),
            at: row.get("at"),
            event: row.get("event"),
            from_state: row.get("from_state"),
            to_state: row.get("to_state"),
            payload: row.get("payload"),
            actor: row.get("actor"),
            db_user: row.get("db_user"),
        }
    }
}

/// The entity's history, newest first (the order of `fsm.history`); empty
/// for a key that has none (a key with no row is no error here).
///
/// # Errors
///
/// PostgreSQL's own errors (unknown table, no SELECT on it) as
/// [`ErrorKind::Other`]; fsm's (a table with no machine) by their kind.
pub async fn history(
    client: &impl GenericClient,
    table: &str,
    key: &str,
) -> Result<Vec<Transition>, FsmError> {
    let rows = client
        .query(
            "SELECT id, at, event, from_state, to_state, payload, actor, db_user \
             FROM fsm.history($1::text::regclass, $2::text)",
            &[&table, &key],
        )
        .await?;
    Ok(rows.iter().map(Transition::from_row).collect())
}

/// Connects as `DATABASE_URL` says (a `postgresql://` URL or a
/// `key=value` string), or else from libpq's variables: `PGHOST` (a
/// directory, starting with `/`, is a Unix socket directory; default
/// `localhost`), `PGPORT` (5432), `PGUSER` (`$USER`), `PGDATABASE` (the
/// user) and `PGPASSWORD`. Without TLS. The connection runs on a spawned
/// tokio task, so call this inside a tokio runtime.
///
/// # Errors
///
/// A `DATABASE_URL` or `PGPORT` that does not parse, or a failed connection.
pub async fn connect_from_env() -> Result<Client, Box<dyn StdError + Send + Sync>> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let config = match var("DATABASE_URL") {
        Some(url) => url.parse::<Config>()?,
        None => {
            let mut config = Config::new();
            config.host(var("PGHOST").as_deref().unwrap_or("localhost"));
            if let Some(port) = var("PGPORT") {
                config.port(port.parse()?);
            }
            let user = var("PGUSER")
                .or_else(|| var("USER"))
                .unwrap_or_else(|| "postgres".to_owned());
            config.dbname(var("PGDATABASE").as_deref().unwrap_or(&user));
            config.user(&user);
            if let Some(password) = var("PGPASSWORD") {
                config.password(password);
            }
            config
        }
    };
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("fsm-client: connection error: {e}");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::split_constraint;

    #[test]
    fn constraint_names_split_into_machine_and_event() {
        // constraint_name, event fired => machine, event
        let cases = [
            ("order:pay", Some("pay"), "order", Some("pay")),
            ("order", Some("teleport"), "order", None),
            ("shop:order:pay", Some("pay"), "shop:order", Some("pay")),
            ("order:v2:go", Some("v2:go"), "order", Some("v2:go")),
            ("a:b", Some("nope"), "a:b", None),
            ("order:pay", None, "order", Some("pay")),
            ("order", None, "order", None),
        ];
        for (constraint, fired, machine, event) in cases {
            assert_eq!(
                split_constraint(constraint, fired),
                (Some(machine.to_owned()), event.map(str::to_owned)),
                "{constraint} fired as {fired:?}"
            );
        }
    }
}
