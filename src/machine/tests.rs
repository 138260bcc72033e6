//! Unit tests for the pure-Rust model: parsing, every validation rule,
//! expansion of `*`/`+`/lists into transitions, the lookup tables, the
//! normalized JSON form, payload schemas and the two diagram renderers.
//!
//! Tests marked `#[ignore = "bug: ..."]` describe what the model should do
//! and fail today; run them with `cargo test --lib machine:: -- --ignored`.

use serde_json::{json, Value};

use super::compiled::PayloadSchema;
use super::render::{to_dot, to_mermaid};
use super::validate::{compile_json, MAX_EVENTS, MAX_NAME_BYTES, MAX_STATES};
use super::{compile, Definition, Machine};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The example definition from the API contract.
fn api_example() -> Value {
    json!({
        "states": {
            "created": {"initial": true},
            "paid": {"meta": {"label": "Paid"}},
            "shipped": {"timeout": {"after": "7 days", "event": "lose"}},
            "delivered": {"final": true},
            "cancelled": {"final": true},
            "lost": {"final": true}
        },
        "events": {
            "pay": {"from": "created", "to": "paid",
                    "payload": {"type": "object", "required": ["amount"]}},
            "ship": {"from": "paid", "to": "shipped", "guard": "shop.has_tracking_number"},
            "deliver": {"from": "shipped", "to": "delivered"},
            "lose": {"from": "shipped", "to": "lost"},
            "cancel": {"from": ["created", "paid"], "to": "cancelled", "roles": ["support"]},
            "review": {"from": "paid", "to": ["paid", "cancelled"]},
            "charge": {"from": "created", "to": "paid", "action": "shop.charge_card",
                       "on_error": "cancelled"},
            "reset": {"from": "+", "to": "created"}
        }
    })
}

/// Compiles a definition that must be valid; returns the machine and warnings.
fn accept(v: Value) -> (Machine, Vec<String>) {
    match compile_json(&v) {
        Ok((_, c)) => (c.machine, c.warnings),
        Err(e) => panic!("expected {v} to compile, got: {e}"),
    }
}

fn machine(v: Value) -> Machine {
    accept(v).0
}

/// Compiles a definition that must be refused; returns the error text.
fn reject(v: &Value) -> String {
    match compile_json(v) {
        Ok(_) => panic!("expected {v} to be refused, but it compiled"),
        Err(e) => e.0,
    }
}

fn assert_rejected(v: Value, expected: &str) {
    let msg = reject(&v);
    assert!(
        msg.contains(expected),
        "error for {v}\n  was:      {msg}\n  expected: ...{expected}..."
    );
}

/// Every expanded transition as (event, from, to) names, in the machine's order.
fn named(m: &Machine) -> Vec<(&str, &str, &str)> {
    m.transitions()
        .iter()
        .map(|t| {
            (
                m.event(t.event).name.as_str(),
                m.state(t.from).name.as_str(),
                m.state(t.to).name.as_str(),
            )
        })
        .collect()
}

/// Transitions of one event as sorted (from, to) pairs.
fn pairs_of<'a>(m: &'a Machine, event: &str) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<_> = named(m)
        .into_iter()
        .filter(|(e, _, _)| *e == event)
        .map(|(_, f, t)| (f, t))
        .collect();
    v.sort();
    v
}

fn sid(m: &Machine, name: &str) -> u16 {
    m.state_id(name)
        .unwrap_or_else(|| panic!("no state {name:?}"))
}

fn eid(m: &Machine, name: &str) -> u16 {
    m.event_id(name)
        .unwrap_or_else(|| panic!("no event {name:?}"))
}

fn target_names<'a>(m: &'a Machine, from: &str, event: &str) -> Vec<&'a str> {
    m.targets(sid(m, from), eid(m, event))
        .iter()
        .map(|&s| m.state(s).name.as_str())
        .collect()
}

fn between_names<'a>(m: &'a Machine, from: &str, to: &str) -> Vec<&'a str> {
    m.events_between(sid(m, from), sid(m, to))
        .iter()
        .map(|&e| m.event(e).name.as_str())
        .collect()
}

// ---------------------------------------------------------------------------
// Rejections: every rule yields an error naming the offending state or event.
// One generated #[test] per line: `name: json => expected substring;`.
// ---------------------------------------------------------------------------

macro_rules! rejects {
    ($($name:ident: $json:tt => $expected:expr;)*) => {
        $(
            #[test]
            fn $name() {
                assert_rejected(json!($json), $expected);
            }
        )*
    };
}

/// Errors from reading the format (FormatError, surfaced by compile_json).
mod rejects_format {
    use super::*;

    rejects! {
        not_an_object: [1, 2]
            => "a machine definition must be a JSON object with \"states\" and \"events\", not an array";
        not_an_object_string: "states"
            => "must be a JSON object with \"states\" and \"events\", not a string";
        unknown_top_level_key: {"states": {"a": {"initial": true}}, "events": {}, "version": 2}
            => "unknown key \"version\" in the definition (expected \"states\" and \"events\")";
        missing_states: {"events": {}}
            => "the definition has no \"states\"";
        states_not_an_object: {"states": ["a"]}
            => "\"states\" must be a JSON object keyed by name, not an array";
        events_not_an_object: {"states": {"a": {"initial": true}}, "events": null}
            => "\"events\" must be a JSON object keyed by name, not null";
        state_key_typo: {"states": {"a": {"initial": true, "finale": true}}}
            => "state \"a\": unknown field \"finale\"";
        event_key_typo_gaurd: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "gaurd": "f"}}}
            => "event \"go\": unknown field \"gaurd\"";
        event_key_typo_fromm: {"states": {"a": {"initial": true}}, "events": {"go": {"fromm": "a", "to": "a"}}}
            => "event \"go\": unknown field \"fromm\"";
        timeout_key_typo: {"states": {"a": {"initial": true, "timeout": {"after": "1 day", "evnt": "go"}}}}
            => "state \"a\": unknown field \"evnt\"";
        initial_not_a_boolean: {"states": {"a": {"initial": "yes"}}}
            => "state \"a\": invalid type: string \"yes\", expected a boolean";
        final_not_a_boolean: {"states": {"a": {"initial": true}, "z": {"final": 1}}}
            => "state \"z\": invalid type: number, expected a boolean";
        state_body_not_an_object: {"states": {"a": true}}
            => "state \"a\": invalid type: boolean \"true\"";
        event_missing_to: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a"}}}
            => "event \"go\": missing field \"to\"";
        // serde's text here is "data did not match any variant of untagged enum
        // OneOrMany"; only the event prefix is part of the contract.
        from_not_a_name: {"states": {"a": {"initial": true}}, "events": {"go": {"from": 3, "to": "a"}}}
            => "event \"go\": ";
        roles_not_a_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "roles": "support"}}}
            => "event \"go\": invalid type: string \"support\", expected a sequence";
        guard_not_a_string: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "guard": true}}}
            => "event \"go\": invalid type: boolean \"true\", expected a string";
        timeout_missing_event: {"states": {"a": {"initial": true, "timeout": {"after": "1 day"}}}}
            => "state \"a\": missing field \"event\"";
    }
}

/// Errors from the rules in validate.rs (DefinitionError).
mod rejects_rules {
    use super::*;

    rejects! {
        no_states: {"states": {}, "events": {}}
            => "a machine needs at least one state";
        no_initial: {"states": {"a": {}, "b": {}}}
            => "no state is marked \"initial\": exactly one must be";
        two_initials: {"states": {"a": {"initial": true}, "b": {}, "c": {"initial": true}}}
            => "exactly one state may be initial, but \"a\", \"c\" are";
        unknown_target: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "nowhere"}}}
            => "event \"go\": target state \"nowhere\" does not exist";
        unknown_target_in_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": ["a", "nowhere"]}}}
            => "event \"go\": target state \"nowhere\" does not exist";
        unknown_source: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "nowhere", "to": "a"}}}
            => "event \"go\": source state \"nowhere\" does not exist";
        unknown_source_in_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": ["a", "nowhere"], "to": "a"}}}
            => "event \"go\": source state \"nowhere\" does not exist";
        final_state_as_source: {"states": {"a": {"initial": true}, "done": {"final": true}}, "events": {"again": {"from": "done", "to": "a"}}}
            => "event \"again\": state \"done\" is final and cannot have outgoing events";
        final_state_in_source_list: {"states": {"a": {"initial": true}, "done": {"final": true}}, "events": {"again": {"from": ["a", "done"], "to": "a"}}}
            => "event \"again\": state \"done\" is final and cannot have outgoing events";
        star_inside_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": ["a", "*"], "to": "a"}}}
            => "event \"go\": \"*\" must stand alone as \"from\", not in a list";
        plus_inside_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": ["+"], "to": "a"}}}
            => "event \"go\": \"+\" must stand alone as \"from\", not in a list";
        to_star: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "*"}}}
            => "event \"go\": \"to\" cannot be \"*\"; name the target states";
        to_plus_in_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": ["a", "+"]}}}
            => "event \"go\": \"to\" cannot be \"+\"; name the target states";
        duplicate_in_from: {"states": {"a": {"initial": true}, "b": {}}, "events": {"go": {"from": ["a", "b", "a"], "to": "b"}}}
            => "event \"go\": \"from\" names state \"a\" twice";
        duplicate_in_to: {"states": {"a": {"initial": true}, "b": {}}, "events": {"go": {"from": "a", "to": ["b", "b"]}}}
            => "event \"go\": \"to\" names state \"b\" twice";
        empty_from_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": [], "to": "a"}}}
            => "event \"go\": \"from\" must name at least one state";
        empty_to_list: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": []}}}
            => "event \"go\": \"to\" must name at least one state";
        plus_matches_no_state: {"states": {"a": {"initial": true}, "done": {"final": true}}, "events": {"back": {"from": "+", "to": "a"}}}
            => "event \"back\": \"from\" matches no state";
        star_matches_no_state: {"states": {"a": {"initial": true, "final": true}}, "events": {"go": {"from": "*", "to": "a"}}}
            => "event \"go\": \"from\" matches no state";
        empty_state_name: {"states": {"a": {"initial": true}, "": {}}}
            => "a state name must not be empty";
        empty_event_name: {"states": {"a": {"initial": true}}, "events": {"": {"from": "a", "to": "a"}}}
            => "event name must not be empty";
        control_char_in_state_name: {"states": {"a\tb": {"initial": true}}}
            => "state name \"a\\tb\" contains a control character";
        control_char_in_event_name: {"states": {"a": {"initial": true}}, "events": {"go\n": {"from": "a", "to": "a"}}}
            => "event name \"go\\n\" contains a control character";
        star_as_state_name: {"states": {"*": {"initial": true}}}
            => "state \"*\": \"*\" and \"+\" are reserved for \"from\"";
        plus_as_state_name: {"states": {"a": {"initial": true}, "+": {}}}
            => "state \"+\": \"*\" and \"+\" are reserved for \"from\"";
        guard_is_sql: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "guard": "drop table x; --"}}}
            => "event \"go\": guard \"drop table x; --\" is not a function name (write name or schema.name)";
        guard_is_a_call: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "guard": "f()"}}}
            => "event \"go\": guard \"f()\" is not a function name";
        action_is_sql: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "action": "shop.charge(1); drop table t"}}}
            => "event \"go\": action \"shop.charge(1); drop table t\" is not a function name";
        roles_empty: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "roles": []}}}
            => "event \"go\": \"roles\" must name at least one role";
        role_name_empty: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "roles": ["support", ""]}}}
            => "event \"go\": role \"\" is not a valid role name";
        on_error_without_action: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "on_error": "a"}}}
            => "event \"go\": \"on_error\" needs an \"action\"";
        on_error_unknown_state: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "action": "f", "on_error": "nowhere"}}}
            => "event \"go\": on_error state \"nowhere\" does not exist";
        payload_schema_invalid: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "payload": {"type": 12}}}}
            => "event \"go\": \"payload\" is not a valid JSON Schema: ";
        // No network access from a stored definition: remote $ref is refused.
        payload_schema_remote_ref: {"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "payload": {"$ref": "http://example.com/s.json"}}}}
            => "event \"go\": \"payload\" is not a valid JSON Schema: Resource 'http://example.com/s.json' is not present in a registry";
        timeout_unknown_event: {"states": {"a": {"initial": true, "timeout": {"after": "1 day", "event": "vanish"}}}, "events": {"go": {"from": "a", "to": "a"}}}
            => "state \"a\": timeout event \"vanish\" does not exist";
        timeout_event_cannot_fire_there: {"states": {"a": {"initial": true}, "b": {"timeout": {"after": "1 day", "event": "go"}}}, "events": {"go": {"from": "a", "to": "b"}, "back": {"from": "b", "to": "a"}}}
            => "state \"b\": timeout event \"go\" cannot fire from \"b\"";
        timeout_event_with_several_targets: {"states": {"a": {"initial": true, "timeout": {"after": "1 day", "event": "go"}}, "b": {}}, "events": {"go": {"from": "a", "to": ["a", "b"]}, "back": {"from": "b", "to": "a"}}}
            => "state \"a\": timeout event \"go\" has several targets from \"a\"; a timer needs one";
        timeout_on_final_state: {"states": {"a": {"initial": true}, "z": {"final": true, "timeout": {"after": "1 day", "event": "go"}}}, "events": {"go": {"from": "a", "to": "z"}}}
            => "state \"z\": timeout event \"go\" cannot fire from \"z\"";
        timeout_after_blank: {"states": {"a": {"initial": true, "timeout": {"after": "  ", "event": "go"}}}, "events": {"go": {"from": "a", "to": "a"}}}
            => "state \"a\": timeout \"after\" must be an interval such as \"7 days\"";
    }
}

/// The size limits, built programmatically; each boundary is tested on both
/// sides so the limit cannot drift by one unnoticed.
mod limits {
    use super::*;

    fn with_state_name(name: &str) -> Value {
        json!({"states": {name: {"initial": true}}})
    }

    #[test]
    fn state_name_longer_than_max_bytes() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            reject(&with_state_name(&long)),
            format!(
                "state name \"{}…\" is longer than 200 bytes",
                "x".repeat(40)
            )
        );
        // Exactly at the limit is fine.
        accept(with_state_name(&"x".repeat(MAX_NAME_BYTES)));
    }

    #[test]
    fn name_limit_counts_bytes_not_chars() {
        // 101 chars, 202 bytes.
        let long = "é".repeat(101);
        assert_eq!(
            reject(&with_state_name(&long)),
            format!(
                "state name \"{}…\" is longer than 200 bytes",
                "é".repeat(40)
            )
        );
        accept(with_state_name(&"é".repeat(100)));
    }

    #[test]
    fn event_name_longer_than_max_bytes() {
        let long = "e".repeat(MAX_NAME_BYTES + 1);
        let v =
            json!({"states": {"a": {"initial": true}}, "events": {long: {"from": "a", "to": "a"}}});
        assert_eq!(
            reject(&v),
            format!(
                "event name \"{}…\" is longer than 200 bytes",
                "e".repeat(40)
            )
        );
    }

    fn with_states(n: usize) -> Value {
        let mut states = serde_json::Map::new();
        for i in 0..n {
            states.insert(format!("s{i}"), json!({"initial": i == 0}));
        }
        json!({"states": states})
    }

    #[test]
    fn more_than_max_states() {
        assert_eq!(
            reject(&with_states(MAX_STATES + 1)),
            "a machine may have at most 1000 states, this one has 1001"
        );
        let (m, _) = accept(with_states(MAX_STATES));
        assert_eq!(m.states.len(), MAX_STATES);
    }

    fn with_events(n: usize) -> Value {
        let mut events = serde_json::Map::new();
        for i in 0..n {
            events.insert(format!("e{i}"), json!({"from": "a", "to": "a"}));
        }
        json!({"states": {"a": {"initial": true}}, "events": events})
    }

    #[test]
    fn more_than_max_events() {
        assert_eq!(
            reject(&with_events(MAX_EVENTS + 1)),
            "a machine may have at most 1000 events (branches counted one by one), this one has 1001"
        );
        let (m, _) = accept(with_events(MAX_EVENTS));
        assert_eq!(m.events.len(), MAX_EVENTS);
    }

    #[test]
    fn role_name_limited_to_63_bytes() {
        let role = |r: String| json!({"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "roles": [r]}}});
        let long = "r".repeat(64);
        assert_eq!(
            reject(&role(long.clone())),
            format!("event \"go\": role \"{long}\" is not a valid role name")
        );
        let (m, _) = accept(role("r".repeat(63)));
        assert_eq!(m.event(0).roles, vec!["r".repeat(63)]);
    }
}

/// Guard and action must be `name` or `schema.name` (each part optionally a
/// double-quoted identifier), since they are spliced into SQL as identifiers.
#[test]
fn function_names_accepted_and_refused() {
    let with_guard = |g: &str| json!({"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "guard": g, "action": g}}});
    for ok in [
        "check",
        "_private",
        "f$1",
        "shop.has_tracking_number",
        "\"My Schema\".\"odd name\"",
        "shop.\"with \"\"quote\"\"\"",
        "\"semi;colon\"",
    ] {
        let m = machine(with_guard(ok));
        assert_eq!(m.event(0).guard.as_deref(), Some(ok));
        assert_eq!(m.event(0).action.as_deref(), Some(ok));
    }
    for bad in [
        "",
        "1abc",
        "a.b.c",
        "a b",
        "a.",
        ".a",
        "\"\"",
        "\"unterminated",
        "\"a\"b\"",
        "f()",
        "a;b",
        "drop table x; --",
    ] {
        assert_eq!(
            reject(&with_guard(bad)),
            format!(
                "event \"go\": guard \"{bad}\" is not a function name (write name or schema.name)"
            ),
            "guard {bad:?}"
        );
    }
}

/// The payload error carries jsonschema's own reason after the event name.
#[test]
fn invalid_payload_schema_names_event_and_reason() {
    let v = json!({"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "payload": {"type": 12}}}});
    let msg = reject(&v);
    let reason = msg
        .strip_prefix("event \"go\": \"payload\" is not a valid JSON Schema: ")
        .unwrap_or_else(|| panic!("unexpected message: {msg}"));
    assert!(
        reason.contains("12"),
        "reason should quote the bad value: {reason}"
    );
}

// ---------------------------------------------------------------------------
// Accepting the API example, and warnings
// ---------------------------------------------------------------------------

#[test]
fn api_example_compiles_with_every_attribute() {
    let (m, warnings) = accept(api_example());
    // Every state is reachable (created -> paid -> shipped -> delivered/lost,
    // cancelled via cancel/review) and every non-final state has a way out
    // (created: pay/charge/cancel, paid: ship/cancel/review/reset,
    // shipped: deliver/lose/reset), so there is nothing to warn about.
    assert_eq!(warnings, Vec::<String>::new());

    let names: Vec<&str> = m.states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "created",
            "paid",
            "shipped",
            "delivered",
            "cancelled",
            "lost"
        ]
    );
    assert_eq!(m.initial, sid(&m, "created"));
    assert!(m.state(sid(&m, "created")).initial);
    let finals: Vec<&str> = m
        .states
        .iter()
        .filter(|s| s.is_final)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(finals, ["delivered", "cancelled", "lost"]);
    assert_eq!(
        m.state(sid(&m, "paid")).meta,
        Some(json!({"label": "Paid"}))
    );

    let timeout = m.state(sid(&m, "shipped")).timeout.clone().unwrap();
    assert_eq!(timeout.after, "7 days");
    assert_eq!(timeout.event, eid(&m, "lose"));
    assert_eq!(m.state(sid(&m, "paid")).timeout, None);

    let pay = m.event(eid(&m, "pay"));
    assert_eq!(
        pay.payload.as_ref().unwrap().schema,
        json!({"type": "object", "required": ["amount"]})
    );
    assert!(pay.guard.is_none() && pay.action.is_none() && pay.roles.is_empty());

    let ship = m.event(eid(&m, "ship"));
    assert_eq!(ship.guard.as_deref(), Some("shop.has_tracking_number"));

    let cancel = m.event(eid(&m, "cancel"));
    assert_eq!(cancel.roles, vec!["support".to_string()]);
    assert_eq!(cancel.targets, vec![sid(&m, "cancelled")]);

    let review = m.event(eid(&m, "review"));
    assert_eq!(review.targets, vec![sid(&m, "paid"), sid(&m, "cancelled")]);

    let charge = m.event(eid(&m, "charge"));
    assert_eq!(charge.action.as_deref(), Some("shop.charge_card"));
    assert_eq!(charge.on_error, Some(sid(&m, "cancelled")));
}

/// A definition with no "events" key at all is a valid one-state machine.
#[test]
fn events_key_is_optional() {
    let (m, warnings) = accept(json!({"states": {"only": {"initial": true, "final": true}}}));
    assert_eq!(m.events.len(), 0);
    assert_eq!(m.transitions().len(), 0);
    assert_eq!(warnings, Vec::<String>::new());
}

/// Unreachable states and non-final dead ends warn, in state declaration
/// order, unreachable before dead end for the same state.
#[test]
fn warnings_for_unreachable_states_and_dead_ends() {
    let (_, warnings) = accept(json!({
        "states": {
            "start": {"initial": true},
            "mid": {},
            "stuck": {},
            "orphan": {},
            "island": {"final": true},
            "limbo": {},
            "done": {"final": true}
        },
        "events": {
            "go": {"from": "start", "to": "mid"},
            "jam": {"from": "mid", "to": "stuck"},
            "finish": {"from": "mid", "to": "done"},
            "leave": {"from": "orphan", "to": "done"}
        }
    }));
    assert_eq!(
        warnings,
        [
            "state \"stuck\" is not final but no event leaves it",
            "state \"orphan\" is unreachable from the initial state",
            "state \"island\" is unreachable from the initial state",
            "state \"limbo\" is unreachable from the initial state",
            "state \"limbo\" is not final but no event leaves it",
        ]
    );
}

/// Reachability follows `*` and `+` expansions and self-loops do not count
/// as "reaching" a state from elsewhere.
#[test]
fn warnings_follow_wildcards() {
    let (_, warnings) = accept(json!({
        "states": {"a": {"initial": true}, "b": {}, "loop": {}, "z": {"final": true}},
        "events": {
            "next": {"from": "a", "to": "b"},
            "abort": {"from": "*", "to": "z"},
            "spin": {"from": "loop", "to": "loop"}
        }
    }));
    // "loop" has a way out (spin, abort) but nothing leads into it.
    assert_eq!(
        warnings,
        ["state \"loop\" is unreachable from the initial state"]
    );
}

// ---------------------------------------------------------------------------
// Expansion into transitions and the lookup tables
// ---------------------------------------------------------------------------

#[test]
fn api_example_transitions_sorted_by_event_from_to() {
    let m = machine(api_example());
    assert_eq!(
        named(&m),
        [
            ("pay", "created", "paid"),
            ("ship", "paid", "shipped"),
            ("deliver", "shipped", "delivered"),
            ("lose", "shipped", "lost"),
            ("cancel", "created", "cancelled"),
            ("cancel", "paid", "cancelled"),
            ("review", "paid", "paid"),
            ("review", "paid", "cancelled"),
            ("charge", "created", "paid"),
            // "+" to created: every non-final state except created itself.
            ("reset", "paid", "created"),
            ("reset", "shipped", "created"),
        ]
    );
}

fn wildcard_machine() -> Machine {
    machine(json!({
        "states": {"a": {"initial": true}, "b": {}, "c": {}, "done": {"final": true}, "gone": {"final": true}},
        "events": {
            "abort": {"from": "*", "to": "done"},
            "restart": {"from": "*", "to": "a"},
            "back": {"from": "+", "to": "a"},
            "shuffle": {"from": "+", "to": ["a", "b"]},
            "fan": {"from": ["a", "b"], "to": ["c", "gone"]}
        }
    }))
}

/// `*` is every non-final state, including the target itself (a self-loop).
#[test]
fn star_expands_to_every_non_final_state() {
    let m = wildcard_machine();
    assert_eq!(
        pairs_of(&m, "abort"),
        [("a", "done"), ("b", "done"), ("c", "done")]
    );
    assert_eq!(
        pairs_of(&m, "restart"),
        [("a", "a"), ("b", "a"), ("c", "a")]
    );
}

/// `+` is every non-final state except the target; with a list of targets
/// the exclusion is per target.
#[test]
fn plus_expands_to_every_non_final_state_but_the_target() {
    let m = wildcard_machine();
    assert_eq!(pairs_of(&m, "back"), [("b", "a"), ("c", "a")]);
    assert_eq!(
        pairs_of(&m, "shuffle"),
        [("a", "b"), ("b", "a"), ("c", "a"), ("c", "b")]
    );
}

/// A list `from` times a list `to` is the full cross product; a final state
/// is a fine target.
#[test]
fn list_sources_and_dynamic_targets_cross() {
    let m = wildcard_machine();
    assert_eq!(
        pairs_of(&m, "fan"),
        [("a", "c"), ("a", "gone"), ("b", "c"), ("b", "gone")]
    );
    assert_eq!(m.transitions().len(), 3 + 3 + 2 + 4 + 4);
}

#[test]
fn targets_lookup() {
    let m = machine(api_example());
    // Dynamic target: both declared targets, in state order.
    assert_eq!(target_names(&m, "paid", "review"), ["paid", "cancelled"]);
    assert_eq!(target_names(&m, "created", "pay"), ["paid"]);
    assert_eq!(target_names(&m, "shipped", "reset"), ["created"]);
    // Not allowed: empty.
    assert_eq!(target_names(&m, "created", "review"), Vec::<&str>::new());
    assert_eq!(target_names(&m, "created", "reset"), Vec::<&str>::new());
    assert_eq!(target_names(&m, "delivered", "reset"), Vec::<&str>::new());

    let w = wildcard_machine();
    assert_eq!(target_names(&w, "c", "shuffle"), ["a", "b"]);
    assert_eq!(target_names(&w, "a", "shuffle"), ["b"]);
    assert_eq!(target_names(&w, "b", "fan"), ["c", "gone"]);
}

#[test]
fn sources_to_lists_every_state_an_event_leads_from() {
    let m = machine(api_example());
    let names = |event: &str, to: &str| -> Vec<String> {
        m.sources_to(eid(&m, event), sid(&m, to))
            .iter()
            .map(|&s| m.state(s).name.clone())
            .collect()
    };
    assert_eq!(names("pay", "paid"), ["created"]);
    assert_eq!(names("review", "cancelled"), ["paid"]);
    // A self-transition counts its own state as a source.
    assert_eq!(names("review", "paid"), ["paid"]);
    assert_eq!(names("pay", "shipped"), Vec::<String>::new());
    let w = wildcard_machine();
    let shuffled: Vec<&str> = w
        .sources_to(eid(&w, "shuffle"), sid(&w, "b"))
        .iter()
        .map(|&s| w.state(s).name.as_str())
        .collect();
    // "+": every non-final state but the target itself.
    assert_eq!(shuffled, ["a", "c"]);
}

#[test]
fn events_between_in_declaration_order() {
    let m = machine(api_example());
    assert_eq!(between_names(&m, "created", "paid"), ["pay", "charge"]);
    assert_eq!(between_names(&m, "paid", "cancelled"), ["cancel", "review"]);
    assert_eq!(between_names(&m, "paid", "paid"), ["review"]);
    assert_eq!(between_names(&m, "shipped", "created"), ["reset"]);
    assert_eq!(between_names(&m, "created", "shipped"), Vec::<&str>::new());
    assert_eq!(between_names(&m, "lost", "created"), Vec::<&str>::new());
}

#[test]
fn events_from_sorted_by_name() {
    let m = machine(api_example());
    let from = |s: &str| m.events_from(sid(&m, s));
    assert_eq!(from("created"), ["cancel", "charge", "pay"]);
    assert_eq!(from("paid"), ["cancel", "reset", "review", "ship"]);
    assert_eq!(from("shipped"), ["deliver", "lose", "reset"]);
    assert_eq!(from("delivered"), Vec::<&str>::new());
    assert_eq!(from("cancelled"), Vec::<&str>::new());
}

#[test]
fn name_lookups() {
    let m = machine(api_example());
    assert_eq!(m.state_id("lost"), Some(5));
    assert_eq!(m.state_id("Lost"), None);
    assert_eq!(m.event_id("reset"), Some(7));
    assert_eq!(m.event_id("nope"), None);
}

// ---------------------------------------------------------------------------
// Definition::to_json: the normalized form, and round trips
// ---------------------------------------------------------------------------

#[test]
fn to_json_normalizes_api_example() {
    let def = Definition::from_json(&api_example()).unwrap();
    let expected = json!({
        "states": {
            "created": {"initial": true},
            "paid": {"meta": {"label": "Paid"}},
            "shipped": {"timeout": {"after": "7 days", "event": "lose"}},
            "delivered": {"final": true},
            "cancelled": {"final": true},
            "lost": {"final": true}
        },
        "events": {
            "pay": {"from": ["created"], "to": ["paid"],
                    "payload": {"type": "object", "required": ["amount"]}},
            "ship": {"from": ["paid"], "to": ["shipped"], "guard": "shop.has_tracking_number"},
            "deliver": {"from": ["shipped"], "to": ["delivered"]},
            "lose": {"from": ["shipped"], "to": ["lost"]},
            "cancel": {"from": ["created", "paid"], "to": ["cancelled"], "roles": ["support"]},
            "review": {"from": ["paid"], "to": ["paid", "cancelled"]},
            "charge": {"from": ["created"], "to": ["paid"], "action": "shop.charge_card",
                       "on_error": "cancelled"},
            "reset": {"from": "+", "to": ["created"]}
        }
    });
    let got = def.to_json();
    assert_eq!(got, expected);
    // Same key order too (preserve_order): states and events as declared,
    // event keys in a fixed order.
    assert_eq!(got.to_string(), expected.to_string());
}

#[test]
fn to_json_drops_defaults_and_keeps_wildcards() {
    let def = Definition::from_json(&json!({
        "states": {
            "a": {"initial": true, "final": false},
            "b": {"initial": false, "final": false},
            "z": {"final": true, "initial": false}
        },
        "events": {
            "any": {"from": "*", "to": "z"},
            "other": {"from": "+", "to": ["a"]},
            "x": {"from": ["a"], "to": "b"}
        }
    }))
    .unwrap();
    assert_eq!(
        def.to_json().to_string(),
        json!({
            "states": {"a": {"initial": true}, "b": {}, "z": {"final": true}},
            "events": {
                "any": {"from": "*", "to": ["z"]},
                "other": {"from": "+", "to": ["a"]},
                "x": {"from": ["a"], "to": ["b"]}
            }
        })
        .to_string()
    );
}

#[test]
fn to_json_round_trip_keeps_transitions() {
    for original in [api_example(), wildcard_json()] {
        let def = Definition::from_json(&original).unwrap();
        let normalized = def.to_json();
        let reread = Definition::from_json(&normalized).unwrap();
        let before = compile(&def).unwrap().machine;
        let after = compile(&reread).unwrap().machine;
        assert_eq!(named(&before), named(&after));
        assert!(!named(&before).is_empty());
        // Normalizing is idempotent.
        assert_eq!(reread.to_json().to_string(), normalized.to_string());
    }
}

fn wildcard_json() -> Value {
    json!({
        "states": {"a": {"initial": true}, "b": {}, "c": {}, "done": {"final": true}},
        "events": {
            "abort": {"from": "*", "to": "done"},
            "back": {"from": "+", "to": ["a", "b"]},
            "fan": {"from": ["a", "b"], "to": ["c", "done"]}
        }
    })
}

// ---------------------------------------------------------------------------
// PayloadSchema::check
// ---------------------------------------------------------------------------

fn order_schema() -> PayloadSchema {
    PayloadSchema::compile(&json!({
        "type": "object",
        "required": ["amount"],
        "properties": {
            "amount": {"type": "number", "minimum": 1, "maximum": 1000},
            "currency": {"enum": ["EUR", "USD"]},
            "ref": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}
        },
        "additionalProperties": false
    }))
    .unwrap()
}

#[test]
fn payload_valid_passes() {
    let s = order_schema();
    assert_eq!(
        s.check(Some(
            &json!({"amount": 10, "currency": "EUR", "ref": "ABC-12"})
        )),
        Ok(())
    );
    assert_eq!(s.check(Some(&json!({"amount": 1}))), Ok(()));
    assert_eq!(s.check(Some(&json!({"amount": 1000}))), Ok(()));
}

/// Each failure names the offending path (after "at ") and jsonschema's reason.
#[test]
fn payload_failures() {
    let s = order_schema();
    let cases: &[(&str, Value, &str)] = &[
        (
            "missing required",
            json!({"currency": "EUR"}),
            PAYLOAD_MISSING,
        ),
        ("wrong type", json!({"amount": "ten"}), PAYLOAD_TYPE),
        (
            "enum miss",
            json!({"amount": 5, "currency": "GBP"}),
            PAYLOAD_ENUM,
        ),
        ("below minimum", json!({"amount": 0}), PAYLOAD_MIN),
        ("above maximum", json!({"amount": 1001}), PAYLOAD_MAX),
        (
            "pattern",
            json!({"amount": 5, "ref": "abc-1"}),
            PAYLOAD_PATTERN,
        ),
        (
            "extra key",
            json!({"amount": 5, "note": "x"}),
            PAYLOAD_EXTRA,
        ),
        ("not an object", json!([1]), PAYLOAD_ARRAY),
    ];
    for (what, payload, expected) in cases {
        assert_eq!(
            s.check(Some(payload)),
            Err(expected.to_string()),
            "{what}: {payload}"
        );
    }
}

const PAYLOAD_MISSING: &str = "\"amount\" is a required property";
const PAYLOAD_TYPE: &str = "at /amount: \"ten\" is not of type \"number\"";
const PAYLOAD_ENUM: &str = "at /currency: \"GBP\" is not one of \"EUR\" or \"USD\"";
const PAYLOAD_MIN: &str = "at /amount: 0 is less than the minimum of 1";
const PAYLOAD_MAX: &str = "at /amount: 1001 is greater than the maximum of 1000";
const PAYLOAD_PATTERN: &str = "at /ref: \"abc-1\" does not match \"^[A-Z]{3}-[0-9]+$\"";
const PAYLOAD_EXTRA: &str = "Additional properties are not allowed ('note' was unexpected)";
const PAYLOAD_ARRAY: &str = "[1] is not of type \"object\"";

/// No payload at all is validated as JSON null.
#[test]
fn missing_payload_is_null() {
    let s = order_schema();
    assert_eq!(
        s.check(None),
        Err("null is not of type \"object\"".to_string())
    );
    assert_eq!(s.check(None), s.check(Some(&Value::Null)));

    let nullable = PayloadSchema::compile(&json!({"type": ["object", "null"]})).unwrap();
    assert_eq!(nullable.check(None), Ok(()));
    let anything = PayloadSchema::compile(&json!({})).unwrap();
    assert_eq!(anything.check(None), Ok(()));
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn three_states() -> Machine {
    machine(json!({
        "states": {"draft": {"initial": true}, "review": {}, "done": {"final": true}},
        "events": {
            "submit": {"from": "draft", "to": "review"},
            "approve": {"from": "review", "to": "done"},
            "reject": {"from": "review", "to": "draft"}
        }
    }))
}

#[test]
fn dot_full_output() {
    assert_eq!(
        to_dot("orders", &three_states()),
        r#"digraph "orders" {
  rankdir=LR;
  node [shape=box, style=rounded];
  "[*]" [shape=point, label=""];
  "draft";
  "review";
  "done" [peripheries=2];
  "[*]" -> "draft";
  "draft" -> "review" [label="submit"];
  "review" -> "done" [label="approve"];
  "review" -> "draft" [label="reject"];
}
"#
    );
}

#[test]
fn mermaid_full_output() {
    assert_eq!(
        to_mermaid(&three_states()),
        "stateDiagram-v2
    [*] --> draft
    draft --> review : submit
    review --> done : approve
    review --> draft : reject
    done --> [*]
"
    );
}

/// DOT quotes every id and escapes `"` and `\`; spaces and colons need
/// nothing more inside quotes.
#[test]
fn dot_escapes_names() {
    let m = machine(json!({
        "states": {"in review": {"initial": true}, "say \"hi\"": {}, "a:b\\c": {"final": true}},
        "events": {"go: now": {"from": "in review", "to": "say \"hi\""},
                   "end": {"from": "say \"hi\"", "to": "a:b\\c"}}
    }));
    assert_eq!(
        to_dot("my \"graph\"", &m),
        r#"digraph "my \"graph\"" {
  rankdir=LR;
  node [shape=box, style=rounded];
  "[*]" [shape=point, label=""];
  "in review";
  "say \"hi\"";
  "a:b\\c" [peripheries=2];
  "[*]" -> "in review";
  "in review" -> "say \"hi\"" [label="go: now"];
  "say \"hi\"" -> "a:b\\c" [label="end"];
}
"#
    );
}

/// Mermaid: names that are not plain identifiers (spaces, leading digit,
/// dashes, the keywords `end`/`state`) are declared once with an alias `s<i>`
/// and referred to by it everywhere.
#[test]
fn mermaid_aliases_non_plain_names() {
    let m = machine(json!({
        "states": {
            "draft": {"initial": true},
            "in review": {},
            "2nd-look": {},
            "end": {"final": true},
            "state": {"final": true}
        },
        "events": {
            "submit": {"from": "draft", "to": "in review"},
            "recheck": {"from": "in review", "to": "2nd-look"},
            "close": {"from": ["in review", "2nd-look"], "to": "end"},
            "drop": {"from": "draft", "to": "state"}
        }
    }));
    assert_eq!(
        to_mermaid(&m),
        r#"stateDiagram-v2
    state "draft" as s0
    state "in review" as s1
    state "2nd-look" as s2
    state "end" as s3
    state "state" as s4
    [*] --> s0
    s0 --> s1 : submit
    s1 --> s2 : recheck
    s1 --> s3 : close
    s2 --> s3 : close
    s0 --> s4 : drop
    s3 --> [*]
    s4 --> [*]
"#
    );
}

/// A `;` on its own becomes its entity code (the one character that can be
/// escaped today without hitting the bug below).
#[test]
fn mermaid_escapes_semicolon() {
    let m = machine(json!({
        "states": {"a;b": {"initial": true}},
        "events": {"x;y": {"from": "a;b", "to": "a;b"}}
    }));
    assert_eq!(
        to_mermaid(&m),
        "stateDiagram-v2
    state \"a#59;b\" as s0
    [*] --> s0
    s0 --> s0 : x#59;y
"
    );
}

/// Quotes, colons and `#` must become Mermaid entity codes (`#quot;`, `#58;`,
/// `#35;`). Today `mermaid_text` replaces `;` last, so it also rewrites the
/// `;` that ends every entity it just produced: `"` comes out as
/// `#quot#59;`, `:` as `#58#59;`, `#` as `#35#59;`.
#[test]
fn mermaid_escapes_quotes_colons_and_hash() {
    let m = machine(json!({
        "states": {"say \"hi\"": {"initial": true}, "a:b": {}, "#1": {"final": true}},
        "events": {"fix: typo": {"from": "say \"hi\"", "to": "a:b"},
                   "go": {"from": "a:b", "to": "#1"}}
    }));
    assert_eq!(
        to_mermaid(&m),
        r##"stateDiagram-v2
    state "say #quot;hi#quot;" as s0
    state "a#58;b" as s1
    state "#35;1" as s2
    [*] --> s0
    s0 --> s1 : fix#58; typo
    s1 --> s2 : go
    s2 --> [*]
"##
    );
}

/// The alias `s<i>` for a non-plain name may equal the plain name of another
/// state, merging two states in the diagram.
#[test]
#[ignore = "stale: since every state is aliased when any is, ids cannot collide; rewrite to compare the ids, not alias and name"]
fn mermaid_alias_does_not_collide_with_plain_names() {
    let m = machine(json!({
        "states": {"s1": {"initial": true}, "in review": {}},
        "events": {"go": {"from": "s1", "to": "in review"},
                   "back": {"from": "in review", "to": "s1"}}
    }));
    let out = to_mermaid(&m);
    let alias = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("state \"in review\" as "))
        .unwrap_or_else(|| panic!("no alias line in:\n{out}"));
    assert_ne!(
        alias, "s1",
        "\"in review\" aliased to an existing state:\n{out}"
    );
}

/// Parses the leading quoted DOT id of a statement line.
fn dot_leading_id(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('"')?;
    let mut id = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => id.push(chars.next()?),
            '"' => return Some(id),
            c => id.push(c),
        }
    }
    None
}

/// The start marker is a node with the id "[*]"; a state with that
/// (perfectly legal) name is merged into it.
#[test]
#[ignore = "bug: render::to_dot start node id \"[*]\" collides with a state named [*]"]
fn dot_start_node_does_not_collide_with_state_names() {
    let m = machine(json!({
        "states": {"[*]": {"initial": true}, "done": {"final": true}},
        "events": {"go": {"from": "[*]", "to": "done"}}
    }));
    let out = to_dot("g", &m);
    let declared: Vec<String> = out
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(dot_leading_id)
        .collect();
    let mut distinct = declared.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        declared.len(),
        "node ids declared twice: {declared:?}\n{out}"
    );
}

/// A non-final state with no transitions at all appears in DOT but nowhere in
/// the Mermaid diagram, since Mermaid only mentions states through edges or
/// alias declarations.
#[test]
#[ignore = "bug: render::to_mermaid omits plain-named states that have no transitions"]
fn mermaid_shows_isolated_states() {
    let m = machine(json!({
        "states": {"a": {"initial": true}, "limbo": {}, "z": {"final": true}},
        "events": {"go": {"from": "a", "to": "z"}}
    }));
    assert!(to_dot("g", &m).contains("  \"limbo\";\n"));
    let out = to_mermaid(&m);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().any(|w| w == "limbo")),
        "limbo missing:\n{out}"
    );
}

#[test]
fn expansion_is_capped_and_the_error_names_the_count() {
    // 400 non-final states, one event from "*" to a list of 400 targets:
    // 160,000 transitions, over the cap.
    let states: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| {
            let state = if i == 0 {
                serde_json::json!({"initial": true})
            } else {
                serde_json::json!({})
            };
            (format!("s{i}"), state)
        })
        .collect();
    let targets: Vec<String> = (0..400).map(|i| format!("s{i}")).collect();
    let def = serde_json::json!({
        "states": states,
        "events": {"jump": {"from": "*", "to": targets}}
    });
    let message = reject(&def);
    assert_eq!(
        message,
        "event \"jump\" brings the expanded transitions to 160000, more than the 100000 a machine may have"
    );
}

/// A machine whose "failed" state is reached only through an action's
/// failure, with labels on two states.
fn charging() -> Machine {
    machine(json!({
        "states": {
            "new": {"initial": true},
            "charged": {"meta": {"label": "Charged \"ok\""}},
            "failed": {"final": true, "meta": {"label": "Card declined"}},
            "done": {"final": true, "meta": {"label": 7}}
        },
        "events": {
            "charge": {"from": "new", "to": "charged", "action": "shop.charge", "on_error": "failed"},
            "finish": {"from": "charged", "to": "done"}
        }
    }))
}

#[test]
fn on_error_targets_count_as_reachable() {
    let (_, warnings) = accept(json!({
        "states": {"new": {"initial": true}, "charged": {"final": true}, "failed": {"final": true}},
        "events": {"charge": {"from": "new", "to": "charged", "action": "shop.charge", "on_error": "failed"}}
    }));
    assert_eq!(warnings, Vec::<String>::new());
    // Without on_error, "failed" is unreachable.
    let (_, warnings) = accept(json!({
        "states": {"new": {"initial": true}, "charged": {"final": true}, "failed": {"final": true}},
        "events": {"charge": {"from": "new", "to": "charged", "action": "shop.charge"}}
    }));
    assert_eq!(
        warnings,
        vec!["state \"failed\" is unreachable from the initial state".to_string()]
    );
}

#[test]
fn dot_labels_states_and_draws_on_error_dotted() {
    assert_eq!(
        to_dot("charging", &charging()),
        r#"digraph "charging" {
  rankdir=LR;
  node [shape=box, style=rounded];
  "[*]" [shape=point, label=""];
  "new";
  "charged" [label="Charged \"ok\""];
  "failed" [label="Card declined", peripheries=2];
  "done" [peripheries=2];
  "[*]" -> "new";
  "new" -> "charged" [label="charge"];
  "charged" -> "done" [label="finish"];
  "new" -> "failed" [label="charge (on error)", style=dotted];
}
"#
    );
}

#[test]
fn mermaid_labels_on_error_edges() {
    assert_eq!(
        to_mermaid(&charging()),
        "stateDiagram-v2
    [*] --> new
    new --> charged : charge
    charged --> done : finish
    new --> failed : charge (on error)
    failed --> [*]
    done --> [*]
"
    );
}

// ---------------------------------------------------------------------------
// Events as lists of branches
// ---------------------------------------------------------------------------

mod branches {
    use super::*;
    use crate::machine::EventId;

    /// `submit` from draft goes to review; from review it needs a guard to
    /// go to approved, else (second branch from review) back to draft.
    fn review_flow() -> Value {
        json!({
            "states": {"draft": {"initial": true}, "review": {}, "approved": {"final": true}},
            "events": {
                "submit": [
                    {"from": "draft", "to": "review"},
                    {"from": "review", "to": "approved", "guard": "docs.complete"},
                    {"from": "review", "to": "draft", "roles": ["editor"]}
                ],
                "withdraw": {"from": "review", "to": "draft"}
            }
        })
    }

    fn names(m: &Machine, ids: impl IntoIterator<Item = EventId>) -> Vec<String> {
        ids.into_iter()
            .map(|e| format!("{}#{}", m.event(e).name, e))
            .collect()
    }

    #[test]
    fn each_branch_compiles_to_an_event_of_the_same_name() {
        let (m, warnings) = accept(review_flow());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            names(&m, 0..m.events.len() as EventId),
            ["submit#0", "submit#1", "submit#2", "withdraw#3"]
        );
        assert_eq!(m.event_id("submit"), Some(0));
        assert_eq!(m.event_id("withdraw"), Some(3));
        for e in 0..3 {
            assert_eq!(m.branches(e), 0..3);
        }
        assert_eq!(m.branches(3), 3..4);
        assert!(m.is_first_branch(0) && !m.is_first_branch(1) && !m.is_first_branch(2));
        assert_eq!(m.event(1).guard.as_deref(), Some("docs.complete"));
        assert_eq!(m.event(2).roles, ["editor"]);
    }

    #[test]
    fn branches_from_a_state_in_declaration_order() {
        let (m, _) = accept(review_flow());
        let s = |n: &str| m.state_id(n).unwrap();
        assert_eq!(m.branches_from(0, s("draft")), [0]);
        assert_eq!(m.branches_from(2, s("review")), [1, 2]);
        assert_eq!(m.branches_from(0, s("approved")), Vec::<EventId>::new());
        assert_eq!(
            m.targets_by_name(s("review"), 0),
            [s("approved"), s("draft")]
        );
        assert_eq!(m.events_between(s("review"), s("draft")), [2, 3]);
        // Each name once in the hint of a refusal.
        assert_eq!(m.events_from(s("review")), ["submit", "withdraw"]);
    }

    #[test]
    fn declared_transitions_are_one_per_name_from_and_to() {
        let (m, _) = accept(json!({
            "states": {"a": {"initial": true}, "b": {}},
            "events": {"go": [
                {"from": "a", "to": "b", "guard": "g.one"},
                {"from": "a", "to": "b", "guard": "g.two"},
                {"from": "b", "to": "a"}
            ]}
        }));
        let shown: Vec<(u16, &str, &str)> = m
            .declared_transitions()
            .iter()
            .map(|t| {
                (
                    t.event,
                    m.state(t.from).name.as_str(),
                    m.state(t.to).name.as_str(),
                )
            })
            .collect();
        assert_eq!(shown, [(0, "a", "b"), (0, "b", "a")]);
        assert_eq!(m.transitions().len(), 3);
        assert_eq!(
            to_mermaid(&m),
            "stateDiagram-v2\n    [*] --> a\n    a --> b : go\n    b --> a : go\n"
        );
    }

    #[test]
    fn normalized_form_keeps_the_list() {
        let (def, _) = compile_json(&review_flow()).unwrap();
        let normalized = def.to_json();
        assert_eq!(
            normalized["events"]["submit"],
            json!([
                {"from": ["draft"], "to": ["review"]},
                {"from": ["review"], "to": ["approved"], "guard": "docs.complete"},
                {"from": ["review"], "to": ["draft"], "roles": ["editor"]}
            ])
        );
        assert_eq!(
            normalized["events"]["withdraw"],
            json!({"from": ["review"], "to": ["draft"]})
        );
        let reread = Definition::from_json(&normalized).unwrap();
        assert_eq!(reread.to_json(), normalized);
    }

    #[test]
    fn a_single_branch_list_is_kept_as_a_list() {
        let v = json!({"states": {"a": {"initial": true}}, "events": {"e": [{"from": "a", "to": "a"}]}});
        let (def, compiled) = compile_json(&v).unwrap();
        assert_eq!(
            def.to_json()["events"]["e"],
            json!([{"from": ["a"], "to": ["a"]}])
        );
        assert_eq!(compiled.machine.branches(0), 0..1);
    }

    #[test]
    fn errors_name_the_branch() {
        let with = |submit: Value| {
            json!({"states": {"draft": {"initial": true}, "done": {"final": true}},
                   "events": {"submit": submit}})
        };
        assert_eq!(
            reject(&with(
                json!([{"from": "draft", "to": "done"}, {"from": "draft", "to": "nowhere"}])
            )),
            "event \"submit\": target state \"nowhere\" does not exist (branch 2)"
        );
        assert_eq!(
            reject(&with(json!([{"from": "draft", "to": "done", "gaurd": "x.y"}]))),
            "event \"submit\": unknown field \"gaurd\", expected one of \"from\", \"to\", \"guard\", \"roles\", \"payload\", \"action\", \"on_error\", \"meta\" (branch 1)"
        );
        assert_eq!(
            reject(&with(json!([{"from": "draft", "to": "done"}, "draft"]))),
            "event \"submit\": invalid type: string \"draft\", expected struct EventDef (branch 2)"
        );
        assert_eq!(
            reject(&with(json!([]))),
            "event \"submit\": a list of branches must hold at least one"
        );
        assert_eq!(
            reject(&with(json!([{"from": "done", "to": "draft"}]))),
            "event \"submit\": state \"done\" is final and cannot have outgoing events (branch 1)"
        );
    }

    #[test]
    fn branches_count_toward_the_event_limit() {
        let many: Vec<Value> = (0..=MAX_EVENTS)
            .map(|_| json!({"from": "a", "to": "a"}))
            .collect();
        let v = json!({"states": {"a": {"initial": true}}, "events": {"e": many}});
        assert_eq!(
            reject(&v),
            "a machine may have at most 1000 events (branches counted one by one), this one has 1001"
        );
    }

    #[test]
    fn a_timeout_event_may_have_branches_with_one_target_each() {
        let with = |expire: Value| {
            json!({"states": {"wait": {"initial": true, "timeout": {"after": "1 hour", "event": "expire"}},
                              "late": {"final": true}, "lost": {"final": true}, "other": {}},
                   "events": {"expire": expire, "back": {"from": "other", "to": "wait"}}})
        };
        let (m, _) = accept(with(json!([
            {"from": "other", "to": "wait"},
            {"from": "wait", "to": "late", "guard": "t.is_late"},
            {"from": "wait", "to": "lost"}
        ])));
        let wait = m.state_id("wait").unwrap();
        let timeout = m.state(wait).timeout.as_ref().unwrap();
        assert_eq!(m.event(timeout.event).name, "expire");
        assert!(m.is_first_branch(timeout.event));
        assert_eq!(
            reject(&with(json!([{"from": "wait", "to": "late"}, {"from": "wait", "to": ["late", "lost"]}]))),
            "state \"wait\": timeout event \"expire\" has several targets from \"wait\"; a timer needs one"
        );
        assert_eq!(
            reject(&with(json!([{"from": "other", "to": "wait"}]))),
            "state \"wait\": timeout event \"expire\" cannot fire from \"wait\""
        );
    }
}
