//! The transition matrix of one machine, written out by hand: for every
//! (state, event), the states the event may lead to, or `not_allowed`.
//! One generated `#[test]` per line, so a wrong cell fails on its own.
//!
//! The machine is `matrix_door`, the one tests/pg_regress/sql/18_matrix.sql
//! fires through PostgreSQL: it uses every form of `from` (one state, a
//! list, `"*"`, `"+"`), a dynamic target, an explicit self-transition, a
//! self-transition that `"*"` produces, and two final states.

use serde_json::json;

use super::validate::compile_json;
use super::Machine;

/// The definition of 18_matrix.sql, minus guard and roles (which do not
/// change the matrix: they refuse at fire time, not by shape).
fn door() -> Machine {
    let definition = json!({
        "states": {
            "closed": {"initial": true},
            "open": {},
            "locked": {},
            "jammed": {},
            "broken": {"final": true},
            "gone": {"final": true}
        },
        "events": {
            "open":   {"from": "closed", "to": "open"},
            "close":  {"from": "open", "to": "closed"},
            "knock":  {"from": "open", "to": "open"},
            "lock":   {"from": "closed", "to": "locked", "guard": "matrix.has_key"},
            "unlock": {"from": "locked", "to": "closed", "roles": ["matrix_keeper"]},
            "kick":   {"from": ["closed", "locked"], "to": ["open", "broken"]},
            "jam":    {"from": "*", "to": "jammed"},
            "reset":  {"from": "+", "to": "closed"},
            "remove": {"from": "*", "to": "gone"}
        }
    });
    let (_, compiled) = compile_json(&definition).expect("matrix_door compiles");
    assert_eq!(compiled.warnings, Vec::<String>::new());
    compiled.machine
}

fn state(m: &Machine, name: &str) -> u16 {
    m.state_id(name)
        .unwrap_or_else(|| panic!("no state {name:?}"))
}

fn names<'a>(m: &'a Machine, events: &[u16]) -> Vec<&'a str> {
    events.iter().map(|&e| m.event(e).name.as_str()).collect()
}

/// `not_allowed` or `[a, b]`, as a list of state (or event) names.
macro_rules! names {
    (not_allowed) => {
        Vec::<&str>::new()
    };
    (none) => {
        Vec::<&str>::new()
    };
    ([$($name:ident),+]) => {
        vec![$(stringify!($name)),+]
    };
}

/// `test_name: from, event => [targets] | not_allowed;`
macro_rules! targets {
    ($($test:ident: $from:ident, $event:ident => $expected:tt;)*) => {$(
        #[test]
        fn $test() {
            let m = door();
            let event = m
                .event_id(stringify!($event))
                .unwrap_or_else(|| panic!("no event {}", stringify!($event)));
            let got: Vec<&str> = m
                .targets(state(&m, stringify!($from)), event)
                .iter()
                .map(|&s| m.state(s).name.as_str())
                .collect();
            assert_eq!(
                got,
                names!($expected),
                "targets of {} from {}",
                stringify!($event),
                stringify!($from)
            );
        }
    )*};
}

/// The full matrix: 6 states x 9 events. `from` forms are noted where a
/// cell depends on how `from` expands.
mod targets {
    use super::*;

    targets! {
        // closed: the initial state.
        closed_open:   closed, open   => [open];
        closed_close:  closed, close  => not_allowed;
        closed_knock:  closed, knock  => not_allowed;
        closed_lock:   closed, lock   => [locked];
        closed_unlock: closed, unlock => not_allowed;
        closed_kick:   closed, kick   => [open, broken];    // list `from`, dynamic `to`
        closed_jam:    closed, jam    => [jammed];          // "*"
        closed_reset:  closed, reset  => not_allowed;       // "+" leaves out the target
        closed_remove: closed, remove => [gone];            // "*"

        open_open:     open, open     => not_allowed;
        open_close:    open, close    => [closed];
        open_knock:    open, knock    => [open];            // explicit self-transition
        open_lock:     open, lock     => not_allowed;
        open_unlock:   open, unlock   => not_allowed;
        open_kick:     open, kick     => not_allowed;       // not in the list
        open_jam:      open, jam      => [jammed];
        open_reset:    open, reset    => [closed];          // "+"
        open_remove:   open, remove   => [gone];

        locked_open:   locked, open   => not_allowed;
        locked_close:  locked, close  => not_allowed;
        locked_knock:  locked, knock  => not_allowed;
        locked_lock:   locked, lock   => not_allowed;
        locked_unlock: locked, unlock => [closed];
        locked_kick:   locked, kick   => [open, broken];    // list `from`, dynamic `to`
        locked_jam:    locked, jam    => [jammed];
        locked_reset:  locked, reset  => [closed];
        locked_remove: locked, remove => [gone];

        jammed_open:   jammed, open   => not_allowed;
        jammed_close:  jammed, close  => not_allowed;
        jammed_knock:  jammed, knock  => not_allowed;
        jammed_lock:   jammed, lock   => not_allowed;
        jammed_unlock: jammed, unlock => not_allowed;
        jammed_kick:   jammed, kick   => not_allowed;
        jammed_jam:    jammed, jam    => [jammed];          // "*" includes the target: a self-loop
        jammed_reset:  jammed, reset  => [closed];
        jammed_remove: jammed, remove => [gone];

        // Final states: no event leaves them, "*" and "+" included.
        broken_open:   broken, open   => not_allowed;
        broken_close:  broken, close  => not_allowed;
        broken_knock:  broken, knock  => not_allowed;
        broken_lock:   broken, lock   => not_allowed;
        broken_unlock: broken, unlock => not_allowed;
        broken_kick:   broken, kick   => not_allowed;
        broken_jam:    broken, jam    => not_allowed;
        broken_reset:  broken, reset  => not_allowed;
        broken_remove: broken, remove => not_allowed;

        gone_open:     gone, open     => not_allowed;
        gone_close:    gone, close    => not_allowed;
        gone_knock:    gone, knock    => not_allowed;
        gone_lock:     gone, lock     => not_allowed;
        gone_unlock:   gone, unlock   => not_allowed;
        gone_kick:     gone, kick     => not_allowed;
        gone_jam:      gone, jam      => not_allowed;
        gone_reset:    gone, reset    => not_allowed;
        gone_remove:   gone, remove   => not_allowed;       // "*" to a final state is no self-loop
    }
}

/// `test_name: from => [events] | none;` (sorted by name: the HINT of a refusal)
macro_rules! allowed {
    ($($test:ident: $from:ident => $expected:tt;)*) => {$(
        #[test]
        fn $test() {
            let m = door();
            assert_eq!(
                m.events_from(state(&m, stringify!($from))),
                names!($expected),
                "events allowed from {}",
                stringify!($from)
            );
        }
    )*};
}

/// Each row of the matrix read across.
mod allowed_from {
    use super::*;

    allowed! {
        closed: closed => [jam, kick, lock, open, remove];
        open:   open   => [close, jam, knock, remove, reset];
        locked: locked => [jam, kick, remove, reset, unlock];
        jammed: jammed => [jam, remove, reset];
        broken: broken => none;
        gone:   gone   => none;
    }
}

/// `test_name: from -> to => [events] | none;` (declaration order)
macro_rules! between {
    ($($test:ident: $from:ident -> $to:ident => $expected:tt;)*) => {$(
        #[test]
        fn $test() {
            let m = door();
            let events = m.events_between(state(&m, stringify!($from)), state(&m, stringify!($to)));
            assert_eq!(
                names(&m, events),
                names!($expected),
                "events from {} to {}",
                stringify!($from),
                stringify!($to)
            );
        }
    )*};
}

/// What a plain UPDATE from one state to another may be: one event (the
/// trigger takes it), several (`fsm.event` must name one), or none.
mod events_between {
    use super::*;

    between! {
        closed_to_open:     closed -> open     => [open, kick];
        closed_to_locked:   closed -> locked   => [lock];
        closed_to_broken:   closed -> broken   => [kick];
        closed_to_jammed:   closed -> jammed   => [jam];
        closed_to_closed:   closed -> closed   => none;
        open_to_closed:     open   -> closed   => [close, reset];
        open_to_open:       open   -> open     => [knock];
        open_to_locked:     open   -> locked   => none;
        locked_to_closed:   locked -> closed   => [unlock, reset];
        locked_to_open:     locked -> open     => [kick];
        jammed_to_jammed:   jammed -> jammed   => [jam];
        jammed_to_closed:   jammed -> closed   => [reset];
        jammed_to_open:     jammed -> open     => none;
        open_to_gone:       open   -> gone     => [remove];
        broken_to_gone:     broken -> gone     => none;
        gone_to_closed:     gone   -> closed   => none;
    }
}
