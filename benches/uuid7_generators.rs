//! W6, generator alone: fsm's UUIDv7 generator (src/uuid7/generator.rs)
//! against the `uuid` crate's v7 with `ContextV7::with_additional_precision`
//! and its fast RNG, in one process, interleaved over rounds; prints the
//! median ns per id of each and the median ratio. Run with
//! `cargo bench --bench uuid7_generators`.
//!
//! The SQL-level W6 (`benches/run.sh`) adds the function-call cost that both
//! would pay alike; this isolates what differs.

#[path = "../src/uuid7/generator.rs"]
#[allow(dead_code)]
mod generator;

use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use uuid::{ContextV7, Timestamp, Uuid};

const IDS_PER_ROUND: u32 = 1_000_000;
const ROUNDS: usize = 9;

fn ours(g: &mut generator::Generator) -> f64 {
    let start = Instant::now();
    for _ in 0..IDS_PER_ROUND {
        black_box(g.next());
    }
    start.elapsed().as_nanos() as f64 / IDS_PER_ROUND as f64
}

fn crate_v7(context: &ContextV7) -> f64 {
    let start = Instant::now();
    for _ in 0..IDS_PER_ROUND {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ts = Timestamp::from_unix(context, now.as_secs(), now.subsec_nanos());
        black_box(Uuid::new_v7(ts));
    }
    start.elapsed().as_nanos() as f64 / IDS_PER_ROUND as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut g = generator::Generator::new(std::process::id());
    let context = ContextV7::new().with_additional_precision();
    // Warm up both.
    ours(&mut g);
    crate_v7(&context);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first.
        let (x, y) = if round % 2 == 0 {
            let x = ours(&mut g);
            (x, crate_v7(&context))
        } else {
            let y = crate_v7(&context);
            (ours(&mut g), y)
        };
        a.push(x);
        b.push(y);
        ratios.push(y / x);
    }
    println!("| generator | ns per id (median of {ROUNDS} rounds of {IDS_PER_ROUND}) |");
    println!("|---|---|");
    println!("| fsm (src/uuid7/generator.rs) | {:.1} |", median(&mut a));
    println!(
        "| uuid crate, ContextV7 + additional precision, fast-rng | {:.1} |",
        median(&mut b)
    );
    println!("median ratio uuid crate / fsm: {:.2}", median(&mut ratios));
}
