//! `attach` and `detach`: binding a machine to a table column.
//!
//! Attaching creates the binding's history table next to the entity table
//! (owned by the table's owner, append-only, readable by whoever may read
//! the entity table) and two triggers on the entity table. Both triggers are
//! named `zz_fsm_…` because PostgreSQL fires BEFORE triggers in name order:
//! ours run last and so check the value that is actually written.

use std::ffi::CStr;

use pgrx::prelude::*;

use crate::catalog;
use crate::error::{required, ErrorKind, FsmError, FsmResult, NoRowIsNone, SqlResult};
use crate::machine::validate::compile_json;
use crate::machines::{check_functions, check_rows_fit, stored_definition, unknown_machine};
use crate::quote::{ident as quote_ident, literal as quote_literal};

/// The first `max` bytes of `s`, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Trigger names derived from the column (PostgreSQL names hold 63 bytes).
/// The triggers `attach` creates for a column: BEFORE INSERT and BEFORE
/// UPDATE row triggers, and the AFTER UPDATE statement trigger that
/// appends the history rows the UPDATE held back (see `pending`).
pub(crate) struct TriggerNames {
    pub insert: String,
    pub update: String,
    pub flush: String,
}

pub(crate) fn trigger_names(column: &str) -> TriggerNames {
    let c = prefix(column, 40);
    TriggerNames {
        insert: format!("zz_fsm_{c}_insert"),
        update: format!("zz_fsm_{c}_update"),
        flush: format!("zz_fsm_{c}_flush"),
    }
}

struct Target {
    schema: String,
    relname: String,
    /// `regclass` text, for messages.
    display: String,
    relkind: String,
}

fn target(tbl: pg_sys::Oid) -> FsmResult<Target> {
    let row = Spi::get_three_with_args::<String, String, String>(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = $1",
        &[tbl.into()],
    )?;
    match row {
        (Some(schema), Some(relname), Some(relkind)) => {
            let display =
                Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[tbl.into()])?
                    .unwrap_or_default();
            Ok(Target {
                schema,
                relname,
                display,
                relkind,
            })
        }
        _ => Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!("relation with oid {tbl:?} does not exist"),
        )),
    }
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
    let tbl = required(tbl, "tbl")?;
    let col = required(col, "col")?.to_string_lossy().into_owned();
    let machine = required(machine, "machine")?;
    Ok(attach_column(
        tbl,
        &col,
        machine,
        protect.unwrap_or(false),
        notify,
    )?)
}

fn attach_column(
    tbl: pg_sys::Oid,
    col: &str,
    machine: &str,
    protect: bool,
    notify: Option<&str>,
) -> FsmResult<pg_sys::Oid> {
    let t = target(tbl)?;
    if t.relkind != "r" && t.relkind != "p" {
        return Err(FsmError::new(
            ErrorKind::WrongObjectType,
            format!("\"{}\" is not a table", t.display),
        ));
    }
    if let Some(channel) = notify {
        if channel.is_empty() || channel.len() > 63 {
            return Err(FsmError::new(
                ErrorKind::InvalidParameter,
                "notify must be a channel name of 1 to 63 bytes",
            ));
        }
    }
    let definition = stored_definition(machine).map_err(|_| unknown_machine(machine))?;
    let (_, compiled) = compile_json(&definition).map_err(|e| {
        FsmError::new(
            ErrorKind::InvalidDefinition,
            format!("machine \"{machine}\": {e}"),
        )
    })?;

    // No row may change between the checks below and the triggers' creation.
    Spi::run(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        t.display
    ))?;

    let column_type = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[tbl.into(), col.into()],
    )
    .no_row_is_none()?
    .ok_or_else(|| {
        FsmError::new(ErrorKind::UndefinedColumn, format!("column \"{col}\" of relation \"{}\" does not exist", t.display))
    })?;
    if column_type != pg_sys::TEXTOID && column_type != pg_sys::VARCHAROID {
        return Err(FsmError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "column \"{col}\" of \"{}\" is of type {}, not text or varchar",
                t.display,
                crate::catalog::datum_text(pg_sys::Datum::from(column_type), pg_sys::REGTYPEOID)
            ),
        ));
    }
    let key_type = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = $1 AND i.indisprimary AND i.indnkeyatts = 1",
        &[tbl.into()],
    )
    .no_row_is_none()?
    .ok_or_else(|| {
        FsmError::new(ErrorKind::InvalidTableDefinition, format!("\"{}\" has no single-column primary key", t.display))
            .hint("fsm keys history by the primary key: add one, e.g. ALTER TABLE … ADD PRIMARY KEY (id).")
    })?;
    let attached = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM fsm.binding WHERE tbl = $1 AND col = $2)",
        &[tbl.into(), col.into()],
    )?
    .unwrap_or(false);
    if attached {
        return Err(FsmError::new(
            ErrorKind::DuplicateObject,
            format!("a machine is already attached to {}.{col}", t.display),
        )
        .hint("Detach it first, or replace the machine's definition with fsm.create_machine(…, replace => true)."));
    }
    check_rows_fit(tbl, col, &compiled, machine)?;
    check_functions(tbl, &compiled)?;

    let history_name = format!("{}_{}_history", prefix(&t.relname, 28), prefix(col, 24));
    let taken = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND c.relname = $2)",
        &[t.schema.as_str().into(), history_name.as_str().into()],
    )?
    .unwrap_or(false);
    if taken {
        return Err(FsmError::new(
            ErrorKind::DuplicateTable,
            format!(
                "the history table name {}.{history_name} is taken",
                t.schema
            ),
        )
        .hint("Rename or drop that relation, then attach again."));
    }
    let history = format!("{}.{}", quote_ident(&t.schema), quote_ident(&history_name));
    let triggers = trigger_names(col);
    let quoted_col = quote_ident(col);
    let ddl = format!(
        "CREATE TABLE {history} (
            id uuid PRIMARY KEY,
            entity_key {key_type} NOT NULL,
            event text,
            from_state text,
            to_state text NOT NULL,
            payload jsonb,
            actor text,
            db_user text NOT NULL DEFAULT current_user
         );
         CREATE INDEX ON {history} (entity_key, id) INCLUDE (event);
         CREATE TRIGGER fsm_append_only BEFORE UPDATE OR DELETE ON {history}
             FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
         CREATE TRIGGER fsm_append_only_truncate BEFORE TRUNCATE ON {history}
             FOR EACH STATEMENT EXECUTE FUNCTION fsm.refuse_history_change();
         COMMENT ON TABLE {history} IS {comment};
         CREATE TRIGGER {insert_trigger} BEFORE INSERT ON {table}
             FOR EACH ROW EXECUTE FUNCTION fsm.enforce({col_literal});
         CREATE TRIGGER {update_trigger} BEFORE UPDATE OF {quoted_col} ON {table}
             FOR EACH ROW WHEN (OLD.{quoted_col} IS DISTINCT FROM NEW.{quoted_col})
             EXECUTE FUNCTION fsm.enforce({col_literal});
         CREATE TRIGGER {flush_trigger} AFTER UPDATE OF {quoted_col} ON {table}
             FOR EACH STATEMENT EXECUTE FUNCTION fsm.enforce({col_literal});",
        insert_trigger = quote_ident(&triggers.insert),
        update_trigger = quote_ident(&triggers.update),
        flush_trigger = quote_ident(&triggers.flush),
        table = t.display,
        col_literal = quote_literal(col),
        comment = quote_literal(&format!(
            "fsm history of {}.{col} (machine {machine}): append-only",
            t.display
        )),
    );
    Spi::run(&ddl)?;
    let history_oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT $1::regclass::oid",
        &[history.as_str().into()],
    )?
    .expect("history table just created");
    share_owner_and_readers(tbl, &history)?;
    Spi::run_with_args(
        "INSERT INTO fsm.binding (tbl, col, machine, history, protect, notify) VALUES ($1, $2, $3, $4, $5, $6)",
        &[tbl.into(), col.into(), machine.into(), history_oid.into(), protect.into(), notify.into()],
    )?;
    catalog::invalidate(tbl);
    Ok(history_oid)
}

/// The history table belongs to the entity table's owner (who writes it
/// through the trigger), and whoever may SELECT the entity table may SELECT
/// its history.
fn share_owner_and_readers(tbl: pg_sys::Oid, history: &str) -> FsmResult<()> {
    let owner = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(relowner)) FROM pg_catalog.pg_class WHERE oid = $1",
        &[tbl.into()],
    )?
    .unwrap_or_default();
    Spi::run(&format!("ALTER TABLE {history} OWNER TO {owner}"))?;
    let readers = Spi::connect(|client| -> FsmResult<Vec<String>> {
        let rows = client.select(
            "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
               FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid = $1 AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner",
            None,
            &[tbl.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            if let Some(r) = row.get::<String>(1)? {
                out.push(r);
            }
        }
        Ok(out)
    })?;
    for reader in readers {
        Spi::run(&format!("GRANT SELECT ON {history} TO {reader}"))?;
    }
    Ok(())
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
    let tbl = required(tbl, "tbl")?;
    let col = required(col, "col")?.to_string_lossy().into_owned();
    let t = target(tbl)?;
    let history = Spi::get_one_with_args::<String>(
        "DELETE FROM fsm.binding WHERE tbl = $1 AND col = $2 RETURNING history::text",
        &[tbl.into(), col.as_str().into()],
    )
    .no_row_is_none()?
    .ok_or_else(|| {
        FsmError::new(
            ErrorKind::UndefinedObject,
            format!("no machine is attached to {}.{col}", t.display),
        )
        .hint("See SELECT * FROM fsm.bindings.")
    })?;
    let triggers = trigger_names(&col);
    let mut ddl = format!(
        "DROP TRIGGER IF EXISTS {} ON {table}; DROP TRIGGER IF EXISTS {} ON {table}; \
         DROP TRIGGER IF EXISTS {} ON {table};",
        quote_ident(&triggers.insert),
        quote_ident(&triggers.update),
        quote_ident(&triggers.flush),
        table = t.display
    );
    if drop_history.unwrap_or(false) {
        ddl.push_str(&format!("DROP TABLE {history};"));
    }
    Spi::run(&ddl).map_err(FsmError::from)?;
    catalog::invalidate(tbl);
    Ok(())
}
