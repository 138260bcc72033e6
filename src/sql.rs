//! What every piece of SQL the extension builds or runs relies on: names
//! quoted and schema-qualified from the catalog, and the identity a
//! statement runs as.
//!
//! Nothing here resolves a name through the caller's `search_path`: a role
//! that can create objects in `public` or `pg_temp` must never have them
//! picked up by the extension's own SQL (CVE-2018-1058). Values are never
//! pasted into SQL: they are bound parameters.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::{ErrorKind, FsmError, FsmResult};

/// An identifier double-quoted, doubling the quote inside, as PostgreSQL's
/// `quote_ident` does when quoting is needed.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `s` as PostgreSQL's `quote_ident` writes it: quoted only where it must
/// be (`orders`, `"Orders"`, `"order"`), as `regclass` output quotes names.
pub fn quote_identifier(s: &str) -> String {
    let Ok(c) = std::ffi::CString::new(s) else {
        // Catalog names never hold NUL; quote such a string ourselves.
        return ident(s);
    };
    // SAFETY: quote_identifier reads a NUL-terminated string and returns
    // it or a palloc'd quoted copy, which is copied out at once.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr()))
            .to_string_lossy()
            .into_owned()
    }
}

/// `"schema"."relation"` of a relation, read from the syscache.
pub fn qualified_relation(relid: pg_sys::Oid) -> FsmResult<String> {
    // SAFETY: syscache lookups by oid; both return NULL when missing.
    let (schema, name) = unsafe {
        let name = pg_sys::get_rel_name(relid);
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        (schema, name)
    };
    if schema.is_null() || name.is_null() {
        return Err(FsmError::new(
            ErrorKind::UndefinedTable,
            format!("relation with oid {} does not exist", u32::from(relid)),
        ));
    }
    // SAFETY: both are NUL-terminated strings just returned by the syscache.
    let (schema, name) = unsafe { (CStr::from_ptr(schema), CStr::from_ptr(name)) };
    Ok(format!(
        "{}.{}",
        ident(&schema.to_string_lossy()),
        ident(&name.to_string_lossy())
    ))
}

/// A type's name, always schema-qualified, with its modifier (`-1` for
/// none): safe to paste after `::` whatever the `search_path`.
pub fn qualified_type(type_oid: pg_sys::Oid, typmod: i32) -> String {
    // SAFETY: format_type_extended returns a palloc'd NUL-terminated string
    // (`???` for a type that does not exist, which then fails to parse).
    unsafe {
        let text = pg_sys::format_type_extended(
            type_oid,
            typmod,
            (pg_sys::FORMAT_TYPE_FORCE_QUALIFY | pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN) as u16,
        );
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

/// The current user.
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: reads the backend's current identity.
    unsafe { pg_sys::GetUserId() }
}

/// Whether the current user has the rights of `owner` (is it, a member
/// of it, or a superuser), as PostgreSQL's own ownership checks say.
pub fn acts_as(owner: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups of roles by oid.
    unsafe { pg_sys::has_privs_of_role(current_user(), owner) }
}

/// Whether the current user may SELECT `column` of `relid` (the whole
/// table, or that column), whatever row it is: never where row level
/// security applies to the user, as PostgreSQL's own errors leave out a
/// row's values then. For messages that would quote a table's values.
pub fn may_select_column(relid: pg_sys::Oid, column: &str) -> bool {
    if crate::read::row_security_applies(relid) {
        return false;
    }
    let user = current_user();
    let mode = pg_sys::ACL_SELECT as pg_sys::AclMode;
    let Ok(name) = std::ffi::CString::new(column) else {
        return false;
    };
    // SAFETY: ACL and attribute lookups by oid and name of a live relation.
    unsafe {
        if pg_sys::pg_class_aclcheck(relid, user, mode) == pg_sys::AclResult::ACLCHECK_OK {
            return true;
        }
        let attnum = pg_sys::get_attnum(relid, name.as_ptr());
        attnum > 0
            && pg_sys::pg_attribute_aclcheck(relid, attnum, user, mode)
                == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// A role's name, for messages.
pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: with noerr, returns NULL for a missing role.
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        return format!("role with oid {}", u32::from(role));
    }
    // SAFETY: a NUL-terminated palloc'd name.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// How a statement run as another role is restricted.
#[derive(Clone, Copy)]
pub enum Restrict {
    /// `SECURITY_RESTRICTED_OPERATION`: no SET ROLE, no temporary objects,
    /// as for PostgreSQL's own maintenance commands. For DML.
    Restricted,
    /// Only the user id changes: DDL (attach, detach) needs more than a
    /// restricted operation allows.
    UserOnly,
}

/// Runs `f` as `user`, restoring the caller's identity afterwards. On an
/// ERROR, PostgreSQL's (sub)transaction abort restores it.
pub fn as_user<R>(user: pg_sys::Oid, restrict: Restrict, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    let extra = match restrict {
        Restrict::Restricted => {
            pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION
        }
        Restrict::UserOnly => pg_sys::SECURITY_LOCAL_USERID_CHANGE,
    } as i32;
    // SAFETY: plain reads and writes of the backend's current identity.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(user, saved_context | extra);
    }
    let result = f();
    // SAFETY: restores exactly what was read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

/// Runs `f` with `search_path` set to `pg_catalog, pg_temp`, restoring the
/// caller's afterwards (as a `SET` clause of a function does). For DDL that
/// PostgreSQL parses with the session's path and stores: a trigger's `WHEN
/// (OLD.c IS DISTINCT FROM NEW.c)` resolves its `=` when it is created, and
/// must never pick up an operator someone planted in `public`.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: a GUC nest level opened and closed around `f`; on an ERROR,
    // (sub)transaction abort restores the setting.
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    let result = f();
    // SAFETY: closes the level opened above, restoring the caller's path.
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    result
}

/// Runs a table's code (`f`) as its owner, as PostgreSQL's maintenance
/// commands do: a security-restricted operation with `search_path` pinned,
/// so nothing the caller planted on its own path runs with the owner's
/// rights.
pub fn as_table_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    as_user(owner, Restrict::Restricted, || with_pinned_search_path(f))
}

/// Runs `f` as the history table's owner: with `search_path` pinned when
/// the table has code of its owner's that the work would run
/// (`history_insert::runs_owner_code`), as a plain restricted operation
/// otherwise, which costs less and plans as before.
pub fn as_history_owner<R>(b: &crate::binding::Binding, f: impl FnOnce() -> R) -> R {
    let code = *b
        .history_runs_owner_code
        .get_or_init(|| crate::history_insert::runs_owner_code(b.history_relid));
    if code {
        as_table_owner(b.history_owner, f)
    } else {
        as_user(b.history_owner, Restrict::Restricted, f)
    }
}

/// Runs DDL `f` as `user` with a pinned `search_path` (see
/// [`with_pinned_search_path`]).
pub fn ddl_as<R>(user: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    as_user(user, Restrict::UserOnly, || with_pinned_search_path(f))
}

/// The role that owns the extension (the superuser who created it): the
/// extension's catalog and DDL are written as that role, after the
/// caller's own rights were checked.
pub fn extension_owner() -> FsmResult<pg_sys::Oid> {
    let owner = pgrx::Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e \
          WHERE e.extname OPERATOR(pg_catalog.=) 'fsm'::pg_catalog.name",
    )?;
    owner.ok_or_else(|| {
        FsmError::new(
            ErrorKind::UndefinedObject,
            "extension \"fsm\" is not installed",
        )
    })
}

/// A string as an SQL literal, quoted by PostgreSQL's own `quote_literal`
/// (which writes an `E''` literal where backslashes need it, so the result
/// is right whatever `standard_conforming_strings` says). Only for DDL,
/// where values cannot be bound parameters.
pub fn literal(s: &str) -> FsmResult<String> {
    pgrx::Spi::get_one_with_args::<String>("SELECT pg_catalog.quote_literal($1)", &[s.into()])?
        .ok_or_else(|| FsmError::new(ErrorKind::InvalidParameter, "quote_literal returned NULL"))
}

#[cfg(test)]
mod unit_tests {
    #[test]
    fn identifiers_double_their_quotes() {
        assert_eq!(super::ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(super::ident("x; DROP TABLE y"), r#""x; DROP TABLE y""#);
    }
}
