//! `attach` and `detach`: binding a machine to a table column.
//!
//! Both are for the table's owner (as CREATE TRIGGER is), so an ORM
//! migration run by the application's owner role needs no superuser. After
//! that check, the DDL and the catalog rows are written as the extension's
//! owner; the history table is then given to the table's owner. No other
//! role gets a grant on it: history is read through `fsm.history` and the
//! other read functions, which check SELECT on the table at each call.
//!
//! Attaching creates the binding's history table next to the entity table
//! (append-only), or takes back the one a detach kept, and (re)creates the
//! table's triggers (see `binding::triggers`). A partitioned table is
//! attached as a whole: its row triggers are cloned onto every partition,
//! present and future. A single partition and inheritance trees are
//! refused.

use std::ffi::CStr;

use pgrx::prelude::*;

use crate::binding::{prefix, triggers};
use crate::cache;
use crate::error::{clip, required, ErrorKind, FsmError, FsmResult, NoRowIsNone, SqlResult};
use crate::machine::validate::compile_json;
use crate::machines::{
    check_functions, check_rows_fit, lock_for_attach, stored_definition, unknown_machine,
};
use crate::sql::{self, ident, literal};

struct Target {
    oid: pg_sys::Oid,
    schema: String,
    relname: String,
    /// Schema-qualified and quoted, for SQL.
    sql: String,
    /// `regclass` text, for messages.
    display: String,
    relkind: String,
    owner: pg_sys::Oid,
    /// Whether it is a partition, or an inheritance parent or child.
    partition: bool,
    inherits: bool,
}

/// The table `tbl`, which the current user must own (42501 otherwise).
fn owned_target(tbl: pg_sys::Oid) -> FsmResult<Target> {
    let display = crate::key::datum_text(pg_sys::Datum::from(tbl), pg_sys::REGCLASSOID);
    let target = Spi::connect(|client| -> FsmResult<Option<Target>> {
        let rows = client.select(
            "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text, c.relowner,
                    c.relispartition,
                    EXISTS (SELECT FROM pg_catalog.pg_inherits i
                             WHERE (i.inhrelid OPERATOR(pg_catalog.=) c.oid AND NOT c.relispartition)
                                OR (i.inhparent OPERATOR(pg_catalog.=) c.oid
                                    AND c.relkind OPERATOR(pg_catalog.<>) 'p'::pg_catalog.\"char\"))
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE c.oid OPERATOR(pg_catalog.=) $1",
            None,
            &[tbl.into()],
        )?;
        let row = rows.first();
        let (Ok(Some(schema)), Ok(Some(relname)), Ok(Some(relkind)), Ok(Some(owner))) = (
            row.get::<String>(1),
            row.get::<String>(2),
            row.get::<String>(3),
            row.get::<pg_sys::Oid>(4),
        ) else {
            return Ok(None);
        };
        Ok(Some(Target {
            oid: tbl,
            sql: String::new(),
            schema,
            relname,
            display: display.clone(),
            relkind,
            owner,
            partition: row.get::<bool>(5)?.unwrap_or(false),
            inherits: row.get::<bool>(6)?.unwrap_or(false),
        }))
    })?;
    let Some(mut target) = target else {
        return Err(FsmError::new(
            ErrorKind::UndefinedTable,
            format!("relation with oid {} does not exist", u32::from(tbl)),
        ));
    };
    if !sql::acts_as(target.owner) {
        return Err(FsmError::new(
            ErrorKind::InsufficientPrivilege,
            format!("must be owner of table {display}"),
        )
        .hint("fsm.attach and fsm.detach are for the table's owner, as CREATE TRIGGER is."));
    }
    target.sql = sql::qualified_relation(tbl)?;
    Ok(target)
}

/// Attaches `machine` to `tbl.col` and returns the new history table.
///
/// # Errors
/// 42704 unknown machine; 42809 not a table; 42703 no such column; 42804
/// column not text/varchar; 42P16 no single-column primary key; 42710
/// already attached; 23514 rows in values that are not states; 42883 a
/// guard or action is missing; 42P07 the history table's name is taken.
#[pg_extern(
    volatile,
    sql = "CREATE FUNCTION fsm.attach(tbl regclass, col name, machine text, protect boolean DEFAULT false, notify text DEFAULT NULL)
RETURNS regclass VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'attach_wrapper';"
)]
fn attach(
    tbl: Option<pg_sys::Oid>,
    col: Option<&CStr>,
    machine: Option<&str>,
    protect: Option<bool>,
    notify: Option<&str>,
) -> SqlResult<pg_sys::Oid> {
    let tbl = crate::args::existing_relation(required(tbl, "tbl")?)?;
    let col = required(col, "col")?.to_string_lossy().into_owned();
    let machine = required(machine, "machine")?;
    let protect = required(protect, "protect")?;
    Ok(attach_column(tbl, &col, machine, protect, notify)?)
}

fn attach_column(
    tbl: pg_sys::Oid,
    col: &str,
    machine: &str,
    protect: bool,
    notify: Option<&str>,
) -> FsmResult<pg_sys::Oid> {
    let t = owned_target(tbl)?;
    if t.partition {
        // Its parent's bindings already reach it through cloned triggers;
        // a binding of its own would check and record its rows twice.
        return Err(FsmError::new(
            ErrorKind::FeatureNotSupported,
            format!("\"{}\" is a partition", t.display),
        )
        .hint("Attach the machine to the partitioned table: its partitions, present and future, are covered."));
    }
    if t.inherits {
        // Row triggers are not inherited: UPDATEs of child rows through
        // the parent would go unchecked.
        return Err(FsmError::new(
            ErrorKind::FeatureNotSupported,
            format!(
                "\"{}\" is part of an inheritance tree, which fsm does not cover",
                t.display
            ),
        )
        .hint("Use declarative partitioning, which fsm covers as a whole."));
    }
    if t.relkind != "r" && t.relkind != "p" {
        return Err(FsmError::new(
            ErrorKind::WrongObjectType,
            format!("\"{}\" is not a table", t.display),
        ));
    }
    if let Some(channel) = notify {
        if channel.is_empty() || channel.len() > 63 || channel.contains('\0') {
            return Err(FsmError::new(
                ErrorKind::InvalidParameter,
                "notify must be a channel name of 1 to 63 bytes",
            ));
        }
    }
    lock_for_attach(machine)?;
    let definition = stored_definition(machine).map_err(|_| unknown_machine(machine))?;
    let (_, compiled) = compile_json(&definition).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("machine \"{}\": {e}", clip(machine)),
        )
    })?;

    // No row may change between the checks below and the triggers' creation.
    Spi::run(&format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", t.sql))?;

    let column_type = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT a.atttypid FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        &[tbl.into(), col.into()],
    )
    .no_row_is_none()?
    .ok_or_else(|| {
        FsmError::new(
            ErrorKind::UndefinedColumn,
            format!(
                "column \"{}\" of relation \"{}\" does not exist",
                clip(col),
                t.display
            ),
        )
    })?;
    if crate::state_column::StateColumn::of(column_type).is_none() {
        return Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "column \"{col}\" of \"{}\" is of type {}, not {}",
                t.display,
                sql::qualified_type(column_type, -1),
                crate::state_column::ALLOWED
            ),
        ));
    }
    // The triggers fire only when the state IS DISTINCT FROM the old one,
    // compared under the column's collation: a case-insensitive one would
    // let 'draft' become 'Draft' unseen.
    // So would a key's: 'Key1' and 'key1' would be one row to fire and
    // two entities to the history, whose entity_key compares bytes.
    let nondeterministic = Spi::get_two_with_args::<String, String>(
        "SELECT a.attname::pg_catalog.text, co.collname::pg_catalog.text
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_collation co ON co.oid OPERATOR(pg_catalog.=) a.attcollation
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND NOT co.collisdeterministic
            AND (a.attname OPERATOR(pg_catalog.=) $2
                 OR a.attnum OPERATOR(pg_catalog.=) ANY (SELECT i.indkey[0] FROM pg_catalog.pg_index i
                                                          WHERE i.indrelid OPERATOR(pg_catalog.=) $1
                                                            AND i.indisprimary))
          ORDER BY a.attnum LIMIT 1",
        &[tbl.into(), col.into()],
    )
    .ok();
    if let Some((Some(column), Some(collation))) = nondeterministic {
        return Err(FsmError::new(
            ErrorKind::FeatureNotSupported,
            format!(
                "column \"{}\" of \"{}\" has the nondeterministic collation \"{}\"",
                clip(&column),
                t.display,
                clip(&collation)
            ),
        )
        .detail("States and keys are compared byte for byte; under this collation two different values could compare equal: a change go unseen, or one entity's history split.")
        .hint("Give the column a deterministic collation (ALTER TABLE … ALTER COLUMN … TYPE text COLLATE \"C\"), then attach."));
    }
    let key = Spi::get_two_with_args::<pg_sys::Oid, i32>(
        "SELECT a.atttypid, a.atttypmod
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                                         AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
          WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary
            AND i.indnkeyatts OPERATOR(pg_catalog.=) 1",
        &[tbl.into()],
    )
    .ok()
    .and_then(|(t, m)| Some((t?, m?)))
    .ok_or_else(|| {
        FsmError::new(ErrorKind::InvalidTableDefinition, format!("\"{}\" has no single-column primary key", t.display))
            .hint("fsm keys history by the primary key: add one, e.g. ALTER TABLE … ADD PRIMARY KEY (id).")
    })?;
    // An array key (or a domain over one) cannot be bound as one parameter
    // of its type in the statements that read many keys at once (they take
    // arrays of keys).
    // SAFETY: syscache lookups of a type.
    if unsafe { pg_sys::get_element_type(pg_sys::getBaseType(key.0)) } != pg_sys::InvalidOid {
        return Err(FsmError::new(
            ErrorKind::FeatureNotSupported,
            format!(
                "the primary key of \"{}\" is of an array type, {}",
                t.display,
                sql::qualified_type(key.0, key.1)
            ),
        )
        .hint("Key the table by a scalar column (a surrogate id, say)."));
    }
    let key_type = sql::qualified_type(key.0, key.1);
    let attached = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM fsm.binding b WHERE b.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1
                                                 AND b.col OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
        &[tbl.into(), col.into()],
    )?
    .unwrap_or(false);
    if attached {
        return Err(FsmError::new(
            ErrorKind::DuplicateObject,
            format!("a machine is already attached to {}.{}", t.display, clip(col)),
        )
        .hint("Detach it first, or replace the machine's definition with fsm.create_machine(…, replace => true)."));
    }
    check_rows_fit(tbl, col, &compiled, machine)?;
    check_functions(tbl, &compiled)?;

    let history_name = format!("{}_{}_history", prefix(&t.relname, 28), prefix(col, 24));
    // A history a detach kept (same name, fsm's append-only trigger, the
    // key type, no binding) is taken back: re-attaching continues it. It
    // may be partitioned ('p'): a table cannot become partitioned in place,
    // so partitioning a history by id range (docs/operations.md) detaches,
    // puts a partitioned table of the same name in its place and attaches
    // again. Its writes then take the INSERT (src/history_insert.rs).
    // Only a history the table's owner owns, partitions included, is taken
    // back: another role's table of that name (made where the caller may
    // create, or kept after that role's own detach) would be handed over
    // with its rows.
    let (taken, kept, owned) = Spi::get_three_with_args::<bool, bool, bool>(
        "SELECT c.oid IS NOT NULL,
                (c.relkind OPERATOR(pg_catalog.=) 'r'::pg_catalog.\"char\"
                 OR c.relkind OPERATOR(pg_catalog.=) 'p'::pg_catalog.\"char\")
                AND EXISTS (SELECT FROM pg_catalog.pg_trigger g
                             WHERE g.tgrelid OPERATOR(pg_catalog.=) c.oid
                               AND g.tgfoid OPERATOR(pg_catalog.=) 'fsm.refuse_history_change()'::pg_catalog.regprocedure)
                AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) 'entity_key'
                               AND a.atttypid OPERATOR(pg_catalog.=) $3 AND NOT a.attisdropped
                               AND (a.atttypmod OPERATOR(pg_catalog.=) $5
                                    OR a.atttypmod OPERATOR(pg_catalog.=) -1))
                AND NOT EXISTS (SELECT FROM fsm.binding b WHERE b.history::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid),
                c.relowner OPERATOR(pg_catalog.=) $4
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(c.oid) p
                              JOIN pg_catalog.pg_class pc ON pc.oid OPERATOR(pg_catalog.=) p.relid
                             WHERE pc.relowner OPERATOR(pg_catalog.<>) $4)
           FROM (SELECT) AS one
           LEFT JOIN (pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace)
                  ON n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name
                 AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
        &[
            t.schema.as_str().into(),
            history_name.as_str().into(),
            key.0.into(),
            t.owner.into(),
            key.1.into(),
        ],
    )?;
    let (taken, kept) = (taken.unwrap_or(false), kept.unwrap_or(false));
    if kept && !owned.unwrap_or(false) {
        return Err(FsmError::new(
            ErrorKind::InsufficientPrivilege,
            format!(
                "the kept history table {}.{history_name} is not owned by the owner of {}",
                t.schema, t.display
            ),
        )
        .detail("A kept history is taken back only when the table's owner owns it, and every partition of it.")
        .hint("Have its owner give it to the table's owner (ALTER TABLE … OWNER TO), or drop or rename it, then attach again."));
    }
    if taken && !kept {
        return Err(FsmError::new(
            ErrorKind::DuplicateTable,
            format!(
                "the history table name {}.{history_name} is taken",
                t.schema
            ),
        )
        .hint("Rename or drop that relation, then attach again."));
    }
    let history = format!("{}.{}", ident(&t.schema), ident(&history_name));
    let create = format!(
        "CREATE TABLE {history} (
            id pg_catalog.uuid PRIMARY KEY,
            entity_key {key_type} NOT NULL,
            event pg_catalog.text,
            from_state pg_catalog.text,
            to_state pg_catalog.text NOT NULL,
            payload pg_catalog.jsonb,
            actor pg_catalog.text,
            db_user pg_catalog.text NOT NULL DEFAULT CURRENT_USER,
            machine_version pg_catalog.int4,
            idempotency_key pg_catalog.text
         );
         CREATE INDEX ON {history} (entity_key, id) INCLUDE (event);
         CREATE UNIQUE INDEX ON {history} (idempotency_key) WHERE idempotency_key IS NOT NULL;
         CREATE TRIGGER fsm_append_only BEFORE UPDATE OR DELETE ON {history}
             FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
         CREATE TRIGGER fsm_append_only_truncate BEFORE TRUNCATE ON {history}
             FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
         COMMENT ON TABLE {history} IS {comment};",
        comment = literal(&format!(
            "fsm history of {}.{col} (machine {machine}): append-only",
            t.display
        ))?,
    );
    let own = format!(
        "ALTER TABLE {history} OWNER TO {owner}; REVOKE ALL ON {history} FROM PUBLIC;",
        owner = ident(&sql::role_name(t.owner)),
    );
    let ddl = if kept { own } else { create + &own };
    let extension_owner = sql::extension_owner()?;
    let history_oid = sql::ddl_as(extension_owner, || -> FsmResult<pg_sys::Oid> {
        Spi::run(&ddl)?;
        let history_oid = Spi::get_one_with_args::<pg_sys::Oid>(
            "SELECT c.oid FROM pg_catalog.pg_class c
              WHERE c.relnamespace OPERATOR(pg_catalog.=) $1
                AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
            &[namespace_of(t.oid).into(), history_name.as_str().into()],
        )?
        .ok_or_else(|| {
            FsmError::new(
                ErrorKind::UndefinedTable,
                "the history table just created is missing",
            )
        })?;
        Spi::run_with_args(
            "INSERT INTO fsm.binding (tbl, col, machine, history, protect, notify) VALUES ($1, $2, $3, $4, $5, $6)",
            &[tbl.into(), col.into(), machine.into(), history_oid.into(), protect.into(), notify.into()],
        )?;
        Spi::run(&table_triggers(tbl, &t.sql)?)?;
        Ok(history_oid)
    })?;
    cache::invalidate(tbl)?;
    Ok(history_oid)
}

/// DDL that (re)creates the triggers of a table for the bindings it has
/// now (none: drops them). One set serves every bound column; its WHEN
/// clauses name the columns, and PostgreSQL keeps them by number, so they
/// follow renames.
fn table_triggers(tbl: pg_sys::Oid, table_sql: &str) -> FsmResult<String> {
    let (columns, existing) = Spi::connect(|client| -> FsmResult<(Vec<String>, Vec<String>)> {
        let mut columns = Vec::new();
        for row in client.select(
            "SELECT b.col::pg_catalog.text FROM fsm.binding b
              WHERE b.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1 ORDER BY 1",
            None,
            &[tbl.into()],
        )? {
            columns.extend(row.get::<String>(1)?);
        }
        let mut existing = Vec::new();
        for row in client.select(
            "SELECT g.tgname::pg_catalog.text FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid OPERATOR(pg_catalog.=) $1 AND NOT g.tgisinternal
                AND g.tgname OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.name[])",
            None,
            &[tbl.into(), triggers::ALL.to_vec().into()],
        )? {
            existing.extend(row.get::<String>(1)?);
        }
        Ok((columns, existing))
    })?;
    let mut ddl: String = existing
        .iter()
        .map(|name| format!("DROP TRIGGER {} ON {table_sql};", ident(name)))
        .collect();
    if columns.is_empty() {
        return Ok(ddl);
    }
    let any = |each: &dyn Fn(&str) -> String| {
        columns
            .iter()
            .map(|c| each(&ident(c)))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    ddl.push_str(&format!(
        "CREATE TRIGGER {fill} BEFORE INSERT ON {table_sql}
             FOR EACH ROW WHEN ({null}) EXECUTE FUNCTION fsm.enforce();
         CREATE TRIGGER {inserted} AFTER INSERT ON {table_sql}
             FOR EACH ROW EXECUTE FUNCTION fsm.enforce();
         CREATE TRIGGER {updated} AFTER UPDATE ON {table_sql}
             FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION fsm.enforce();",
        fill = ident(triggers::FILL),
        inserted = ident(triggers::INSERTED),
        updated = ident(triggers::UPDATED),
        null = any(&|c| format!("NEW.{c} IS NULL")),
        changed = any(&|c| format!("OLD.{c} IS DISTINCT FROM NEW.{c}")),
    ));
    // A partitioned table: a key change may move the row between
    // partitions. No WHEN on the key column, which would forbid changing
    // the key's type (PostgreSQL refuses to alter a column a trigger uses).
    // SAFETY: a syscache lookup of a live relation.
    if unsafe { pg_sys::get_rel_relkind(tbl) }
        == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char
    {
        ddl.push_str(&format!(
            "CREATE TRIGGER {name} BEFORE UPDATE ON {table_sql}
                 FOR EACH ROW EXECUTE FUNCTION fsm.enforce();",
            name = ident(triggers::KEY),
        ));
    }
    Ok(ddl)
}

fn namespace_of(relid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of a live relation.
    unsafe { pg_sys::get_rel_namespace(relid) }
}

/// Detaches the machine from `tbl.col`: drops its triggers and binding, and
/// with `drop_history` its history table.
///
/// # Errors
/// 42704 when no machine is attached to that column.
#[pg_extern(
    volatile,
    sql = "CREATE FUNCTION fsm.detach(tbl regclass, col name, drop_history boolean DEFAULT false)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'detach_wrapper';"
)]
fn detach(
    tbl: Option<pg_sys::Oid>,
    col: Option<&CStr>,
    drop_history: Option<bool>,
) -> SqlResult<()> {
    let tbl = crate::args::existing_relation(required(tbl, "tbl")?)?;
    let col = required(col, "col")?.to_string_lossy().into_owned();
    let drop_history = required(drop_history, "drop_history")?;
    let t = owned_target(tbl)?;
    let extension_owner = sql::extension_owner()?;
    sql::ddl_as(extension_owner, || -> FsmResult<()> {
        let history = Spi::get_one_with_args::<pg_sys::Oid>(
            "DELETE FROM fsm.binding b WHERE b.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1
                AND b.col OPERATOR(pg_catalog.=) $2::pg_catalog.name
             RETURNING b.history::pg_catalog.oid",
            &[tbl.into(), col.as_str().into()],
        )
        .no_row_is_none()?
        .ok_or_else(|| {
            FsmError::new(
                ErrorKind::UndefinedObject,
                format!("no machine is attached to {}.{}", t.display, clip(&col)),
            )
            .hint("See SELECT * FROM fsm.bindings.")
        })?;
        let mut ddl = table_triggers(tbl, &t.sql)?;
        if drop_history && crate::args::relation_exists(history) {
            ddl.push_str(&format!(
                "DROP TABLE {};",
                sql::qualified_relation(history)?
            ));
        }
        Spi::run(&ddl)?;
        Ok(())
    })?;
    cache::invalidate(tbl)?;
    Ok(())
}
