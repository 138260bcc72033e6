//! Appending history rows: one per transition, in the caller's transaction,
//! through a plan prepared once per binding and backend.
//!
//! The insert runs with the table owner's rights (who owns the history
//! table too), so callers need no grant on the history table and no grant
//! is ever widened.

use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};

use crate::catalog::Binding;
use crate::settings;
use crate::spi_plan::{connected, KeptPlan};
use crate::uuid7;

/// One transition to record. `event` and `from` are `None` for the row
/// that records an INSERT.
pub struct Entry<'a> {
    pub key: pg_sys::Datum,
    pub event: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub payload: Option<&'a serde_json::Value>,
}

/// Appends the row and, with `notify`, queues the NOTIFY; returns its id.
pub fn append(b: &Binding, e: &Entry) -> pgrx::Uuid {
    let id = uuid7::next();
    connected(|| {
        let plan = b.insert_history.get_or_init(|| {
            KeptPlan::prepare(
                &format!(
                    "INSERT INTO {} (id, entity_key, event, from_state, to_state, payload, actor, db_user) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    b.history_table
                ),
                &[
                    pg_sys::UUIDOID,
                    b.key_type,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::JSONBOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                ],
            )
        });
        let args = [
            id.into_datum(),
            Some(e.key),
            e.event.into_datum(),
            e.from.into_datum(),
            e.to.into_datum(),
            e.payload.map(|p| JsonB(p.clone())).into_datum(),
            settings::value(&settings::ACTOR).map(text_datum),
            Some(current_user_datum()),
        ];
        as_user(b.owner, || plan.execute(&args, false));
        if let Some(channel) = &b.notify {
            notify(b, channel, e, &id);
        }
    });
    id
}

/// A C string as a text datum, pallocated in the SPI context.
fn text_datum(s: &std::ffi::CStr) -> pg_sys::Datum {
    // SAFETY: a NUL-terminated string, copied by cstring_to_text.
    pg_sys::Datum::from(unsafe { pg_sys::cstring_to_text(s.as_ptr()) })
}

/// `current_user` as a text datum, without going through a Rust string.
fn current_user_datum() -> pg_sys::Datum {
    // SAFETY: the current user exists; its name is a NUL-terminated palloc'd string.
    text_datum(unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false))
    })
}

/// Runs `f` as `user`, restoring the caller's identity afterwards. On an
/// ERROR, PostgreSQL's (sub)transaction abort restores it.
fn as_user<R>(user: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    // SAFETY: plain reads and writes of the backend's current identity.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            user,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let result = f();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

fn notify(b: &Binding, channel: &str, e: &Entry, id: &pgrx::Uuid) {
    let message = serde_json::json!({
        "table": b.table,
        "key": b.key_text(e.key),
        "event": e.event,
        "from": e.from,
        "to": e.to,
        "id": id.to_string(),
    })
    .to_string();
    let plan = b.notify_plan.get_or_init(|| {
        KeptPlan::prepare(
            "SELECT pg_catalog.pg_notify($1, $2)",
            &[pg_sys::TEXTOID, pg_sys::TEXTOID],
        )
    });
    plan.execute(
        &[channel.into_datum(), message.as_str().into_datum()],
        false,
    );
}
