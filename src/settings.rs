//! Session settings: `fsm.actor` (recorded on every history row) and
//! `fsm.event` (names the event of a plain UPDATE when several fit).
//!
//! Both are ordinary GUCs, so `SET`, `SET LOCAL` and `ALTER ROLE … SET` work,
//! and a `SET` issued before the library is loaded is kept.

use std::ffi::{CStr, CString};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static ACTOR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static EVENT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register() {
    GucRegistry::define_string_guc(
        c"fsm.actor",
        c"Who is acting: recorded as `actor` on every fsm history row.",
        c"Set it per session or per transaction (SET LOCAL), e.g. to the application user.",
        &ACTOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"fsm.event",
        c"The event a plain UPDATE performs when several events lead from the old to the new state.",
        c"Ignored when exactly one event fits; an error when it names an event that does not fit.",
        &EVENT,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The setting's value without copying it, or `None` when unset or empty.
pub fn value(setting: &GucSetting<Option<CString>>) -> Option<&CStr> {
    // SAFETY: the GUC's storage is a char* variable registered with
    // PostgreSQL for the life of the backend.
    let ptr = unsafe { *setting.as_ptr() };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-null string GUC value is a NUL-terminated string owned by
    // the GUC machinery and valid until the setting changes, which cannot
    // happen while we read it.
    Some(unsafe { CStr::from_ptr(ptr) }).filter(|v| !v.is_empty())
}

/// Whether the setting is set to exactly `value`, without allocating.
pub fn equals(setting: &GucSetting<Option<CString>>, value: &str) -> bool {
    self::value(setting).is_some_and(|v| v.to_bytes() == value.as_bytes())
}
