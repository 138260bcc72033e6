//! The rules a definition must follow, and the warnings it may earn.
//!
//! `compile` is the only way from a [`Definition`] to a [`Machine`]: every
//! error names the offending state or event, and nothing is compiled unless
//! every rule holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use serde_json::Value;

use super::compiled::{Event, Machine, PayloadSchema, State, StateId, StateTimeout, Transition};
use super::definition::{Definition, EventDecl, EventDef, OneOrMany};

/// Upper bounds that keep a hostile definition from costing memory or time.
pub const MAX_STATES: usize = 1000;
pub const MAX_EVENTS: usize = 1000;
pub const MAX_NAME_BYTES: usize = 200;
/// Transitions after `*`, `+` and target lists are expanded: enough for
/// any machine a person can read, small enough that compiling one stays
/// well under a second and a few MB in every backend that caches it.
pub const MAX_TRANSITIONS: usize = 100_000;

/// A rule the definition breaks; the message names the state or event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

/// A machine that passed every rule, with the warnings it earned.
#[derive(Debug)]
pub struct Compiled {
    pub machine: Machine,
    pub warnings: Vec<String>,
}

fn err<T>(msg: String) -> Result<T, DefinitionError> {
    Err(DefinitionError(msg))
}

/// Parses, checks and compiles a JSON definition.
pub fn compile_json(value: &Value) -> Result<(Definition, Compiled), DefinitionError> {
    let def = Definition::from_json(value).map_err(|e| DefinitionError(e.0))?;
    let compiled = compile(&def)?;
    Ok((def, compiled))
}

/// Checks every rule and compiles the definition.
pub fn compile(def: &Definition) -> Result<Compiled, DefinitionError> {
    if def.states.is_empty() {
        return err("a machine needs at least one state".into());
    }
    if def.states.len() > MAX_STATES {
        return err(format!(
            "a machine may have at most {MAX_STATES} states, this one has {}",
            def.states.len()
        ));
    }
    // Each branch is compiled as an event of its own.
    let branch_count: usize = def.events.iter().map(|(_, d)| d.branches().len()).sum();
    if branch_count > MAX_EVENTS {
        return err(format!(
            "a machine may have at most {MAX_EVENTS} events (branches counted one by one), this one has {branch_count}"
        ));
    }
    for (name, _) in &def.states {
        check_name("state", name)?;
        if name == "*" || name == "+" {
            return err(format!(
                "state \"{name}\": \"*\" and \"+\" are reserved for \"from\""
            ));
        }
    }
    for (name, decl) in &def.events {
        check_name("event", name)?;
        if matches!(decl, EventDecl::Branches(list) if list.is_empty()) {
            return err(format!(
                "event \"{name}\": a list of branches must hold at least one"
            ));
        }
    }

    let initials: Vec<&str> = def
        .states
        .iter()
        .filter(|(_, s)| s.initial)
        .map(|(n, _)| n.as_str())
        .collect();
    let initial = match initials.as_slice() {
        [one] => *one,
        [] => return err("no state is marked \"initial\": exactly one must be".into()),
        many => {
            return err(format!(
                "exactly one state may be initial, but {} are",
                quoted_list(many)
            ))
        }
    };

    let mut states: Vec<State> = def
        .states
        .iter()
        .map(|(name, s)| State {
            name: name.clone(),
            initial: s.initial,
            is_final: s.is_final,
            meta: s.meta.clone(),
            timeout: None,
        })
        .collect();
    // Names to ids by hash: a linear scan per name would make large
    // `from` lists quadratic.
    let state_ids: HashMap<&str, StateId> = def
        .states
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i as StateId))
        .rev()
        .collect();
    let state_id = |name: &str| state_ids.get(name).copied();

    let mut events = Vec::with_capacity(branch_count);
    let mut transitions = Vec::new();
    // Each name's first branch, for the timeouts below.
    let mut first_branch = std::collections::HashMap::new();
    for (name, decl) in &def.events {
        first_branch.insert(name.as_str(), events.len());
        let listed = matches!(decl, EventDecl::Branches(_));
        for (branch, e) in decl.branches().iter().enumerate() {
            crate::machine::check_interrupts();
            let event_index = events.len();
            let compiled = compile_branch(name, e, &states, &state_id, transitions.len());
            let (event, pairs) = compiled.map_err(|e| match listed {
                true => DefinitionError(format!("{} (branch {})", e.0, branch + 1)),
                false => e,
            })?;
            transitions.extend(pairs.into_iter().map(|(from, to)| Transition {
                event: event_index as u16,
                from,
                to,
            }));
            events.push(event);
        }
    }

    // How many targets each (event, source) has, counted in one pass: a
    // scan of every transition per timed state would be quadratic.
    let mut leads_from: HashMap<(usize, usize), usize> = HashMap::new();
    for t in &transitions {
        *leads_from
            .entry((t.event as usize, t.from as usize))
            .or_default() += 1;
    }
    for (index, (name, s)) in def.states.iter().enumerate() {
        if let Some(timeout) = &s.timeout {
            let event = *first_branch.get(timeout.event.as_str()).ok_or_else(|| {
                DefinitionError(format!(
                    "state \"{name}\": timeout event \"{}\" does not exist",
                    timeout.event
                ))
            })?;
            let branches = event..event + def_branches(def, &timeout.event);
            let leads: Vec<usize> = branches
                .map(|b| leads_from.get(&(b, index)).copied().unwrap_or(0))
                .filter(|&n| n > 0)
                .collect();
            if leads.is_empty() {
                return err(format!(
                    "state \"{name}\": timeout event \"{}\" cannot fire from \"{name}\"",
                    timeout.event
                ));
            }
            // A timer fires with no caller to choose among several targets.
            if leads.iter().any(|&n| n > 1) {
                return err(format!(
                    "state \"{name}\": timeout event \"{}\" has several targets from \"{name}\"; a timer needs one",
                    timeout.event
                ));
            }
            if timeout.after.trim().is_empty() {
                return err(format!(
                    "state \"{name}\": timeout \"after\" must be an interval such as \"7 days\""
                ));
            }
            states[index].timeout = Some(StateTimeout {
                after: timeout.after.clone(),
                event: event as u16,
            });
        }
    }

    let initial = state_id(initial).expect("initial state is declared");
    let machine = Machine::new(states, events, initial, transitions);
    let warnings = warnings(&machine);
    Ok(Compiled { machine, warnings })
}

/// One branch of an event (a plain event is one): its compiled form and
/// its (source, target) pairs. `so_far` is how many transitions the
/// branches before it expanded to.
fn compile_branch(
    name: &str,
    e: &EventDef,
    states: &[State],
    state_id: &impl Fn(&str) -> Option<StateId>,
    so_far: usize,
) -> Result<(Event, Vec<(StateId, StateId)>), DefinitionError> {
    let targets = resolve_targets(name, e, state_id)?;
    let pairs = expand_sources(name, e, &targets, states, state_id)?;
    if so_far + pairs.len() > MAX_TRANSITIONS {
        return err(format!(
            "event \"{name}\" brings the expanded transitions to {}, more than the {MAX_TRANSITIONS} a machine may have",
            so_far + pairs.len()
        ));
    }
    Ok((compile_event(name, e, targets, state_id)?, pairs))
}

/// How many branches the event `name` declares.
fn def_branches(def: &Definition, name: &str) -> usize {
    def.events
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, d)| d.branches().len())
}

fn check_name(kind: &str, name: &str) -> Result<(), DefinitionError> {
    if name.is_empty() {
        return err(format!("a {kind} name must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return err(format!(
            "{kind} name \"{}…\" is longer than {MAX_NAME_BYTES} bytes",
            truncate(name, 40)
        ));
    }
    if name.chars().any(char::is_control) {
        return err(format!("{kind} name {name:?} contains a control character"));
    }
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A list of names with no duplicates, none empty.
fn distinct<'a>(
    event: &str,
    key: &str,
    names: &[&'a str],
) -> Result<Vec<&'a str>, DefinitionError> {
    if names.is_empty() {
        return err(format!(
            "event \"{event}\": \"{key}\" must name at least one state"
        ));
    }
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(*n) {
            return err(format!(
                "event \"{event}\": \"{key}\" names state \"{n}\" twice"
            ));
        }
    }
    Ok(names.to_vec())
}

fn resolve_targets(
    event: &str,
    e: &EventDef,
    state_id: &impl Fn(&str) -> Option<StateId>,
) -> Result<Vec<StateId>, DefinitionError> {
    distinct(event, "to", &e.to.names())?
        .into_iter()
        .map(|n| {
            if n == "*" || n == "+" {
                return err(format!(
                    "event \"{event}\": \"to\" cannot be \"{n}\"; name the target states"
                ));
            }
            state_id(n).ok_or_else(|| {
                DefinitionError(format!(
                    "event \"{event}\": target state \"{n}\" does not exist"
                ))
            })
        })
        .collect()
}

/// Expands `from` into (source, target) pairs.
fn expand_sources(
    event: &str,
    e: &EventDef,
    targets: &[StateId],
    states: &[State],
    state_id: &impl Fn(&str) -> Option<StateId>,
) -> Result<Vec<(StateId, StateId)>, DefinitionError> {
    let non_final = || (0..states.len() as StateId).filter(|&s| !states[s as usize].is_final);
    let pairs: Vec<(StateId, StateId)> = match &e.from {
        OneOrMany::One(w) if w == "*" => non_final()
            .flat_map(|s| targets.iter().map(move |&t| (s, t)))
            .collect(),
        OneOrMany::One(w) if w == "+" => targets
            .iter()
            .flat_map(|&t| non_final().filter(move |&s| s != t).map(move |s| (s, t)))
            .collect(),
        from => {
            let mut pairs = Vec::new();
            for n in distinct(event, "from", &from.names())? {
                if n == "*" || n == "+" {
                    return err(format!(
                        "event \"{event}\": \"{n}\" must stand alone as \"from\", not in a list"
                    ));
                }
                let s = state_id(n).ok_or_else(|| {
                    DefinitionError(format!(
                        "event \"{event}\": source state \"{n}\" does not exist"
                    ))
                })?;
                if states[s as usize].is_final {
                    return err(format!(
                        "event \"{event}\": state \"{n}\" is final and cannot have outgoing events"
                    ));
                }
                pairs.extend(targets.iter().map(|&t| (s, t)));
            }
            pairs
        }
    };
    if pairs.is_empty() {
        return err(format!("event \"{event}\": \"from\" matches no state"));
    }
    Ok(pairs)
}

fn compile_event(
    name: &str,
    e: &EventDef,
    targets: Vec<StateId>,
    state_id: &impl Fn(&str) -> Option<StateId>,
) -> Result<Event, DefinitionError> {
    for (key, function) in [("guard", &e.guard), ("action", &e.action)] {
        if let Some(f) = function {
            if !is_function_name(f) {
                return err(format!(
                    "event \"{name}\": {key} \"{f}\" is not a function name (write name or schema.name)"
                ));
            }
        }
    }
    let roles = match &e.roles {
        None => Vec::new(),
        Some(r) if r.is_empty() => {
            return err(format!(
                "event \"{name}\": \"roles\" must name at least one role"
            ))
        }
        Some(r) => {
            if let Some(bad) = r.iter().find(|r| r.is_empty() || r.len() > 63) {
                return err(format!(
                    "event \"{name}\": role \"{bad}\" is not a valid role name"
                ));
            }
            r.clone()
        }
    };
    let payload = match &e.payload {
        None => None,
        Some(schema) => Some(PayloadSchema::compile(schema).map_err(|m| {
            DefinitionError(format!(
                "event \"{name}\": \"payload\" is not a valid JSON Schema: {m}"
            ))
        })?),
    };
    let on_error = match (&e.on_error, &e.action) {
        (None, _) => None,
        (Some(_), None) => {
            return err(format!(
                "event \"{name}\": \"on_error\" needs an \"action\""
            ))
        }
        (Some(s), Some(_)) => Some(state_id(s).ok_or_else(|| {
            DefinitionError(format!(
                "event \"{name}\": on_error state \"{s}\" does not exist"
            ))
        })?),
    };
    Ok(Event {
        name: name.to_string(),
        targets,
        guard: e.guard.clone(),
        roles,
        payload,
        action: e.action.clone(),
        on_error,
        meta: e.meta.clone(),
    })
}

/// `name`, `schema.name`, either part optionally double-quoted.
fn is_function_name(s: &str) -> bool {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    let re = PATTERN.get_or_init(|| {
        let part = r#"(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")"#;
        regex::Regex::new(&format!("^{part}(?:\\.{part})?$")).expect("valid regex")
    });
    s.len() <= 2 * 63 + 5 && re.is_match(s)
}

/// Unreachable states and non-final states with no way out. An `on_error`
/// state is reached from every state its event leaves.
fn warnings(machine: &Machine) -> Vec<String> {
    let (states, transitions) = (&machine.states, machine.transitions());
    let errors = machine.error_transitions();
    // Adjacency lists, built once: linear in states and transitions.
    let mut next: Vec<Vec<StateId>> = vec![Vec::new(); states.len()];
    let mut leaves = vec![false; states.len()];
    for t in transitions {
        next[t.from as usize].push(t.to);
        leaves[t.from as usize] = true;
    }
    for t in &errors {
        next[t.from as usize].push(t.to);
    }
    let mut reached = vec![false; states.len()];
    let mut queue = VecDeque::from([machine.initial]);
    reached[machine.initial as usize] = true;
    while let Some(s) = queue.pop_front() {
        for &to in &next[s as usize] {
            if !reached[to as usize] {
                reached[to as usize] = true;
                queue.push_back(to);
            }
        }
    }
    let mut out = Vec::new();
    for (i, s) in states.iter().enumerate() {
        if !reached[i] {
            out.push(format!(
                "state \"{}\" is unreachable from the initial state",
                s.name
            ));
        }
        if !s.is_final && !leaves[i] {
            out.push(format!(
                "state \"{}\" is not final but no event leaves it",
                s.name
            ));
        }
    }
    out
}
