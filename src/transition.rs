//! The rules of one move, shared by the trigger and `fire`: who the move is
//! about (for messages), roles, payload schema and guard, the action, the
//! event a plain UPDATE performs, and what `fire` tells the trigger about
//! the UPDATE it runs.

use std::cell::RefCell;

use pgrx::pg_sys;

use crate::binding::Binding;
use crate::error::{allowed_hint, clip, clip_to, ErrorKind, FsmError, FsmResult};
use crate::json::Jsonb;
use crate::key::Key;
use crate::machine::{EventId, StateId};
use crate::settings;
use crate::spi_plan::connected;

/// The entity a check is about, for messages that name table, key and state.
pub struct Subject<'a> {
    pub binding: &'a Binding,
    pub key: Key,
    pub state: &'a str,
}

impl Subject<'_> {
    /// "(table orders, key 42, state "paid")": appended to every refusal.
    /// The key and the state are shown only to a role that may SELECT
    /// their columns: an UPDATE needs no SELECT of the columns it sets, and
    /// a refusal must not tell what the role could not read.
    pub fn at(&self) -> String {
        let b = self.binding;
        let mut at = format!("(table {}", b.table);
        if may_select(b, &b.key_column) {
            at.push_str(&format!(", key {}", b.key_text(self.key.datum())));
        }
        if may_select(b, &b.column) {
            at.push_str(&format!(", state \"{}\"", clip(self.state)));
        }
        at.push(')');
        at
    }

    pub fn refuse(&self, kind: ErrorKind, what: String) -> FsmError {
        let error =
            FsmError::new(kind, format!("{what} {}", self.at())).located(self.binding.fields(None));
        if !may_select(self.binding, &self.binding.column) {
            return error;
        }
        let from = self.binding.machine.state_id(self.state);
        let allowed = from
            .map(|s| self.binding.machine.events_from(s))
            .unwrap_or_default();
        error.hint(allowed_hint(&clip(self.state), &allowed))
    }
}

/// Whether the current user may SELECT `column` of the bound table, whatever
/// row it is (`sql::may_select_column`). Only on the way to a refusal.
pub fn may_select(b: &Binding, column: &str) -> bool {
    crate::sql::may_select_column(b.bound_relid, column)
}

/// Why a requirement of an event refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller is a member of none of the event's roles.
    MissingRole,
    /// The payload fails the event's schema: why.
    Payload(String),
    /// The guard returned false or NULL.
    Guard,
}

impl Refusal {
    /// The SQLSTATE and the sentence that say it, naming the event (and
    /// the roles or the guard): the reason `available_events` gives, and
    /// the start of `fire`'s message.
    pub fn describe(&self, b: &Binding, event: EventId) -> (ErrorKind, String) {
        let e = b.machine.event(event);
        match self {
            Refusal::MissingRole => (
                ErrorKind::InsufficientPrivilege,
                format!(
                    "event \"{}\" needs membership in one of: {}",
                    e.name,
                    e.roles.join(", ")
                ),
            ),
            Refusal::Payload(why) => (
                ErrorKind::InvalidParameter,
                format!(
                    "payload of event \"{}\" does not match its schema: {}",
                    e.name,
                    clip_to(why, 240)
                ),
            ),
            Refusal::Guard => {
                let guard = match &b.runtime(event).guard {
                    Some(Ok(g)) => g.sql_name.as_str(),
                    _ => "?",
                };
                (
                    ErrorKind::CheckViolation,
                    format!("guard {guard} refused event \"{}\"", e.name),
                )
            }
        }
    }
}

/// Which requirements `requirement_refusal` checks: `fire` checks the
/// payload; `available_events`, which has none to check, leaves it to the
/// fire that follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Check,
    Skip,
}

/// Roles, payload schema and guard of `event`, in that order: the first
/// that refuses, or `None`. `row` gives the composite row datum for the
/// guard; it is only called when there is a guard. Errors are failures to
/// check (a payload too deep to read, a guard that is missing or raises).
pub fn requirement_refusal(
    b: &Binding,
    event: EventId,
    payload: Option<Jsonb>,
    check_payload: Payload,
    row: impl FnOnce() -> pg_sys::Datum,
) -> FsmResult<Option<Refusal>> {
    let e = b.machine.event(event);
    if !e.roles.is_empty() && !e.roles.iter().any(|r| current_user_is_member(r)) {
        return Ok(Some(Refusal::MissingRole));
    }
    if let (Some(schema), Payload::Check) = (&e.payload, check_payload) {
        let value = payload.map(|p| p.to_value("payload")).transpose()?;
        if let Err(why) = schema.check(value.as_ref()) {
            return Ok(Some(Refusal::Payload(why)));
        }
    }
    if let Some(guard) = &b.runtime(event).guard {
        let guard = guard.as_ref().map_err(Clone::clone)?;
        let row = row();
        let passed = connected(|| {
            let plan = guard.plan(row_type(b));
            let result = plan.first_row(&[Some(row), payload.map(Jsonb::datum)])?;
            // The function was checked to return boolean when the binding
            // loaded; a replaced function is checked again here.
            result.bool(1).ok().flatten()
        });
        if passed != Some(true) {
            return Ok(Some(Refusal::Guard));
        }
    }
    Ok(None)
}

/// The branch a move takes: the first of `branches` (branches of one
/// event, each able to make the move, in declaration order) whose roles,
/// payload schema and guard all pass; when none does, the first one's
/// refusal. A plain event is a list of one. `branches` is never empty.
pub fn first_passing(
    b: &Binding,
    branches: &[EventId],
    payload: Option<Jsonb>,
    check_payload: Payload,
    row: impl Fn() -> pg_sys::Datum,
) -> FsmResult<Result<EventId, (EventId, Refusal)>> {
    let mut first_refusal = None;
    for &branch in branches {
        match requirement_refusal(b, branch, payload, check_payload, &row)? {
            None => return Ok(Ok(branch)),
            Some(refusal) => {
                first_refusal.get_or_insert((branch, refusal));
            }
        }
    }
    Ok(Err(first_refusal.expect("a move has at least one branch")))
}

/// [`first_passing`], with a refusal as the error that names the subject.
pub fn check_requirements(
    subject: &Subject,
    branches: &[EventId],
    payload: Option<Jsonb>,
    row: impl Fn() -> pg_sys::Datum,
) -> FsmResult<EventId> {
    let b = subject.binding;
    match first_passing(b, branches, payload, Payload::Check, row)? {
        Ok(branch) => Ok(branch),
        Err((branch, refusal)) => {
            let (kind, what) = refusal.describe(b, branch);
            Err(subject.refuse(kind, what).located(b.fields(Some(branch))))
        }
    }
}

/// The table's row type, from the syscache.
fn row_type(b: &Binding) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of the bound table.
    unsafe { pg_sys::get_rel_type_id(b.bound_relid) }
}

fn current_user_is_member(role: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(role) else {
        return false;
    };
    // SAFETY: syscache lookups by a NUL-terminated name and by oid.
    unsafe {
        let role = pg_sys::get_role_oid(name.as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::is_member_of_role(pg_sys::GetUserId(), role)
    }
}

/// Calls the event's action, if it has one, with the new row and the
/// payload. Its ERROR fails the statement (nothing of the change remains),
/// unless `fire` runs the move under the event's `on_error` (see
/// [`action_failed`]).
pub fn run_action(
    b: &Binding,
    event: EventId,
    payload: Option<Jsonb>,
    row: impl FnOnce() -> pg_sys::Datum,
) -> FsmResult<()> {
    let Some(action) = &b.runtime(event).action else {
        return Ok(());
    };
    let action = action.as_ref().map_err(Clone::clone)?;
    let row = row();
    connected(|| {
        let plan = action.plan(row_type(b));
        // Removed only when the action returns (with whatever actions it
        // ran and whose errors it caught): after an ERROR the entry stays,
        // and tells `fire` the action is what raised.
        let depth = UNFINISHED_ACTIONS.with(|u| {
            let mut u = u.borrow_mut();
            u.push((b.bound_relid, b.bound_attnum, event));
            u.len() - 1
        });
        plan.execute(&[Some(row), payload.map(Jsonb::datum)], false);
        UNFINISHED_ACTIONS.with(|u| u.borrow_mut().truncate(depth));
    });
    Ok(())
}

thread_local! {
    /// The actions running now, innermost last, each as (bound table,
    /// column, event).
    static UNFINISHED_ACTIONS: RefCell<Vec<(pg_sys::Oid, i16, EventId)>> =
        const { RefCell::new(Vec::new()) };
}

/// A mark to hand to [`action_failed`] after work that may run actions.
pub fn actions_mark() -> usize {
    UNFINISHED_ACTIONS.with(|u| u.borrow().len())
}

/// Whether the ERROR that ended the work begun at `mark` came from the
/// action of `event` on `b`: that action started after the mark and did
/// not finish. Forgets what that work left behind either way.
pub fn action_failed(mark: usize, b: &Binding, event: EventId) -> bool {
    UNFINISHED_ACTIONS.with(|u| {
        let mut u = u.borrow_mut();
        let ours = (b.bound_relid, b.bound_attnum, event);
        let failed = u.get(mark..).is_some_and(|left| left.contains(&ours));
        u.truncate(mark);
        failed
    })
}

/// Forgets the actions an ERROR left unfinished: at the end of every
/// transaction, when no `fire` can be waiting to ask about them.
pub fn forget_unfinished_actions() {
    let _ = UNFINISHED_ACTIONS.try_with(|u| u.try_borrow_mut().map(|mut u| u.clear()));
}

/// The event a plain UPDATE performs: the one declared from `from` to
/// `to`, or, where several are, the one `fsm.event` names. Its branches
/// that make this move, in order (see [`check_requirements`]). Runs per
/// row: the branches of one event are consecutive in `events_between`, so
/// events are told apart by their first branch's id, and the answer is a
/// slice of it.
pub fn event_of_update<'m>(
    subject: &Subject<'m>,
    from: StateId,
    to: StateId,
) -> FsmResult<&'m [EventId]> {
    let machine = &subject.binding.machine;
    let between = machine.events_between(from, to);
    let event_of = |e: EventId| machine.branches(e).start;
    match between {
        [] => Err(subject.refuse(
            ErrorKind::NotAllowed,
            format!("no event leads to \"{}\"", machine.state(to).name),
        )),
        [first, .., last] if event_of(*first) != event_of(*last) => {
            let named = between
                .chunk_by(|&a, &b| event_of(a) == event_of(b))
                .find(|branches| {
                    settings::equals(&settings::EVENT, &machine.event(branches[0]).name)
                });
            named.ok_or_else(|| several_events(subject, between, to))
        }
        one_event => Ok(one_event),
    }
}

/// 55000 when several events lead where a plain UPDATE goes and
/// `fsm.event` names none of them.
fn several_events(subject: &Subject, between: &[EventId], to: StateId) -> FsmError {
    let machine = &subject.binding.machine;
    let mut names: Vec<&str> = between
        .iter()
        .map(|&e| machine.event(e).name.as_str())
        .collect();
    names.dedup();
    FsmError::new(
        ErrorKind::NotAllowed,
        format!(
            "several events lead to \"{}\": {} {}",
            machine.state(to).name,
            names.join(", "),
            subject.at()
        ),
    )
    .hint(format!(
        "SET LOCAL fsm.event to one of: {}.",
        names.join(", ")
    ))
    .located(subject.binding.fields(None))
}

/// What `fsm.fire` tells the trigger about the UPDATE it is about to run:
/// the row it is for (bound table, its column number, key), the event it already checked,
/// and the payload to record. `from` is `None` when fire's UPDATE itself
/// only matches rows in a state the event leads from (see `fire`).
#[derive(Clone, Copy)]
pub struct FireContext {
    pub relid: pg_sys::Oid,
    pub attnum: i16,
    /// The machine version fire decided the move under: its event and
    /// state ids mean nothing under another.
    pub machine_version: i32,
    pub key: Key,
    pub from: Option<StateId>,
    pub to: StateId,
    pub event: EventId,
    pub payload: Option<Jsonb>,
    /// The caller's `idempotency_key` (a text datum), recorded on the
    /// history row.
    pub idempotency_key: Option<pg_sys::Datum>,
    /// The move to the event's `on_error` state after its action failed:
    /// the action is not run again.
    pub recovering: bool,
}

/// What the trigger takes from the fire that made the move it sees.
pub struct Fired {
    pub event: EventId,
    pub payload: Option<Jsonb>,
    pub idempotency_key: Option<pg_sys::Datum>,
    pub recovering: bool,
}

/// One context per `fire` in progress, innermost last. A nested UPDATE
/// (a guard, a cast, a cascading trigger) never sees an outer fire's
/// context as its own: only the innermost is looked at, and only for the
/// very row it names, once.
struct Entry {
    context: FireContext,
    used: bool,
}

thread_local! {
    static FIRES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Holds a fire context for the duration of one UPDATE; removes it (and
/// anything an ERROR left above it) on drop, so an unwinding ERROR cannot
/// leave it behind, and an outer fire's context is restored.
pub struct FireScope {
    depth: usize,
}

impl FireScope {
    pub fn enter(context: FireContext) -> FireScope {
        let depth = FIRES.with(|f| {
            let mut f = f.borrow_mut();
            f.push(Entry {
                context,
                used: false,
            });
            f.len()
        });
        FireScope { depth }
    }

    /// Whether the trigger took this fire's move as its own: it saw the
    /// row move exactly as the fire asked.
    pub fn used(&self) -> bool {
        FIRES.with(|f| f.borrow().get(self.depth - 1).is_some_and(|e| e.used))
    }
}

impl Drop for FireScope {
    fn drop(&mut self) {
        let _ = FIRES.try_with(|f| {
            if let Ok(mut f) = f.try_borrow_mut() {
                f.truncate(self.depth - 1);
            }
        });
    }
}

/// The innermost fire's event, payload and idempotency key, if that fire
/// is about exactly this row and this move and has not been used yet.
pub fn take_fire_context(b: &Binding, key: Key, from: StateId, to: StateId) -> Option<Fired> {
    let (context, depth) = FIRES.with(|f| {
        let f = f.borrow();
        f.last().filter(|e| !e.used).map(|e| (e.context, f.len()))
    })?;
    if context.relid == b.bound_relid
        && context.attnum == b.bound_attnum
        && context.machine_version != b.machine_version
    {
        // The machine was replaced after fire read it: the move it checked
        // is not one of this version. Retrying decides it afresh.
        FsmError::new(
            ErrorKind::ExpectMismatch,
            format!(
                "machine \"{}\" was replaced (version {} to {}) while an event of it was being fired on {}",
                b.machine_name, context.machine_version, b.machine_version, b.table
            ),
        )
        .hint("Retry the transaction: the event is checked against the new version.")
        .located(b.fields(None))
        .raise()
    }
    let moves = context.to == to
        && context.from.map_or_else(
            || b.machine.targets(from, context.event).contains(&to),
            |f| f == from,
        );
    // The key comparison runs outside the borrow: a key type's equality
    // may be user code.
    if context.relid != b.bound_relid
        || context.attnum != b.bound_attnum
        || !moves
        || !b.key.equal(context.key, key)
    {
        return None;
    }
    FIRES.with(|f| {
        if let Some(entry) = f.borrow_mut().get_mut(depth - 1) {
            entry.used = true;
        }
    });
    Some(Fired {
        event: context.event,
        payload: context.payload,
        idempotency_key: context.idempotency_key,
        recovering: context.recovering,
    })
}
