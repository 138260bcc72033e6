//! UUIDv7 ids (RFC 9562) for history rows, strictly increasing per backend.
//!
//! Layout: 48 bits of Unix milliseconds, the version, 12 bits of
//! sub-millisecond fraction (RFC 9562 §6.2, method 3, as PostgreSQL 18's
//! `uuidv7()` does), the variant, 62 random bits.
//!
//! Why the fraction rather than a counter: two backends that move the same
//! entity within one millisecond must still produce ids in order. Their moves
//! serialise on the row lock, and the second id is made only after the first
//! transaction has committed and released the lock, microseconds later, so
//! the ~244 ns fraction orders them (see docs/architecture.md, "Order of
//! history"). Within one backend, a clock that has not advanced (or stepped
//! back) is bumped one tick past the last id, so ids never repeat or regress.

mod generator;

use std::cell::RefCell;

use pgrx::prelude::*;

#[cfg(test)]
use generator::stamp_of;
pub use generator::{layout, unix_ms, Generator};

thread_local! {
    static GENERATOR: RefCell<Option<Generator>> = const { RefCell::new(None) };
}

/// The next id of this backend: later than every id it made before. A
/// forked child (a new process id) starts a generator of its own.
pub fn next_bytes() -> [u8; 16] {
    GENERATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let pid = process_id();
        match slot.as_mut() {
            Some(g) if g.pid() == pid => g.next(),
            _ => slot.insert(Generator::new(pid)).next(),
        }
    })
}

/// This process's id: PostgreSQL's `MyProcPid` in a backend (a variable,
/// where getpid() would be a system call per id), the OS's in unit tests.
fn process_id() -> u32 {
    #[cfg(not(test))]
    // SAFETY: set once by PostgreSQL when the process starts.
    return unsafe { pg_sys::MyProcPid } as u32;
    #[cfg(test)]
    return std::process::id();
}

pub fn next() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(next_bytes())
}

/// Microseconds between the Unix and PostgreSQL epochs (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

v1_function!(fsm_uuid7, pg_finfo_fsm_uuid7, uuid7);

/// `fsm.uuid7()`: a new UUIDv7, strictly greater than every id this session
/// made before. Raw V1 (declared in sql/catalog.sql): W6 in BENCH.md counts
/// every nanosecond of it.
unsafe fn uuid7(_fcinfo: pg_sys::FunctionCallInfo) -> crate::error::FsmResult<pg_sys::Datum> {
    // SAFETY: a uuid datum is a pointer to its 16 bytes, palloc'd in the
    // caller's memory context.
    unsafe {
        let out = pg_sys::palloc(16) as *mut [u8; 16];
        out.write(next_bytes());
        Ok(pg_sys::Datum::from(out))
    }
}

/// The largest Unix millisecond a UUIDv7 holds (48 bits).
const MAX_UNIX_MS: i64 = (1 << 48) - 1;

/// The Unix milliseconds of a timestamp, if a UUIDv7 can hold them: from
/// the Unix epoch to the year 10889; not ±infinity.
pub fn unix_ms_of(pg_micros: i64) -> Option<u64> {
    let unix_ms = pg_micros
        .checked_add(PG_EPOCH_OFFSET_MICROS)?
        .div_euclid(1000);
    (0..=MAX_UNIX_MS)
        .contains(&unix_ms)
        .then_some(unix_ms as u64)
}

/// The smallest UUIDv7 of the millisecond of `at`: ids made at or after
/// `at` compare greater or equal, so `id >= fsm.uuid7(t)` is "since t".
///
/// # Errors
/// 22008 for a moment a UUIDv7 cannot hold (before 1970, ±infinity).
#[pg_extern(immutable, strict, parallel_safe, name = "uuid7")]
fn uuid7_at(at: TimestampWithTimeZone) -> crate::error::SqlResult<pgrx::Uuid> {
    let pg_micros: i64 = at.into();
    let unix_ms = unix_ms_of(pg_micros).ok_or_else(|| {
        crate::error::FsmError::new(
            crate::error::ErrorKind::DatetimeOverflow,
            format!("{at} is outside what a UUIDv7 can hold (1970-01-01 to 10889-08-02 UTC)"),
        )
    })?;
    let mut b = layout(unix_ms << 12, 0);
    b[8] = 0x80;
    Ok(pgrx::Uuid::from_bytes(b))
}

/// The millisecond recorded inside a UUIDv7.
#[pg_extern(immutable, strict, parallel_safe)]
fn uuid7_time(id: pgrx::Uuid) -> TimestampWithTimeZone {
    let bytes: [u8; 16] = *id.as_bytes();
    let pg_micros = unix_ms(&bytes) * 1000 - PG_EPOCH_OFFSET_MICROS;
    TimestampWithTimeZone::try_from(pg_micros).unwrap_or_else(|_| {
        crate::error::FsmError::new(
            crate::error::ErrorKind::InvalidParameter,
            format!("{id} holds no valid time"),
        )
        .raise()
    })
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn layout_sets_version_variant_and_time() {
        let b = layout(stamp_of(1_700_000_000_123_456_789), u64::MAX);
        assert_eq!(b[6] >> 4, 7, "version 7");
        assert_eq!(b[8] >> 6, 0b10, "RFC 9562 variant");
        assert_eq!(unix_ms(&b), 1_700_000_000_123);
        // 0.456789 ms into the millisecond is tick 1871 of 4096 (456789 * 4096 / 10^6 = 1871.0).
        assert_eq!(((b[6] as u16 & 0x0F) << 8) | b[7] as u16, 1871);
    }

    #[test]
    fn ids_strictly_increase_even_when_the_clock_does_not() {
        let mut previous = next_bytes();
        for _ in 0..100_000 {
            let id = next_bytes();
            assert!(id > previous, "{id:?} <= {previous:?}");
            previous = id;
        }
    }

    #[test]
    fn only_moments_a_uuid7_holds_have_milliseconds() {
        assert_eq!(unix_ms_of(-PG_EPOCH_OFFSET_MICROS), Some(0));
        assert_eq!(unix_ms_of(-PG_EPOCH_OFFSET_MICROS - 1), None, "before 1970");
        assert_eq!(unix_ms_of(i64::MAX), None, "infinity");
        assert_eq!(unix_ms_of(i64::MIN), None, "-infinity");
        assert_eq!(
            unix_ms_of(MAX_UNIX_MS * 1000 - PG_EPOCH_OFFSET_MICROS),
            Some(MAX_UNIX_MS as u64)
        );
        assert_eq!(
            unix_ms_of((MAX_UNIX_MS + 1) * 1000 - PG_EPOCH_OFFSET_MICROS),
            None
        );
    }

    #[test]
    fn a_later_stamp_orders_after_whatever_its_random_bits() {
        let early = layout(stamp_of(1_000_000_000_000_000_000), u64::MAX);
        let late = layout(stamp_of(1_000_000_000_000_000_250), 0);
        assert!(late > early, "250 ns later is one tick later");
    }
}
