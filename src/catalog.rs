//! Bindings (a machine attached to a table column) as the hot path sees
//! them: loaded from `fsm.binding` once, compiled, and cached per backend.
//!
//! The cache is keyed by table oid and emptied for a table whenever its
//! relcache entry is invalidated. PostgreSQL sends that invalidation to every
//! backend when the table is altered, when triggers are created or dropped
//! (attach, detach), and when `create_machine(replace => true)` asks for it
//! on each bound table, so no backend acts on a stale machine.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};

use crate::error::{ErrorKind, FsmError, FsmResult};
use crate::machine::{validate::compile_json, EventId, Machine};
use crate::spi_plan::{KeptPlan, PlanCache};

/// A guard or action function, resolved for one table's row type.
pub struct Callable {
    /// Schema-qualified, quoted: safe to paste into SQL.
    pub sql_name: String,
    pub plan: OnceCell<KeptPlan>,
}

/// What one event needs at run time beyond the pure model.
pub struct EventRuntime {
    pub guard: Option<Result<Callable, FsmError>>,
    pub action: Option<Result<Callable, FsmError>>,
}

/// The statements run for a binding outside the trigger, each prepared once
/// per backend for each type a caller passes the key as (see `fire` and
/// `read` for their SQL).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Statement {
    Fire(FireStatement),
    /// `history`: which of since, until and limit the query filters on.
    History {
        since: bool,
        until: bool,
        limit: bool,
    },
    /// `current_states`. `$1` an array of keys.
    CurrentStates,
}

/// `fire`'s statements.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum FireStatement {
    /// Locks the row; returns state and key. `$1` key.
    LockState,
    /// The same, with the whole row for a guard or an action.
    LockRow,
    /// Moves the row. `$1` key, `$2` new state.
    Update,
    /// Moves the row by `event` to `to` if it is in a state the event
    /// leads from. `$1` key, `$2` expected state or NULL.
    Move {
        event: EventId,
        to: crate::machine::StateId,
    },
}

/// A machine attached to one column of one table.
pub struct Binding {
    pub relid: pg_sys::Oid,
    /// `regclass` output, for messages.
    pub table: String,
    pub column: String,
    pub attnum: i16,
    pub key_attnum: i16,
    pub key_type: pg_sys::Oid,
    pub row_type: pg_sys::Oid,
    pub owner: pg_sys::Oid,
    pub machine_name: String,
    pub machine: Machine,
    pub history_table: String,
    pub protect: bool,
    /// Schema-qualified and quoted, for SQL: the cache outlives any
    /// `search_path` the session sets.
    pub table_sql: String,
    pub key_column: String,
    /// `format_type` of the key column, for casts in SQL.
    pub key_type_sql: String,
    /// Plans of `Statement`s, by statement and the caller's key type.
    pub plans: PlanCache<(Statement, pg_sys::Oid)>,
    pub notify: Option<String>,
    pub events: Vec<EventRuntime>,
    pub insert_history: OnceCell<KeptPlan>,
    /// The same for many rows at once, from arrays (see `pending`).
    pub insert_history_rows: OnceCell<KeptPlan>,
    /// How the key type is stored, to copy and to build arrays of keys.
    pub key_storage: TypeStorage,
    /// Whether the row trigger may hold history rows back (`pending`): the
    /// AFTER UPDATE statement trigger is there and enabled, and no NOTIFY
    /// needs the row's id at once.
    pub batches_updates: bool,
    pub notify_plan: OnceCell<KeptPlan>,
}

impl Binding {
    pub fn runtime(&self, event: EventId) -> &EventRuntime {
        &self.events[event as usize]
    }

    /// The key as text, for messages (cold path only).
    pub fn key_text(&self, key: pg_sys::Datum) -> String {
        datum_text(key, self.key_type)
    }
}

/// Any datum as its type's text output.
pub fn datum_text(datum: pg_sys::Datum, type_oid: pg_sys::Oid) -> String {
    // SAFETY: the output function of the datum's own type, called on it.
    unsafe {
        let mut output = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
        let text = pg_sys::OidOutputFunctionCall(output, datum);
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

/// `pg_type`'s storage facts of a type, and its array type.
#[derive(Clone, Copy)]
pub struct TypeStorage {
    pub type_oid: pg_sys::Oid,
    pub len: i16,
    pub by_value: bool,
    pub align: std::ffi::c_char,
    pub array_type: pg_sys::Oid,
}

impl TypeStorage {
    pub fn of(type_oid: pg_sys::Oid) -> TypeStorage {
        let (mut len, mut by_value, mut align) = (0i16, false, 0 as std::ffi::c_char);
        // SAFETY: syscache lookups of an existing type.
        unsafe {
            pg_sys::get_typlenbyvalalign(type_oid, &mut len, &mut by_value, &mut align);
            TypeStorage {
                type_oid,
                len,
                by_value,
                align,
                array_type: pg_sys::get_array_type(type_oid),
            }
        }
    }
}

pub type TableBindings = Rc<Vec<Rc<Binding>>>;

thread_local! {
    static BY_TABLE: RefCell<HashMap<pg_sys::Oid, TableBindings>> = RefCell::new(HashMap::new());
    static BY_TRIGGER: RefCell<HashMap<pg_sys::Oid, Rc<Binding>>> = RefCell::new(HashMap::new());
}

/// Registers the relcache callback that empties the cache; once per backend.
pub fn register_invalidation() {
    // SAFETY: the callback is a plain function that never raises.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        )
    };
}

/// Forgets what we know of `relid` (or of everything, for InvalidOid).
/// Bindings still in use up the stack stay alive through their `Rc`.
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let _ = BY_TABLE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.remove(&relid);
            }
        }
    });
    let _ = BY_TRIGGER.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                m.clear();
            } else {
                m.retain(|_, b| b.relid != relid);
            }
        }
    });
}

/// Asks every backend to reload the bindings of `relid` at its next use.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues a transactional invalidation message.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// The bindings of a table (empty when nothing is attached).
pub fn table_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    if let Some(found) = BY_TABLE.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(found);
    }
    let loaded: TableBindings = Rc::new(load(relid)?.into_iter().map(Rc::new).collect());
    BY_TABLE.with(|m| m.borrow_mut().insert(relid, loaded.clone()));
    Ok(loaded)
}

/// The bindings of a table that must have some: 42704 when none is attached.
pub fn attached_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    let bindings = table_bindings(relid)?;
    if bindings.is_empty() {
        return Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!(
                "no machine is attached to {}",
                datum_text(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID)
            ),
        ));
    }
    Ok(bindings)
}

/// The binding a trigger enforces: the hot path's only lookup, by trigger oid.
pub fn trigger_binding(trigger: &pg_sys::Trigger, relid: pg_sys::Oid) -> FsmResult<Rc<Binding>> {
    if let Some(found) = BY_TRIGGER.with(|m| m.borrow().get(&trigger.tgoid).cloned()) {
        return Ok(found);
    }
    let column = trigger_column(trigger);
    let binding = table_bindings(relid)?.iter().find(|b| b.column == column).cloned().ok_or_else(|| {
        FsmError::new(
            ErrorKind::UndefinedObject,
            format!("column \"{column}\" of relation with oid {relid:?} has an fsm trigger but no binding"),
        )
        .hint("Run fsm.detach() and fsm.attach() again, or drop the trigger.")
    })?;
    BY_TRIGGER.with(|m| m.borrow_mut().insert(trigger.tgoid, binding.clone()));
    Ok(binding)
}

/// The column name passed as the trigger's one argument.
fn trigger_column(trigger: &pg_sys::Trigger) -> String {
    if trigger.tgnargs < 1 {
        pgrx::error!(
            "fsm.enforce() must be created by fsm.attach(), with the column as its argument"
        );
    }
    // SAFETY: tgargs holds tgnargs NUL-terminated strings.
    unsafe {
        CStr::from_ptr(*trigger.tgargs)
            .to_string_lossy()
            .into_owned()
    }
}

const LOAD_BINDINGS: &str = "
SELECT b.col::text, a.attnum, k.attname::text, k.attnum, k.atttypid, c.reltype, c.relowner,
       m.name, m.definition,        format('%I.%I', hn.nspname, hc.relname), b.protect, b.notify, b.tbl::text,
       format('%I.%I', n.nspname, c.relname), pg_catalog.format_type(k.atttypid, NULL),
       ARRAY(SELECT t.tgname::text FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = b.tbl AND t.tgenabled <> 'D')
  FROM fsm.binding b
  JOIN fsm.machine m ON m.name = b.machine
  JOIN pg_catalog.pg_class c ON c.oid = b.tbl
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_class hc ON hc.oid = b.history
  JOIN pg_catalog.pg_namespace hn ON hn.oid = hc.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = b.tbl AND a.attname = b.col AND NOT a.attisdropped
  JOIN pg_catalog.pg_index i ON i.indrelid = b.tbl AND i.indisprimary
  JOIN pg_catalog.pg_attribute k ON k.attrelid = b.tbl AND k.attnum = i.indkey[0]
 WHERE b.tbl = $1
 ORDER BY a.attnum";

fn load(relid: pg_sys::Oid) -> FsmResult<Vec<Binding>> {
    let rows = Spi::connect(|client| -> FsmResult<Vec<_>> {
        let table = client.select(LOAD_BINDINGS, None, &[relid.into()])?;
        let mut rows = Vec::new();
        for row in table {
            rows.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<i16>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<i16>(4)?.unwrap_or_default(),
                row.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid),
                row.get::<pg_sys::Oid>(6)?.unwrap_or(pg_sys::InvalidOid),
                row.get::<pg_sys::Oid>(7)?.unwrap_or(pg_sys::InvalidOid),
                row.get::<String>(8)?.unwrap_or_default(),
                row.get::<JsonB>(9)?.map(|j| j.0).unwrap_or_default(),
                row.get::<String>(10)?.unwrap_or_default(),
                row.get::<bool>(11)?.unwrap_or(false),
                row.get::<String>(12)?,
                row.get::<String>(13)?.unwrap_or_default(),
                row.get::<String>(14)?.unwrap_or_default(),
                row.get::<String>(15)?.unwrap_or_default(),
                row.get::<Vec<String>>(16)?.unwrap_or_default(),
            ));
        }
        Ok(rows)
    })?;
    rows.into_iter()
        .map(
            |(
                column,
                attnum,
                key_column,
                key_attnum,
                key_type,
                row_type,
                owner,
                machine_name,
                definition,
                history_table,
                protect,
                notify,
                table,
                table_sql,
                key_type_sql,
                enabled_triggers,
            )| {
                let (_, compiled) = compile_json(&definition).map_err(|e| {
                    FsmError::new(
                        ErrorKind::InvalidDefinition,
                        format!(
                            "stored definition of machine \"{machine_name}\" does not compile: {e}"
                        ),
                    )
                })?;
                let machine = compiled.machine;
                let events = machine
                    .events
                    .iter()
                    .map(|e| EventRuntime {
                        guard: e
                            .guard
                            .as_deref()
                            .map(|g| resolve_function(g, row_type, "guard", &e.name, &table)),
                        action: e
                            .action
                            .as_deref()
                            .map(|a| resolve_function(a, row_type, "action", &e.name, &table)),
                    })
                    .collect();
                // A NOTIFY carries the history id at once: no holding back.
                let batches_updates = notify.is_none()
                    && enabled_triggers.contains(&crate::attach::trigger_names(&column).flush);
                Ok(Binding {
                    relid,
                    batches_updates,
                    key_storage: TypeStorage::of(key_type),
                    insert_history_rows: OnceCell::new(),
                    table,
                    table_sql,
                    key_column,
                    key_type_sql,
                    plans: PlanCache::default(),
                    column,
                    attnum,
                    key_attnum,
                    key_type,
                    row_type,
                    owner,
                    machine_name,
                    machine,
                    history_table,
                    protect,
                    notify,
                    events,
                    insert_history: OnceCell::new(),
                    notify_plan: OnceCell::new(),
                })
            },
        )
        .collect()
}

/// Finds `name(<row type>, jsonb)` and checks what it returns: boolean for
/// a guard, void for an action.
pub fn resolve_function(
    name: &str,
    row_type: pg_sys::Oid,
    role: &str,
    event: &str,
    table: &str,
) -> FsmResult<Callable> {
    let found = Spi::connect(|client| -> FsmResult<Option<(String, String)>> {
        let rows = client.select(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname),
                    pg_catalog.format_type(p.prorettype, NULL)
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE p.oid = pg_catalog.to_regprocedure($1 || '(' || $2::regtype::text || ', jsonb)')",
            None,
            &[name.into(), row_type.into()],
        )?;
        match rows.first().get_two::<String, String>() {
            Ok((Some(sql_name), Some(returns))) => Ok(Some((sql_name, returns))),
            _ => Ok(None),
        }
    })?;
    let expected = if role == "guard" { "boolean" } else { "void" };
    match found {
        None => Err(FsmError::new(
            ErrorKind::UndefinedFunction,
            format!("{role} function {name}({table}, jsonb) of event \"{event}\" does not exist"),
        )
        .hint(format!("Create it as {name}(row {table}, payload jsonb) RETURNS {expected}, schema-qualified."))),
        Some((_, returns)) if returns != expected => Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!("{role} function {name}({table}, jsonb) of event \"{event}\" returns {returns}, not {expected}"),
        )),
        Some((sql_name, _)) => Ok(Callable { sql_name, plan: OnceCell::new() }),
    }
}
