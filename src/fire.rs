//! `fsm.fire`: perform a named event on one entity.
//!
//! `fire` converts the key to the table's key type exactly, locks the row,
//! checks the event (expected state, source state, target, roles, payload,
//! guard), then UPDATEs the row as the caller, so row level security and
//! the table's other triggers apply. The trigger is told which row and
//! event it is seeing (see `transition::FireContext`) and records it with
//! the payload instead of checking it a second time.
//!
//! A raw V1 function (declared in `sql/functions.sql`): every argument is read
//! through `args::Args`, so a NULL or a wrong type is a clean error.

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::args::Args;
use crate::binding::{self, Binding, FireStatement, Statement};
use crate::cache;
use crate::error::{clip, clip_to, required, ErrorKind, FsmError, FsmResult};
use crate::history::{self, Entry};
use crate::json::Jsonb;
use crate::key::Key;
use crate::machine::{EventId, StateId};
use crate::savepoint;
use crate::spi_plan::{connected, KeptPlan, Row};
use crate::sql::ident;
use crate::transition::{self, check_requirements, run_action, FireContext, FireScope, Subject};
use pgrx::pg_sys::panic::CaughtError;

v1_function!(fsm_fire, pg_finfo_fsm_fire, fire);

/// What the caller asked for.
struct Request<'a> {
    event: &'a str,
    payload: Option<Jsonb>,
    expect: Option<&'a str>,
    to: Option<&'a str>,
    /// As text and as the caller's text datum (recorded as given).
    idempotency_key: Option<(&'a str, pg_sys::Datum)>,
}

/// `fsm.fire(tbl, key, event, payload, expect, "to", col, idempotency_key)`:
/// returns the new state (for a retried idempotency key, the state that
/// request reached, changing nothing).
///
/// # Errors
/// 22004 a required argument is NULL; 42P01 no such table; P0002 no such
/// key; 22P02 a key that is not exactly of the table's key type; 42704
/// unknown event or no machine attached; 42725 the event is in several
/// machines of the table and `col` is not given; 40001 `expect` differs
/// from the current state; 55000 event not allowed from the current state;
/// 22023 payload fails its schema or `to` is not a target; 42501 role
/// missing; 23514 guard said no; 22023 an idempotency key used for another
/// entity or event, or not 1 to 255 bytes.
unsafe fn fire(fcinfo: pg_sys::FunctionCallInfo) -> FsmResult<pg_sys::Datum> {
    // SAFETY: called by the function manager with a valid fcinfo.
    let args = unsafe { Args::new(fcinfo) };
    let tbl = args.relation(0, "tbl")?;
    let key = required(args.datum(1), "key")?;
    let key_type = args.type_of(1)?;
    let event = required(args.text(2), "event")?;
    let (expect, to) = (args.text(4), args.text(5));
    let idempotency_key = args.text(7);
    if let Some(k) = &idempotency_key {
        check_idempotency_key(k)?;
    }
    let request = Request {
        event: &event,
        payload: args.jsonb(3),
        expect: expect.as_deref(),
        to: to.as_deref(),
        idempotency_key: idempotency_key.as_deref().zip(args.datum(7)),
    };
    let bindings = cache::attached_bindings(tbl)?;
    let b = choose_binding(&bindings, &event, args.name(6).as_deref())?;
    let new_state = connected(|| {
        // SAFETY: the converted datum is of the key type.
        let key = unsafe { Key::of_key_type(b.key.convert(key, key_type, false)?) };
        fire_on(b, key, &request)
    })?;
    Ok(new_state.into_datum().expect("text datum"))
}

/// The binding an event is fired on: the one named by `col`, or the only
/// one that knows the event.
pub fn choose_binding<'a>(
    bindings: &'a [Rc<Binding>],
    event: &str,
    col: Option<&str>,
) -> FsmResult<&'a Binding> {
    if let Some(col) = col {
        return Ok(&bindings[binding::position_of(bindings, col)?]);
    }
    let knows = |b: &&Rc<Binding>| b.machine.event_id(event).is_some();
    if let [one] = bindings {
        return Ok(one);
    }
    let knowing: Vec<&Rc<Binding>> = bindings.iter().filter(knows).collect();
    match knowing.as_slice() {
        [one] => Ok(one),
        [] => Ok(&bindings[0]),
        several => Err(binding::ambiguous(
            format!(
                "event \"{}\" exists in the machines of several columns of {}",
                clip(event),
                bindings[0].table
            ),
            several.iter().map(|b| b.column.as_str()),
        )),
    }
}

/// Fires `event` on the entity of `key` (of the key type) as `fire` does,
/// refusing (40001) unless it is in state `expect`: what a timer does.
/// Must be called inside SPI.
pub fn fire_expecting(b: &Binding, key: Key, event: &str, expect: &str) -> FsmResult<String> {
    let request = Request {
        event,
        payload: None,
        expect: Some(expect),
        to: None,
        idempotency_key: None,
    };
    fire_on(b, key, &request)
}

fn fire_on(b: &Binding, key: Key, r: &Request) -> FsmResult<String> {
    let machine = &b.machine;
    let event_id = machine.event_id(r.event);
    if r.idempotency_key.is_some() {
        // The row is read first, below: reading it as the caller is the
        // check of their rights and row-level security, before history
        // says anything about the key.
    } else if let Some(moved) = event_id
        .map(|e| try_one_statement(b, key, e, r))
        .transpose()?
        .flatten()
    {
        return Ok(moved);
    }
    let needs_row = event_id.is_some_and(|e| {
        machine
            .branches(e)
            .any(|branch| b.runtime(branch).guard.is_some() || b.runtime(branch).action.is_some())
    });
    let lock = if needs_row {
        FireStatement::LockRow
    } else {
        FireStatement::LockState
    };
    let Some(row) = plan(b, lock).first_row(&[Some(key.datum())]) else {
        return Err(FsmError::new(
            ErrorKind::KeyNotFound,
            format!(
                "no row of {} has key {} (event \"{}\")",
                b.table,
                b.key_text(key.datum()),
                clip(r.event)
            ),
        )
        .located(b.fields(event_id)));
    };
    let state = row.text(1)?.unwrap_or_default();
    // SAFETY: column 2 is checked to be of the key type.
    let table_key = unsafe {
        Key::of_key_type(
            row.typed(2, b.key.oid())?
                .expect("a primary key is never NULL"),
        )
    };
    if let Some((idempotency_key, _)) = r.idempotency_key {
        if let Some(done) = already_done(b, table_key, r.event, idempotency_key)? {
            return Ok(done);
        }
    }
    let subject = Subject {
        binding: b,
        key: table_key,
        state: &state,
    };
    if let Some(expected) = r.expect {
        if expected != state {
            return Err(FsmError::new(
                ErrorKind::ExpectMismatch,
                format!(
                    "expected state \"{}\" but found \"{}\" for event \"{}\" {}",
                    clip(expected),
                    clip(&state),
                    clip(r.event),
                    subject.at()
                ),
            )
            .hint("Another transaction moved it: read the state again and retry.")
            .located(b.fields(event_id)));
        }
    }
    let Some(event_id) = event_id else {
        return Err(subject.refuse(
            ErrorKind::UndefinedObject,
            format!(
                "event \"{}\" is not an event of machine \"{}\"",
                clip(r.event),
                b.machine_name
            ),
        ));
    };
    let Some(from) = machine.state_id(&state) else {
        return Err(subject.refuse(
            ErrorKind::NotAllowed,
            format!(
                "\"{}\" is not a state of machine \"{}\"",
                clip(&state),
                b.machine_name
            ),
        ));
    };
    let whole_row = || whole_row(b, &row);
    let (event_id, target) = choose_branch(&subject, from, event_id, r, whole_row)?;

    let target_name = machine.state(target).name.clone();
    let on_error = machine.event(event_id).on_error;
    let change = Change {
        subject: &subject,
        event: event_id,
        from,
        payload: r.payload,
        idempotency_key: r.idempotency_key.map(|(_, d)| d),
    };
    let Some(fallback) = on_error else {
        change.make(target, false, whole_row)?;
        return Ok(target_name);
    };
    let mark = transition::actions_mark();
    match savepoint::attempt(|| change.make(target, false, whole_row)) {
        Ok(made) => made.map(|()| target_name),
        Err(caught) if transition::action_failed(mark, b, event_id) => {
            let (sqlstate, message) = match &caught {
                CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => {
                    (crate::boundary::sqlstate_of(e), e.message().to_owned())
                }
                CaughtError::RustPanic { .. } => caught.rethrow(),
            };
            let fallback_name = machine.state(fallback).name.clone();
            let instead = if fallback == target {
                String::new()
            } else {
                format!(" instead of \"{target_name}\"")
            };
            pgrx::warning!(
                "the action of event \"{}\" failed ({sqlstate}: {}): key {} of {} moved to \"{}\" (on_error){instead}",
                machine.event(event_id).name,
                clip_to(&message, 200),
                b.key_text(table_key.datum()),
                b.table,
                fallback_name
            );
            let recorded = error_payload(&sqlstate, &message, r.payload);
            Change {
                payload: Some(recorded),
                ..change
            }
            .make(fallback, true, whole_row)?;
            Ok(fallback_name)
        }
        Err(caught) => caught.rethrow(),
    }
}

/// One move of a locked row that `fire` checked: `make` performs it.
#[derive(Clone, Copy)]
struct Change<'a> {
    subject: &'a Subject<'a>,
    event: EventId,
    from: StateId,
    payload: Option<Jsonb>,
    idempotency_key: Option<pg_sys::Datum>,
}

impl Change<'_> {
    /// Moves the row to `to`, recording the change, and runs the event's
    /// action (unless `recovering`: the move to `on_error` after it
    /// failed).
    fn make(
        self,
        to: StateId,
        recovering: bool,
        row: impl FnOnce() -> pg_sys::Datum,
    ) -> FsmResult<()> {
        let b = self.subject.binding;
        let machine = &b.machine;
        let to_name = machine.state(to).name.as_str();
        if to == self.from {
            // A self-transition changes no column, so no trigger sees it:
            // record it here.
            history::append(
                b,
                &Entry {
                    key: self.subject.key,
                    event: Some(&machine.event(self.event).name),
                    from: Some(self.subject.state),
                    to: to_name,
                    payload: self.payload,
                    idempotency_key: self.idempotency_key,
                },
            );
            if !recovering {
                run_action(b, self.event, self.payload, row)?;
            }
            return Ok(());
        }
        let scope = FireScope::enter(FireContext {
            relid: b.bound_relid,
            attnum: b.bound_attnum,
            machine_version: b.machine_version,
            key: self.subject.key,
            from: Some(self.from),
            to,
            event: self.event,
            payload: self.payload,
            idempotency_key: self.idempotency_key,
            recovering,
        });
        let updated = plan(b, FireStatement::Update).execute(
            &[Some(self.subject.key.datum()), to_name.into_datum()],
            false,
        );
        if updated == 0 {
            return Err(self.subject.refuse(
                ErrorKind::InsufficientPrivilege,
                format!("event \"{}\" could not update the row: a row level security policy or a trigger skipped it", machine.event(self.event).name),
            ).located(b.fields(Some(self.event))));
        }
        if !scope.used() {
            return Err(redirected(b, self.subject.key, self.event, to_name));
        }
        Ok(())
    }
}

/// The payload of the history row of a move to `on_error`: the action's
/// error and the caller's payload, kept exactly as given:
/// `{"error": {"sqlstate": …, "message": …}, "payload": …}`.
fn error_payload(sqlstate: &str, message: &str, given: Option<Jsonb>) -> Jsonb {
    let plan = KeptPlan::prepare(
        "SELECT pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(\
           'sqlstate', $1, 'message', $2), 'payload', $3)",
        &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::JSONBOID],
    );
    let datum = plan
        .first_datum(&[
            sqlstate.into_datum(),
            message.into_datum(),
            given.map(Jsonb::datum),
        ])
        .expect("jsonb_build_object returns an object");
    // SAFETY: a non-NULL jsonb datum, valid until fire's SPI connection ends.
    unsafe { Jsonb::from_datum(datum) }
}

/// 22023 unless an idempotency key is 1 to 255 bytes: it is indexed, and
/// an index entry has a size limit.
fn check_idempotency_key(key: &str) -> FsmResult<()> {
    if key.is_empty() || key.len() > 255 {
        return Err(FsmError::new(
            ErrorKind::InvalidParameter,
            format!(
                "an idempotency key must be 1 to 255 bytes, not {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// The state the entity reached when `idempotency_key` was first used, if
/// it was: the request is a retry and changes nothing. 22023 when the key
/// was used for another entity or another event. Every use of one key on
/// one binding is serialised by a transaction lock on it, so concurrent
/// duplicates wait for the first and then find what it recorded.
fn already_done(
    b: &Binding,
    key: Key,
    event: &str,
    idempotency_key: &str,
) -> FsmResult<Option<String>> {
    let lock = b.plans.get(Statement::IdempotencyLock, || {
        (
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, $2))".into(),
            vec![pg_sys::TEXTOID, pg_sys::INT8OID],
        )
    });
    let seed = i64::from(u32::from(b.history_relid));
    lock.execute(&[idempotency_key.into_datum(), seed.into_datum()], false);
    let lookup = b.plans.get(Statement::IdempotencyLookup, || {
        (
            format!(
                "SELECT h.entity_key, h.event, h.to_state FROM {} h \
                  WHERE h.idempotency_key OPERATOR(pg_catalog.=) $1",
                b.history_table
            ),
            vec![pg_sys::TEXTOID],
        )
    });
    // History is read as its owner: callers have no grant on it. It is
    // read under a snapshot taken after the lock: in REPEATABLE READ the
    // transaction's snapshot may predate the request that used the key
    // (which committed while this one waited for the lock).
    let found = crate::sql::as_history_owner(b, || {
        lookup.read_latest(&[idempotency_key.into_datum()]).next()
    });
    let Some(row) = found else {
        return Ok(None);
    };
    // SAFETY: column 1 is checked to be of the key type. Its owner may
    // have dropped NOT NULL: a NULL key is another entity's.
    let recorded_key = row
        .typed(1, b.key.oid())?
        .map(|k| unsafe { Key::of_key_type(k) });
    let recorded_event = row.text(2)?;
    let same_entity = recorded_key.is_some_and(|recorded| b.key.equal(recorded, key));
    if same_entity && recorded_event.as_deref() == Some(event) {
        return Ok(Some(row.text(3)?.unwrap_or_default()));
    }
    // The other entity is not named: the caller may have no right to it.
    let used_for = if same_entity {
        format!(
            "event \"{}\" on this key",
            clip(recorded_event.as_deref().unwrap_or(""))
        )
    } else {
        "another entity".to_owned()
    };
    Err(FsmError::new(
        ErrorKind::InvalidParameter,
        format!(
            "idempotency key \"{}\" was used for {used_for}, not for event \"{}\" on key {} of {}",
            clip(idempotency_key),
            clip(event),
            b.key_text(key.datum()),
            b.table,
        ),
    )
    .hint("Use a new key for each distinct request.")
    .located(b.fields(b.machine.event_id(event))))
}

/// The locked row as a composite datum, for a guard or an action.
pub fn whole_row(b: &Binding, row: &Row) -> pg_sys::Datum {
    // SAFETY: a syscache lookup of the bound table's row type.
    let row_type = unsafe { pg_sys::get_rel_type_id(b.relid) };
    match row.typed(3, row_type) {
        Ok(Some(d)) => d,
        _ => FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!("the row of {} changed type during fire", b.table),
        )
        .raise(),
    }
}

/// The branch of `event`'s name that the fire takes from `from`, and where
/// it leads: among the branches that may fire from there and reach the
/// caller's `to` (if given), the first whose requirements pass. A plain
/// event is one branch. The errors are those of the first branch: not
/// allowed from this state, `to` missing or not a target, its refusal.
fn choose_branch(
    subject: &Subject,
    from: StateId,
    event: EventId,
    r: &Request,
    row: impl Fn() -> pg_sys::Datum,
) -> FsmResult<(EventId, StateId)> {
    let machine = &subject.binding.machine;
    let mut choices: Vec<(EventId, StateId)> = Vec::new();
    let mut first_error = None;
    for branch in machine.branches_from(event, from) {
        match choose_target(subject, from, branch, r) {
            Ok(target) => choices.push((branch, target)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if choices.is_empty() {
        return Err(match first_error {
            Some(e) => e,
            None => choose_target(subject, from, event, r)
                .expect_err("an event that cannot fire from here has no target"),
        });
    }
    let branches: Vec<EventId> = choices.iter().map(|&(branch, _)| branch).collect();
    let taken = check_requirements(subject, &branches, r.payload, row)?;
    Ok(choices
        .into_iter()
        .find(|&(branch, _)| branch == taken)
        .expect("the branch taken is one of the choices"))
}

/// Where `event` leads from `from`: its one target, or the `to` the caller
/// chose among several.
fn choose_target(
    subject: &Subject,
    from: StateId,
    event: EventId,
    r: &Request,
) -> FsmResult<StateId> {
    let b = subject.binding;
    let machine = &b.machine;
    let targets = machine.targets(from, event);
    let hint = || {
        let names: Vec<&str> = targets
            .iter()
            .map(|&t| machine.state(t).name.as_str())
            .collect();
        format!("Targets: {}.", names.join(", "))
    };
    match (targets, r.to) {
        ([], _) => Err(subject
            .refuse(
                ErrorKind::NotAllowed,
                format!(
                    "event \"{}\" is not allowed from state \"{}\"",
                    machine.event(event).name,
                    clip(subject.state)
                ),
            )
            .located(b.fields(Some(event)))),
        (_, Some(wanted)) => machine
            .state_id(wanted)
            .filter(|s| targets.contains(s))
            .ok_or_else(|| {
                FsmError::new(
                    ErrorKind::InvalidParameter,
                    format!(
                        "\"{}\" is not a target of event \"{}\" {}",
                        clip(wanted),
                        machine.event(event).name,
                        subject.at()
                    ),
                )
                .hint(hint())
                .located(b.fields(Some(event)))
            }),
        ([only], None) => Ok(*only),
        (_, None) => Err(FsmError::new(
            ErrorKind::InvalidParameter,
            format!(
                "event \"{}\" has several targets: choose one with \"to\" {}",
                machine.event(event).name,
                subject.at()
            ),
        )
        .hint(hint())
        .located(b.fields(Some(event)))),
    }
}

/// The one-statement way, for an event that needs no row (no guard, no
/// action) and whose target is known without the source: after its roles
/// and payload pass, one UPDATE both checks the source (it only matches a
/// row in a state the event leads from) and moves the row; the trigger
/// records it. `None` means "take the full way": it locks the row and says
/// precisely what is wrong, or handles what this cannot (a self-transition,
/// a row another transaction moved).
fn try_one_statement(
    b: &Binding,
    key: Key,
    event: EventId,
    r: &Request,
) -> FsmResult<Option<String>> {
    let machine = &b.machine;
    let runtime = b.runtime(event);
    // Branches are chosen by the row's state: that needs the row.
    if runtime.guard.is_some() || runtime.action.is_some() || machine.branches(event).len() > 1 {
        return Ok(None);
    }
    let target = match (machine.event(event).targets.as_slice(), r.to) {
        (_, Some(wanted)) => match machine.state_id(wanted) {
            Some(t) => t,
            None => return Ok(None),
        },
        ([only], None) => *only,
        _ => return Ok(None),
    };
    let anywhere = Subject {
        binding: b,
        key,
        state: "",
    };
    if check_requirements(&anywhere, &[event], r.payload, || pg_sys::Datum::from(0)).is_err() {
        return Ok(None);
    }
    // Sources other than the target: a self-transition changes no column,
    // so no trigger would record it.
    let sources: Vec<&str> = machine
        .sources_to(event, target)
        .into_iter()
        .filter(|&s| s != target)
        .map(|s| machine.state(s).name.as_str())
        .collect();
    if sources.is_empty() {
        return Ok(None);
    }
    let scope = FireScope::enter(FireContext {
        relid: b.bound_relid,
        attnum: b.bound_attnum,
        machine_version: b.machine_version,
        key,
        from: None,
        to: target,
        event,
        payload: r.payload,
        idempotency_key: None,
        recovering: false,
    });
    let target_name = machine.state(target).name.as_str();
    let moved = plan(b, FireStatement::Move { event, to: target }).execute(
        &[
            Some(key.datum()),
            r.expect.into_datum(),
            Some(history::text_array(&sources)),
            target_name.into_datum(),
        ],
        false,
    );
    if moved == 1 && !scope.used() {
        return Err(redirected(b, key, event, target_name));
    }
    Ok((moved == 1).then(|| target_name.to_owned()))
}

/// 27000: fire's UPDATE was written, but the trigger did not see the
/// event's move (a BEFORE trigger wrote another state, or the old one):
/// `fire` must not report a move the row did not make, nor lose its
/// payload and idempotency key.
fn redirected(b: &Binding, key: Key, event: EventId, to: &str) -> FsmError {
    FsmError::new(
        ErrorKind::TriggeredDataChange,
        format!(
            "event \"{}\" was to move key {} of {} to \"{}\", but a trigger wrote another state",
            b.machine.event(event).name,
            b.key_text(key.datum()),
            b.table,
            clip(to)
        ),
    )
    .hint("A BEFORE UPDATE trigger of the table changed the state column: fire cannot make that move.")
    .located(b.fields(Some(event)))
}

/// The kept plan of one of fire's statements. The key is always bound as
/// the table's key type; state names are bound parameters.
pub fn plan(b: &Binding, statement: FireStatement) -> Rc<KeptPlan> {
    b.plans.get(Statement::Fire(statement), || {
        let (table, column, key, key_type, eq) = (
            &b.table_sql,
            ident(&b.column),
            ident(&b.key_column),
            b.key.oid(),
            &b.key.equality_sql,
        );
        let read = format!(
            "SELECT t.{column}::pg_catalog.text, t.{key}, t FROM {table} t WHERE t.{key} {eq} $1"
        );
        let lock = |row: &str| {
            format!(
                "SELECT t.{column}::pg_catalog.text, t.{key}, {row} FROM {table} t \
                  WHERE t.{key} {eq} $1 FOR NO KEY UPDATE"
            )
        };
        match statement {
            FireStatement::LockState => (lock("NULL::pg_catalog.record"), vec![key_type]),
            FireStatement::LockRow => (lock("t"), vec![key_type]),
            FireStatement::ReadRow => (read, vec![key_type]),
            FireStatement::Update => (
                format!(
                    "UPDATE {table} t SET {column} = {} WHERE t.{key} {eq} $1",
                    b.state_column.assigned_sql("$2")
                ),
                vec![key_type, pg_sys::TEXTOID],
            ),
            FireStatement::Move { .. } => (
                format!(
                    "UPDATE {table} t SET {column} = {} \
                      WHERE t.{key} {eq} $1 \
                        AND t.{column}::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3) \
                        AND ($2 IS NULL OR t.{column}::pg_catalog.text OPERATOR(pg_catalog.=) $2)",
                    b.state_column.assigned_sql("$4")
                ),
                vec![
                    key_type,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTOID,
                ],
            ),
        }
    })
}
