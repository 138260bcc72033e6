//! Appending history rows: one per transition, in the caller's transaction,
//! through a plan prepared once per binding and backend.
//!
//! The insert runs with the history table owner's rights, so callers need no grant on the history table and no grant
//! is ever widened.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::binding::{Binding, NotifyTarget};
use crate::history_insert;
use crate::json::Jsonb;
use crate::key::{Key, TypeStorage};
use crate::machine::{EventId, Machine, StateId};
use crate::settings;
use crate::spi_plan::{connected, KeptPlan};
use crate::sql::as_history_owner;
use crate::uuid7;

/// One transition to record. `event` and `from` are `None` for the row
/// that records an INSERT.
pub struct Entry<'a> {
    pub key: Key,
    pub event: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: &'a str,
    /// The caller's own jsonb, stored as given.
    pub payload: Option<Jsonb>,
    /// `fire`'s idempotency key, a text datum.
    pub idempotency_key: Option<pg_sys::Datum>,
}

/// One written change whose history row is not appended yet (held by
/// `pending` until its statement ends). `event` and `from` are `None` for
/// an INSERT.
pub struct Held {
    pub id: [u8; 16],
    /// A copy in `pending`'s memory context for by-reference key types.
    pub key: pg_sys::Datum,
    pub event: Option<EventId>,
    pub from: Option<StateId>,
    pub to: StateId,
}

/// Who made a move: the role it ran as and `fsm.actor` then.
pub struct Who {
    pub user: pg_sys::Oid,
    pub actor: Option<std::ffi::CString>,
}

impl Who {
    pub fn now() -> Who {
        Who {
            // SAFETY: reads the current user id.
            user: unsafe { pg_sys::GetUserId() },
            actor: settings::value(&settings::ACTOR).map(std::ffi::CStr::to_owned),
        }
    }

    /// Whether the role and `fsm.actor` now are these, without allocating.
    pub fn is_now(&self) -> bool {
        // SAFETY: reads the current user id.
        self.user == unsafe { pg_sys::GetUserId() }
            && self.actor.as_deref() == settings::value(&settings::ACTOR)
    }

    fn actor_datum(&self) -> Option<pg_sys::Datum> {
        self.actor.as_ref().map(|a| text_datum(a.to_bytes()))
    }

    fn user_datum(&self) -> pg_sys::Datum {
        user_name_datum(self.user)
    }
}

/// Appends the row and, with `notify`, queues the NOTIFY; returns its id.
/// The move is made now, by the current role.
pub fn append(b: &Binding, e: &Entry) -> pgrx::Uuid {
    let id = uuid7::next();
    append_with_id(b, e, id, None);
    id
}

/// `who`: who made the move, `None` for the current role and actor.
fn append_with_id(b: &Binding, e: &Entry, id: pgrx::Uuid, who: Option<&Who>) {
    let values = || -> history_insert::Values {
        [
            id.into_datum(),
            Some(e.key.datum()),
            e.event.into_datum(),
            e.from.into_datum(),
            e.to.into_datum(),
            e.payload.map(Jsonb::datum),
            who.map_or_else(actor_datum, Who::actor_datum),
            Some(who.map_or_else(current_user_datum, Who::user_datum)),
            b.machine_version.into_datum(),
            e.idempotency_key,
        ]
    };
    if !history_insert::insert(b, values) {
        insert_through_spi(b, values);
    }
    if let Some(target) = &b.notify {
        connected(|| notify(b, target, e, &id));
    }
}

/// The one-row INSERT, for a history table `history_insert` cannot write
/// (one its owner partitioned, extended or guarded): the executor applies
/// whatever the table has. The values are made as the caller, the row is
/// written as the history table's owner.
fn insert_through_spi(b: &Binding, values: impl FnOnce() -> history_insert::Values) {
    connected(|| {
        let plan = b.insert_history.get_or_init(|| {
            KeptPlan::prepare(
                &format!(
                    "INSERT INTO {} (id, entity_key, event, from_state, to_state, payload, actor, db_user, \
                                     machine_version, idempotency_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    b.history_table
                ),
                &[
                    pg_sys::UUIDOID,
                    b.key.oid(),
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::JSONBOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::INT4OID,
                    pg_sys::TEXTOID,
                ],
            )
        });
        let args = values();
        // The history table's own code (triggers, rules, policies, CHECK
        // constraints) runs as its owner, with search_path pinned.
        as_history_owner(b, || plan.execute(&args, false));
    });
}

/// Appends the history rows `pending` held for one binding, with one
/// INSERT from arrays (a single row goes the cheaper one-row way).
pub fn append_rows(b: &Binding, who: &Who, rows: &[Held]) {
    let machine = &b.machine;
    match rows {
        [] => return,
        [one] => {
            let entry = Entry {
                // SAFETY: held keys are copies of key-type datums.
                key: unsafe { Key::of_key_type(one.key) },
                event: one.event.map(|e| machine.event(e).name.as_str()),
                from: one.from.map(|s| machine.state(s).name.as_str()),
                to: &machine.state(one.to).name,
                payload: None,
                idempotency_key: None,
            };
            return append_with_id(b, &entry, pgrx::Uuid::from_bytes(one.id), Some(who));
        }
        _ => {}
    }
    connected(|| {
        let plan = b.insert_history_rows.get_or_init(|| {
            KeptPlan::prepare(
                &format!(
                    "INSERT INTO {} (id, entity_key, event, from_state, to_state, actor, db_user, machine_version) \
                     SELECT u.id, u.k, u.e, u.f, u.t, $6, $7, $8 \
                       FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), \
                                       pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(id, k, e, f, t)",
                    b.history_table
                ),
                &[
                    pg_sys::UUIDARRAYOID,
                    b.key.storage.array_type,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::INT4OID,
                ],
            )
        });
        // One text datum per name used, not per row nor per name declared.
        let mut names = NameDatums::default();
        let ids: Vec<pg_sys::Datum> = rows
            .iter()
            .map(|r| pg_sys::Datum::from(r.id.as_ptr()))
            .collect();
        let keys: Vec<pg_sys::Datum> = rows.iter().map(|r| r.key).collect();
        let events: Vec<Option<pg_sys::Datum>> = rows
            .iter()
            .map(|r| r.event.map(|e| names.event(machine, e)))
            .collect();
        let froms: Vec<Option<pg_sys::Datum>> = rows
            .iter()
            .map(|r| r.from.map(|s| names.state(machine, s)))
            .collect();
        let tos: Vec<Option<pg_sys::Datum>> = rows
            .iter()
            .map(|r| Some(names.state(machine, r.to)))
            .collect();
        let ids: Vec<Option<pg_sys::Datum>> = ids.into_iter().map(Some).collect();
        let keys: Vec<Option<pg_sys::Datum>> = keys.into_iter().map(Some).collect();
        let args = [
            Some(array(&ids, UUID)),
            Some(array(&keys, b.key.storage)),
            Some(array(&events, TEXT)),
            Some(array(&froms, TEXT)),
            Some(array(&tos, TEXT)),
            who.actor_datum(),
            Some(who.user_datum()),
            b.machine_version.into_datum(),
        ];
        // As for one row: the history's code runs as its owner, with
        // search_path pinned.
        as_history_owner(b, || plan.execute(&args, false));
    });
}

/// How `uuid` and `text` are stored (pg_type), for arrays of them.
const UUID: TypeStorage = TypeStorage {
    type_oid: pg_sys::UUIDOID,
    len: 16,
    by_value: false,
    align: b'c' as std::ffi::c_char,
    array_type: pg_sys::UUIDARRAYOID,
};
const TEXT: TypeStorage = TypeStorage {
    type_oid: pg_sys::TEXTOID,
    len: -1,
    by_value: false,
    align: b'i' as std::ffi::c_char,
    array_type: pg_sys::TEXTARRAYOID,
};

/// A one-dimensional array of `elements` (`None` for NULL), pallocated in
/// the SPI context.
fn array(elements: &[Option<pg_sys::Datum>], element: TypeStorage) -> pg_sys::Datum {
    let mut values: Vec<pg_sys::Datum> = elements
        .iter()
        .map(|e| e.unwrap_or(pg_sys::Datum::from(0)))
        .collect();
    let mut nulls: Vec<bool> = elements.iter().map(Option::is_none).collect();
    let mut dims = [elements.len() as i32];
    let mut lower_bounds = [1];
    // SAFETY: every non-NULL element is a datum of the element type;
    // values, nulls, dims and lower bounds describe one dimension of
    // `elements.len()` items; construct_md_array copies them.
    pg_sys::Datum::from(unsafe {
        pg_sys::construct_md_array(
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
            1,
            dims.as_mut_ptr(),
            lower_bounds.as_mut_ptr(),
            element.type_oid,
            element.len as i32,
            element.by_value,
            element.align,
        )
    })
}

/// Text datums of state and event names, made on first use.
#[derive(Default)]
struct NameDatums {
    states: std::collections::HashMap<StateId, pg_sys::Datum>,
    events: std::collections::HashMap<EventId, pg_sys::Datum>,
}

impl NameDatums {
    fn state(&mut self, machine: &Machine, id: StateId) -> pg_sys::Datum {
        *self
            .states
            .entry(id)
            .or_insert_with(|| text_datum(machine.state(id).name.as_bytes()))
    }

    fn event(&mut self, machine: &Machine, id: EventId) -> pg_sys::Datum {
        *self
            .events
            .entry(id)
            .or_insert_with(|| text_datum(machine.event(id).name.as_bytes()))
    }
}

/// A `text[]` of `names`, pallocated in the current memory context.
pub fn text_array(names: &[&str]) -> pg_sys::Datum {
    let elements: Vec<Option<pg_sys::Datum>> = names
        .iter()
        .map(|name| Some(text_datum(name.as_bytes())))
        .collect();
    array(&elements, TEXT)
}

/// Bytes as a text datum, pallocated in the SPI context.
fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: copies len bytes into a new text value.
    pg_sys::Datum::from(unsafe {
        pg_sys::cstring_to_text_with_len(
            bytes.as_ptr() as *const std::ffi::c_char,
            bytes.len() as i32,
        )
    })
}

/// `fsm.actor`, when set, as a text datum.
fn actor_datum() -> Option<pg_sys::Datum> {
    settings::value(&settings::ACTOR).map(|actor| text_datum(actor.to_bytes()))
}

/// `current_user` as a text datum, without going through a Rust string.
fn current_user_datum() -> pg_sys::Datum {
    // SAFETY: reads the current user id.
    user_name_datum(unsafe { pg_sys::GetUserId() })
}

/// A role's name as a text datum; its oid if it was dropped since.
fn user_name_datum(user: pg_sys::Oid) -> pg_sys::Datum {
    // SAFETY: GetUserNameFromId with noerr returns NULL or a NUL-terminated
    // palloc'd string.
    let name = unsafe { pg_sys::GetUserNameFromId(user, true) };
    if name.is_null() {
        return text_datum(user.to_u32().to_string().as_bytes());
    }
    // SAFETY: as above, not NULL.
    text_datum(unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes())
}

fn notify(b: &Binding, target: &NotifyTarget, e: &Entry, id: &pgrx::Uuid) {
    let message = serde_json::json!({
        "table": target.table,
        "key": b.key.text(e.key.datum()),
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
        &[
            target.channel.as_str().into_datum(),
            message.as_str().into_datum(),
        ],
        false,
    );
}
