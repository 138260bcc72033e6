//! A validated machine, compiled into dense ids and lookup tables.
//!
//! States and events are interned as small integers so the trigger answers
//! "may this row go from A to B, and by which event?" with array and hash
//! lookups, never by walking the JSON.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

pub type StateId = u16;
pub type EventId = u16;

#[derive(Debug)]
pub struct State {
    pub name: String,
    pub initial: bool,
    pub is_final: bool,
    pub meta: Option<Value>,
    pub timeout: Option<StateTimeout>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateTimeout {
    pub after: String,
    pub event: EventId,
}

pub struct Event {
    pub name: String,
    /// The targets as declared: one, or several for a dynamic target.
    pub targets: Vec<StateId>,
    pub guard: Option<String>,
    pub roles: Vec<String>,
    pub payload: Option<PayloadSchema>,
    pub action: Option<String>,
    pub on_error: Option<StateId>,
    pub meta: Option<Value>,
}

/// A JSON Schema compiled once, when the machine is stored or loaded.
pub struct PayloadSchema {
    pub schema: Value,
    validator: jsonschema::Validator,
}

impl PayloadSchema {
    pub fn compile(schema: &Value) -> Result<PayloadSchema, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        Ok(PayloadSchema {
            schema: schema.clone(),
            validator,
        })
    }

    /// Checks a payload; a missing payload is checked as JSON `null`.
    /// The error names the first offending path and what was wrong.
    pub fn check(&self, payload: Option<&Value>) -> Result<(), String> {
        let instance = payload.unwrap_or(&Value::Null);
        self.validator.validate(instance).map_err(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("at {path}: {e}")
            }
        })
    }
}

impl std::fmt::Debug for PayloadSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PayloadSchema({})", self.schema)
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

/// One declared transition after `*`, `+` and lists are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Transition {
    pub event: EventId,
    pub from: StateId,
    pub to: StateId,
}

#[derive(Debug)]
pub struct Machine {
    pub states: Vec<State>,
    pub events: Vec<Event>,
    pub initial: StateId,
    state_ids: HashMap<String, StateId>,
    /// Each name's first branch.
    event_ids: HashMap<String, EventId>,
    /// `branches[event]`: the ids of every branch of `event`'s name. An
    /// event declared as a list of branches is compiled as one `Event` per
    /// branch, with consecutive ids and the same name; a plain event is a
    /// list of one.
    branches: Vec<Range<EventId>>,
    /// Expanded transitions, sorted by (event, from, to).
    transitions: Vec<Transition>,
    /// `targets[from * events.len() + event]`: where `event` may lead from `from`.
    targets: Vec<Vec<StateId>>,
    /// Events that lead from the first state to the second.
    events_between: HashMap<(StateId, StateId), Vec<EventId>>,
}

impl Machine {
    pub(crate) fn new(
        states: Vec<State>,
        events: Vec<Event>,
        initial: StateId,
        mut transitions: Vec<Transition>,
    ) -> Machine {
        transitions.sort();
        transitions.dedup();
        let state_ids = states
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i as StateId))
            .collect();
        let mut event_ids: HashMap<String, EventId> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            event_ids.entry(e.name.clone()).or_insert(i as EventId);
        }
        let mut branches = Vec::with_capacity(events.len());
        let mut start = 0;
        for i in 0..events.len() {
            if i + 1 == events.len() || events[i + 1].name != events[start].name {
                let range = start as EventId..(i + 1) as EventId;
                branches.extend(std::iter::repeat_n(range, i + 1 - start));
                start = i + 1;
            }
        }
        let mut targets = vec![Vec::new(); states.len() * events.len()];
        let mut events_between: HashMap<(StateId, StateId), Vec<EventId>> = HashMap::new();
        for t in &transitions {
            targets[t.from as usize * events.len() + t.event as usize].push(t.to);
            let between = events_between.entry((t.from, t.to)).or_default();
            if !between.contains(&t.event) {
                between.push(t.event);
            }
        }
        Machine {
            states,
            events,
            initial,
            state_ids,
            event_ids,
            branches,
            transitions,
            targets,
            events_between,
        }
    }

    pub fn state_id(&self, name: &str) -> Option<StateId> {
        self.state_ids.get(name).copied()
    }

    pub fn event_id(&self, name: &str) -> Option<EventId> {
        self.event_ids.get(name).copied()
    }

    pub fn state(&self, id: StateId) -> &State {
        &self.states[id as usize]
    }

    pub fn event(&self, id: EventId) -> &Event {
        &self.events[id as usize]
    }

    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// Where an action's failure leads (`on_error`): one edge from each
    /// state its event leaves, sorted as `transitions`. `fire` moves there
    /// when the action raises, so these count when reaching states.
    pub fn error_transitions(&self) -> Vec<Transition> {
        let mut out: Vec<Transition> = self
            .transitions
            .iter()
            .filter_map(|t| {
                self.event(t.event).on_error.map(|to| Transition {
                    event: t.event,
                    from: t.from,
                    to,
                })
            })
            .collect();
        out.dedup();
        out
    }

    /// The transitions as a reader sees them: one per (event name, from,
    /// to), however many branches declare it, each under the name's first
    /// branch. The views and diagrams show these.
    pub fn declared_transitions(&self) -> Vec<Transition> {
        self.by_name(self.transitions.clone())
    }

    /// [`Machine::error_transitions`], one per (event name, from, to).
    pub fn declared_error_transitions(&self) -> Vec<Transition> {
        self.by_name(self.error_transitions())
    }

    fn by_name(&self, transitions: Vec<Transition>) -> Vec<Transition> {
        let mut out: Vec<Transition> = transitions
            .into_iter()
            .map(|t| Transition {
                event: self.branches(t.event).start,
                ..t
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every branch of `event`'s name, in declaration order (a plain
    /// event: itself).
    pub fn branches(&self, event: EventId) -> Range<EventId> {
        self.branches[event as usize].clone()
    }

    /// Whether `event` is its name's first branch: one per name, for
    /// listing events.
    pub fn is_first_branch(&self, event: EventId) -> bool {
        self.branches(event).start == event
    }

    /// The branches of `event`'s name that may fire from `from`, in order.
    pub fn branches_from(&self, event: EventId, from: StateId) -> Vec<EventId> {
        self.branches(event)
            .filter(|&b| !self.targets(from, b).is_empty())
            .collect()
    }

    /// Where any branch of `event`'s name may lead from `from`, each state
    /// once, in branch order.
    pub fn targets_by_name(&self, from: StateId, event: EventId) -> Vec<StateId> {
        let mut out: Vec<StateId> = Vec::new();
        for b in self.branches(event) {
            for &t in self.targets(from, b) {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// The states `event` may lead to from `from`; empty when not allowed.
    pub fn targets(&self, from: StateId, event: EventId) -> &[StateId] {
        &self.targets[from as usize * self.events.len() + event as usize]
    }

    /// The states from which `event` may lead to `to`, in state order.
    pub fn sources_to(&self, event: EventId, to: StateId) -> Vec<StateId> {
        let start = self.transitions.partition_point(|t| t.event < event);
        self.transitions[start..]
            .iter()
            .take_while(|t| t.event == event)
            .filter(|t| t.to == to)
            .map(|t| t.from)
            .collect()
    }

    /// The events (branches) declared from `from` to `to`, in declaration
    /// order.
    pub fn events_between(&self, from: StateId, to: StateId) -> &[EventId] {
        self.events_between
            .get(&(from, to))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Names of the events that may fire from `from`, sorted, each once:
    /// the HINT of every refusal.
    pub fn events_from(&self, from: StateId) -> Vec<&str> {
        let mut names: Vec<&str> = (0..self.events.len())
            .filter(|&e| !self.targets(from, e as EventId).is_empty())
            .map(|e| self.events[e].name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
