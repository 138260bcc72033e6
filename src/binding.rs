//! A binding (a machine attached to one column of one table) as the hot
//! path uses it, and how it is loaded: the `fsm.binding` row and its
//! machine, read under a fresh snapshot, plus the table's current shape
//! from the syscache. Everything the trigger and `fire` need per row is
//! computed here once, so nothing is looked up by name per row.

use std::cell::OnceCell;
use std::ffi::CString;

use pgrx::pg_sys;

use crate::callable::{self, Callable, Purpose};
use crate::error::{clip, ErrorKind, Fields, FsmError, FsmResult};
use crate::key::KeyType;
use crate::machine::{validate::compile, Definition, EventId, Machine, StateId};
use crate::spi_plan::{connected, KeptPlan, PlanCache, Row};
use crate::sql;
use crate::state_column::StateColumn;

/// What one event needs at run time beyond the pure model.
pub struct EventRuntime {
    pub guard: Option<Result<Callable, FsmError>>,
    pub action: Option<Result<Callable, FsmError>>,
}

/// The statements run for a binding outside the trigger, each prepared once
/// per backend (see `fire` and `read` for their SQL). The key is always
/// passed as the table's key type (see `key`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Statement {
    Fire(FireStatement),
    /// `history`: which of since, until and limit the query filters on,
    /// and whether it reads every binding of the table (no `col`) or this
    /// one.
    History {
        since: bool,
        until: bool,
        limit: bool,
        all: bool,
    },
    /// `changes`: as `History`, plus whether it filters on the event and
    /// on the keys the caller can see (row level security).
    Changes {
        since: bool,
        until: bool,
        event: bool,
        limit: bool,
        all: bool,
        visible: bool,
    },
    /// `current_states`, for keys passed as an array of `keys_type`. `$1`
    /// the keys as the key type, `$2` as passed, `$3` the positions to
    /// keep (NULL: all).
    CurrentStates {
        keys_type: pg_sys::Oid,
    },
    /// `states_at`: as `CurrentStates`, and `$4` the moment.
    StatesAt {
        keys_type: pg_sys::Oid,
    },
    /// `time_in_state`: as `CurrentStates`, `$4` and `$5` the window.
    TimeInState {
        keys_type: pg_sys::Oid,
    },
    /// `state_stats`: `$1`/`$2` the window (`$1` NULL: from the first
    /// row), `$3` the machine's states in order, and with `visible` `$4`
    /// the keys the caller can see (row level security).
    StateStats {
        visible: bool,
    },
    /// The timers of a binding (see `timers::candidates`).
    Timers {
        due_only: bool,
        visible: bool,
    },
    /// A timer's row, locked unless another ticker holds it.
    TimerLock,
    /// Whether a timer is still due, read after the lock.
    TimerDue,
    /// The due timers of one state, as arrays of keys and row versions.
    TimerBatchDue,
    /// Locks (SKIP LOCKED) and moves the rows of `TimerBatchDue` still at
    /// those versions.
    TimerBatchMove,
    /// Whether the caller can see the row of a key (row level security).
    KeyVisible,
    /// The positions of the keys of an array whose rows the caller can
    /// see (row level security).
    KeysVisible,
    /// Every key whose row the caller can see, as an array (row level
    /// security, for `changes`).
    AllVisibleKeys,
    /// `fire`'s idempotency key: a transaction lock on it (`$1`), so that
    /// every use of one key on one binding serialises.
    IdempotencyLock,
    /// The history row that recorded an idempotency key (`$1`): its
    /// entity, event and state.
    IdempotencyLookup,
}

/// `fire`'s statements.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum FireStatement {
    /// Locks the row; returns state and key. `$1` key.
    LockState,
    /// The same, with the whole row for a guard or an action.
    LockRow,
    /// The same without a lock (`can_fire`, `available_events`).
    ReadRow,
    /// Moves the row. `$1` key, `$2` new state.
    Update,
    /// Moves the row by `event` to `to` if it is in a state the event
    /// leads from. `$1` key, `$2` expected state or NULL, `$3` the
    /// sources, `$4` the target.
    Move { event: EventId, to: StateId },
}

/// A machine attached to one column of one table, as seen from one
/// relation: the bound table itself, or one of its partitions (their row
/// triggers are clones of the bound table's, and their column numbers may
/// differ from the bound table's).
pub struct Binding {
    /// The relation the triggers fire on: the bound table or a partition.
    pub relid: pg_sys::Oid,
    /// The bound table (`fsm.binding.tbl`).
    pub bound_relid: pg_sys::Oid,
    /// `regclass` output of the bound table, for messages.
    pub table: String,
    /// The bound table's schema and name, unquoted: the error fields of a
    /// refused transition (see `fields`).
    pub schema_name: String,
    pub relation_name: String,
    pub column: String,
    /// How the state column's type is read and written.
    pub state_column: StateColumn,
    /// The state column's number in `relid`.
    pub attnum: i16,
    /// The state column's number in the bound table (what `fire` names).
    pub bound_attnum: i16,
    pub key_attnum: i16,
    pub key: KeyType,
    pub machine_name: String,
    pub machine: Machine,
    /// The version of the definition `machine` was compiled from: recorded
    /// on every history row.
    pub machine_version: i32,
    /// The history table, schema-qualified and quoted.
    pub history_table: String,
    /// Its oid: renaming it must drop this binding from the cache.
    pub history_relid: pg_sys::Oid,
    /// Who owns the history table: its rows are written and read as that
    /// role, so callers need no grant on it.
    pub history_owner: pg_sys::Oid,
    /// Whether writing or reading the history as its owner runs the
    /// owner's code (`history_insert::runs_owner_code`), found on first
    /// use; any change to the history table reloads the binding.
    pub history_runs_owner_code: OnceCell<bool>,
    pub protect: bool,
    /// Schema-qualified and quoted, for SQL: the cache outlives any
    /// `search_path` the session sets.
    pub table_sql: String,
    pub key_column: String,
    /// Where each transition is announced, when the binding has `notify`.
    pub notify: Option<NotifyTarget>,
    pub events: Vec<EventRuntime>,
    /// Plans of `Statement`s.
    pub plans: PlanCache<Statement>,
    pub insert_history: OnceCell<KeptPlan>,
    /// The same for many rows at once, from arrays (see `pending`).
    pub insert_history_rows: OnceCell<KeptPlan>,
    pub notify_plan: OnceCell<KeptPlan>,
}

impl Binding {
    pub fn runtime(&self, event: EventId) -> &EventRuntime {
        &self.events[event as usize]
    }

    /// Whether this is the binding of a partition of the bound table.
    pub fn on_partition(&self) -> bool {
        self.relid != self.bound_relid
    }

    /// The error fields of a transition refused on this binding: the
    /// constraint is `<machine>:<event>`, or `<machine>` where no event of
    /// the machine applies.
    pub fn fields(&self, event: Option<EventId>) -> Fields {
        Fields {
            schema: self.schema_name.clone(),
            table: self.relation_name.clone(),
            column: self.column.clone(),
            constraint: match event {
                Some(e) => format!("{}:{}", self.machine_name, self.machine.event(e).name),
                None => self.machine_name.clone(),
            },
        }
    }

    /// A key of the table's key type as text, cut for messages.
    pub fn key_text(&self, key: pg_sys::Datum) -> String {
        clip(&self.key.text(key)).into_owned()
    }
}

/// The position in a table's `bindings` of the one bound to column `col`;
/// 42704 when no machine is attached to that column.
pub fn position_of(bindings: &[std::rc::Rc<Binding>], col: &str) -> FsmResult<usize> {
    bindings
        .iter()
        .position(|b| b.column == col)
        .ok_or_else(|| {
            FsmError::new(
                ErrorKind::UndefinedObject,
                format!(
                    "no machine is attached to {}.{}",
                    bindings[0].table,
                    clip(col)
                ),
            )
            .hint("See SELECT * FROM fsm.bindings.")
        })
}

/// The binding a function answers from when its answer depends on the
/// machine: the one on column `col`, or the table's only one. 42725 when
/// the table carries several machines and `col` names none.
pub fn named_or_only<'a>(
    bindings: &'a [std::rc::Rc<Binding>],
    col: Option<&str>,
) -> FsmResult<&'a Binding> {
    if let Some(col) = col {
        return Ok(&bindings[position_of(bindings, col)?]);
    }
    match bindings {
        [only] => Ok(only),
        several => Err(ambiguous(
            format!(
                "{} carries the machines of several columns",
                several[0].table
            ),
            several.iter().map(|b| b.column.as_str()),
        )),
    }
}

/// 42725: `what`, and the bound columns that could be meant.
pub fn ambiguous<'a>(what: String, columns: impl IntoIterator<Item = &'a str>) -> FsmError {
    let columns: Vec<&str> = columns.into_iter().collect();
    FsmError::new(
        ErrorKind::AmbiguousFunction,
        format!("{what}: {}", columns.join(", ")),
    )
    .hint("Name the column with col => '…'.")
}

/// The triggers `attach` creates on a bound table, shared by all its
/// bindings (one call per row serves every bound column, and a renamed
/// column needs no new trigger): PostgreSQL fires triggers of one kind in
/// name order, so `zz_` puts ours after the table's own.
///
/// - `FILL`, BEFORE INSERT, sets a NULL state column to the initial state;
/// - `INSERTED`, AFTER INSERT, checks and records the row written;
/// - `UPDATED`, AFTER UPDATE WHEN a bound column changed, checks and
///   records the move as written, whichever trigger or SET list made it.
///
/// AFTER row triggers fire only for rows that were written (not for ON
/// CONFLICT DO NOTHING, nor a row a BEFORE trigger skipped), on
/// partitions through their parent, and see the row's final values.
pub mod triggers {
    pub const FILL: &str = "zz_fsm_fill";
    pub const INSERTED: &str = "zz_fsm_inserted";
    pub const UPDATED: &str = "zz_fsm_updated";
    /// BEFORE UPDATE of a partitioned table: a key change is refused (the
    /// row would move between partitions as DELETE + INSERT, past the
    /// UPDATE's checks).
    pub const KEY: &str = "zz_fsm_key";
    pub const ALL: [&str; 4] = [FILL, INSERTED, UPDATED, KEY];
}

/// The first `max` bytes of `s`, cut at a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One row of the loader's query. Every column but `notify` is NOT NULL in
/// the catalog or comes from a join that must match: a NULL is an error
/// that names what went missing, never a default.
struct StoredBinding {
    column: String,
    machine_name: String,
    definition: serde_json::Value,
    history: Option<(String, pg_sys::Oid)>,
    protect: bool,
    notify: Option<String>,
    table: String,
    key_attnum: Option<i16>,
    bound_relid: pg_sys::Oid,
    history_relid: pg_sys::Oid,
    machine_version: i32,
}

const LOAD_BINDINGS: &str = "
SELECT b.col::pg_catalog.text, b.machine, m.definition, hn.nspname::pg_catalog.text,
       hc.relname::pg_catalog.text, hc.relowner, b.protect, b.notify, b.tbl::pg_catalog.text,
       (SELECT i.indkey[0] FROM pg_catalog.pg_index i
         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary
           AND i.indnkeyatts OPERATOR(pg_catalog.=) 1),
       b.tbl::pg_catalog.oid, b.history::pg_catalog.oid, m.version
  FROM fsm.binding b
  JOIN fsm.machine m ON m.name OPERATOR(pg_catalog.=) b.machine
  LEFT JOIN pg_catalog.pg_class hc ON hc.oid OPERATOR(pg_catalog.=) b.history::pg_catalog.oid
  LEFT JOIN pg_catalog.pg_namespace hn ON hn.oid OPERATOR(pg_catalog.=) hc.relnamespace
 WHERE b.tbl::pg_catalog.oid OPERATOR(pg_catalog.=)
       COALESCE(pg_catalog.pg_partition_root($1)::pg_catalog.oid, $1)";

impl StoredBinding {
    fn read(row: &Row) -> FsmResult<StoredBinding> {
        let missing = |what: &str| {
            FsmError::new(
                ErrorKind::InvalidTableDefinition,
                format!("fsm.binding holds an unexpected NULL {what}"),
            )
        };
        let definition = row.jsonb(3)?.ok_or_else(|| missing("definition"))?;
        let history = match (row.text(4)?, row.text(5)?, row.oid(6)?) {
            (Some(schema), Some(name), Some(owner)) => Some((
                format!("{}.{}", sql::ident(&schema), sql::ident(&name)),
                owner,
            )),
            _ => None,
        };
        Ok(StoredBinding {
            column: row.text(1)?.ok_or_else(|| missing("column"))?,
            machine_name: row.text(2)?.ok_or_else(|| missing("machine"))?,
            definition: definition.to_value("stored definition")?,
            history,
            protect: row.bool(7)?.ok_or_else(|| missing("protect"))?,
            notify: row.text(8)?,
            table: row.text(9)?.ok_or_else(|| missing("table"))?,
            key_attnum: row.int2(10)?,
            bound_relid: row.oid(11)?.ok_or_else(|| missing("table"))?,
            history_relid: row.oid(12)?.ok_or_else(|| missing("history"))?,
            machine_version: row.int4(13)?.ok_or_else(|| missing("version"))?,
        })
    }
}

/// The bindings of `relid` (a bound table, or a partition of one), in
/// column order, read as they are now.
pub fn load(relid: pg_sys::Oid) -> FsmResult<Vec<Binding>> {
    let stored = connected(|| -> FsmResult<Vec<StoredBinding>> {
        let plan = KeptPlan::prepare(LOAD_BINDINGS, &[pg_sys::OIDOID]);
        plan.read_latest(&[Some(pg_sys::Datum::from(relid))])
            .map(|row| StoredBinding::read(&row))
            .collect()
    })?;
    let mut bindings = stored
        .into_iter()
        .map(|s| build(relid, s))
        .collect::<FsmResult<Vec<_>>>()?;
    bindings.sort_by_key(|b| b.attnum);
    Ok(bindings)
}

/// Checks a stored binding against the table as it is now and compiles it.
fn build(relid: pg_sys::Oid, s: StoredBinding) -> FsmResult<Binding> {
    let broken = |why: String| {
        FsmError::new(
            ErrorKind::InvalidTableDefinition,
            format!(
                "the fsm binding of {}.{} is broken: {why}",
                s.table,
                clip(&s.column)
            ),
        )
        .hint("Detach it with fsm.detach(), fix the table, and attach again.")
    };
    let column_name =
        CString::new(s.column.as_str()).map_err(|_| broken("bad column name".into()))?;
    let attnum_in = |rel: pg_sys::Oid| {
        // SAFETY: a syscache lookup by relation oid and NUL-terminated name.
        let attnum = unsafe { pg_sys::get_attnum(rel, column_name.as_ptr()) };
        if attnum <= 0 {
            return Err(broken(format!(
                "column \"{}\" no longer exists",
                clip(&s.column)
            )));
        }
        Ok(attnum)
    };
    let attnum = attnum_in(relid)?;
    let bound_attnum = attnum_in(s.bound_relid)?;
    let column_type = attribute_type(relid, attnum).0;
    // The trigger reads the column by its type: any other type must never
    // reach it.
    let state_column = StateColumn::of(column_type).ok_or_else(|| {
        broken(format!(
            "column \"{}\" is now of type {}, not {}",
            clip(&s.column),
            sql::qualified_type(column_type, -1),
            crate::state_column::ALLOWED
        ))
    })?;
    let key_attnum = s
        .key_attnum
        .filter(|&k| k > 0)
        .ok_or_else(|| broken("the table no longer has a single-column primary key".into()))?;
    let (key_type, key_typmod, key_collation) = attribute_type(relid, key_attnum);
    // SAFETY: syscache lookup of an existing attribute's name.
    let key_column = unsafe {
        let name = pg_sys::get_attname(relid, key_attnum, false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    };
    let (history_table, history_owner) = s
        .history
        .ok_or_else(|| broken("its history table no longer exists".into()))?;

    let definition =
        Definition::from_json(&s.definition).map_err(|e| stored_invalid(&s.machine_name, &e.0))?;
    let machine = compile(&definition)
        .map_err(|e| stored_invalid(&s.machine_name, &e.0))?
        .machine;
    let events =
        machine
            .events
            .iter()
            .map(|e| EventRuntime {
                guard: e.guard.as_deref().map(|g| {
                    callable::resolve(g, s.bound_relid, Purpose::Guard, &e.name, &s.table)
                }),
                action: e.action.as_deref().map(|a| {
                    callable::resolve(a, s.bound_relid, Purpose::Action, &e.name, &s.table)
                }),
            })
            .collect();
    let (schema_name, relation_name) = relation_names(s.bound_relid);
    let notify = s.notify.map(|channel| NotifyTarget {
        channel,
        // Always schema-qualified, as regclass input reads it back: the
        // same for every listener whatever the writer's search_path.
        table: format!(
            "{}.{}",
            sql::quote_identifier(&schema_name),
            sql::quote_identifier(&relation_name)
        ),
    });
    Ok(Binding {
        relid,
        bound_relid: s.bound_relid,
        schema_name,
        relation_name,
        table_sql: sql::qualified_relation(s.bound_relid)?,
        table: s.table,
        column: s.column,
        state_column,
        attnum,
        bound_attnum,
        key_attnum,
        key: KeyType::of(key_type, key_typmod, key_collation)?,
        machine_name: s.machine_name,
        machine,
        machine_version: s.machine_version,
        history_table,
        history_relid: s.history_relid,
        history_owner,
        history_runs_owner_code: OnceCell::new(),
        protect: s.protect,
        key_column,
        notify,
        events,
        plans: PlanCache::default(),
        insert_history: OnceCell::new(),
        insert_history_rows: OnceCell::new(),
        notify_plan: OnceCell::new(),
    })
}

/// A binding's `notify`: the channel, and the table as its payload names it.
pub struct NotifyTarget {
    pub channel: String,
    pub table: String,
}

/// The schema and name of a live relation, unquoted, from the syscache.
fn relation_names(relid: pg_sys::Oid) -> (String, String) {
    let text = |name: *mut std::ffi::c_char| {
        if name.is_null() {
            return String::new();
        }
        // SAFETY: a NUL-terminated name the syscache just copied.
        unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: syscache lookups by oid; NULL when the object is gone.
    unsafe {
        (
            text(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid))),
            text(pg_sys::get_rel_name(relid)),
        )
    }
}

fn stored_invalid(machine: &str, why: &str) -> FsmError {
    FsmError::new(
        ErrorKind::InvalidDefinition,
        format!(
            "stored definition of machine \"{}\" does not compile: {why}",
            clip(machine)
        ),
    )
}

/// Type, modifier and collation of a live column, from the syscache.
fn attribute_type(relid: pg_sys::Oid, attnum: i16) -> (pg_sys::Oid, i32, pg_sys::Oid) {
    let (mut type_oid, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    // SAFETY: a syscache lookup of an attribute that get_attnum just found
    // (or the primary key's, from pg_index); raises a clean error if gone.
    unsafe {
        pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_oid, &mut typmod, &mut collation)
    };
    (type_oid, typmod, collation)
}
