//! The UUIDv7 generator itself, in plain Rust (no pgrx), so that the
//! benchmark in `benches/uuid7_generators.rs` measures exactly this code.
//!
//! Layout: 48 bits of Unix milliseconds, the version, 12 bits of
//! sub-millisecond fraction (RFC 9562 §6.2, method 3, as PostgreSQL 18's
//! `uuidv7()` does), the variant, 62 random bits.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::{RngCore, SeedableRng};

/// Sub-millisecond ticks per millisecond (12 bits).
const TICKS_PER_MS: u64 = 4096;

/// One process's generator.
pub struct Generator {
    /// The process whose RNG this is: a forked child must reseed.
    pid: u32,
    /// `unix_ms << 12 | fraction` of the last id made.
    last_stamp: u64,
    rng: rand::rngs::StdRng,
}

impl Generator {
    pub fn new(pid: u32) -> Generator {
        Generator {
            pid,
            last_stamp: 0,
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next id: later than every id this generator made before, even
    /// when the clock has not advanced or stepped back.
    pub fn next(&mut self) -> [u8; 16] {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let stamp = stamp_of(now).max(self.last_stamp + 1);
        self.last_stamp = stamp;
        layout(stamp, self.rng.next_u64())
    }
}

/// The time part `unix_ms << 12 | fraction` for a moment in nanoseconds.
pub fn stamp_of(unix_nanos: u128) -> u64 {
    let ms = (unix_nanos / 1_000_000) as u64;
    let fraction = ((unix_nanos % 1_000_000) as u64 * TICKS_PER_MS) / 1_000_000;
    (ms << 12) | fraction
}

/// Assembles the 16 bytes from a time stamp and 64 random bits.
pub fn layout(stamp: u64, random: u64) -> [u8; 16] {
    let ms = stamp >> 12;
    let fraction = stamp & 0x0FFF;
    let mut b = [0u8; 16];
    b[0..6].copy_from_slice(&ms.to_be_bytes()[2..8]);
    b[6] = 0x70 | (fraction >> 8) as u8;
    b[7] = fraction as u8;
    b[8..16].copy_from_slice(&random.to_be_bytes());
    b[8] = 0x80 | (b[8] & 0x3F);
    b
}

/// The Unix milliseconds inside a UUIDv7.
pub fn unix_ms(bytes: &[u8; 16]) -> i64 {
    let mut ms = [0u8; 8];
    ms[2..8].copy_from_slice(&bytes[0..6]);
    i64::from_be_bytes(ms)
}
