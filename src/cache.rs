//! The per-backend cache of bindings, keyed by the oid of the relation
//! the triggers fire on (a bound table or one of its partitions), and its
//! invalidation.
//!
//! A relation's entries are dropped whenever its relcache entry is
//! invalidated. PostgreSQL sends that invalidation to every backend when the
//! table is altered or renamed, when triggers are created or dropped
//! (attach, detach), and when `create_machine(replace => true)` asks for
//! it on each bound table and its partitions (`invalidate`). Renaming a
//! history table invalidates the history table, and renaming a schema only
//! its namespace entry: both drop what named them. Entries still in use up
//! the stack stay alive through their `Rc`.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;
use rustc_hash::FxHashMap;

use crate::binding::{self, Binding};
use crate::error::{ErrorKind, FsmError, FsmResult};

pub type TableBindings = Rc<Vec<Rc<Binding>>>;

thread_local! {
    static BY_RELATION: RefCell<FxHashMap<pg_sys::Oid, TableBindings>> = RefCell::new(FxHashMap::default());
}

/// Registers the callbacks that empty the cache; once per backend.
pub fn register_invalidation() {
    // SAFETY: the callbacks are plain functions that never raise.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
            Some(on_namespace_invalidation),
            pg_sys::Datum::from(0),
        );
    }
}

/// Forgets what we know of `relid` (or of everything, for InvalidOid),
/// including the bindings whose history table it is.
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    forget(|b| relid == pg_sys::InvalidOid || b.relid == relid || b.history_relid == relid);
}

/// A schema renamed (or dropped): the quoted names we keep may be stale.
unsafe extern "C-unwind" fn on_namespace_invalidation(
    _arg: pg_sys::Datum,
    _cache: i32,
    _hash: u32,
) {
    forget(|_| true);
}

fn forget(stale: impl Fn(&Binding) -> bool) {
    let _ = BY_RELATION.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.retain(|_, bindings| !bindings.iter().any(|b| stale(b)));
        }
    });
    // An unbound relation's empty entry has no binding to test: drop those
    // on any invalidation, they are one lookup to rebuild.
    let _ = BY_RELATION.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.retain(|_, bindings| !bindings.is_empty());
        }
    });
}

/// Asks every backend to reload the bindings of `relid` and of its
/// partitions at their next use.
pub fn invalidate(relid: pg_sys::Oid) -> FsmResult<()> {
    let mut members = vec![relid];
    pgrx::Spi::connect(|client| -> FsmResult<()> {
        for row in client.select(
            "SELECT t.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) t
              WHERE t.relid::pg_catalog.oid OPERATOR(pg_catalog.<>) $1",
            None,
            &[relid.into()],
        )? {
            members.extend(row.get::<pg_sys::Oid>(1)?);
        }
        Ok(())
    })?;
    for member in members {
        // SAFETY: queues a transactional invalidation message.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(member) };
    }
    Ok(())
}

/// The bindings seen from a relation (empty when nothing is attached to
/// it or to the partitioned table it belongs to).
pub fn table_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    if let Some(found) = BY_RELATION.with(|m| m.borrow().get(&relid).cloned()) {
        return Ok(found);
    }
    let loaded: TableBindings = Rc::new(binding::load(relid)?.into_iter().map(Rc::new).collect());
    BY_RELATION.with(|m| m.borrow_mut().insert(relid, loaded.clone()));
    Ok(loaded)
}

/// The bindings of a table that must have some: 42704 when none is attached.
pub fn attached_bindings(relid: pg_sys::Oid) -> FsmResult<TableBindings> {
    let bindings = table_bindings(relid)?;
    if bindings.is_empty() || bindings[0].on_partition() {
        return Err(FsmError::new(
            ErrorKind::UndefinedObject,
            format!(
                "no machine is attached to {}",
                crate::key::datum_text(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID)
            ),
        )
        .hint("Attach one with fsm.attach(table, column, machine); a partition is reached through its partitioned table."));
    }
    Ok(bindings)
}
