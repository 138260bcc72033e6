//! The JSON definition format, as serde types.
//!
//! Every struct refuses unknown keys: a typo such as `"gaurd"` must be an
//! error, never a rule silently dropped. States and events are kept as
//! ordered lists of `(name, body)` so errors and renderings are stable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole machine definition: `{"states": {...}, "events": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub states: Vec<(String, StateDef)>,
    pub events: Vec<(String, EventDecl)>,
}

/// An event as declared: one body, or a list of branches tried in order
/// (the first whose `from` holds and whose requirements pass is taken).
#[derive(Debug, Clone, PartialEq)]
pub enum EventDecl {
    One(Box<EventDef>),
    Branches(Vec<EventDef>),
}

impl EventDecl {
    /// The bodies in declaration order: a plain event is one branch.
    pub fn branches(&self) -> &[EventDef] {
        match self {
            EventDecl::One(e) => std::slice::from_ref(e.as_ref()),
            EventDecl::Branches(list) => list,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initial: bool,
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
}

/// `{"after": "7 days", "event": "lose"}`: the interval is checked by
/// PostgreSQL when the machine is stored, since only it parses intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    pub after: String,
    pub event: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    pub from: OneOrMany,
    pub to: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// `"a"` or `["a", "b"]`, as written; `"*"` and `"+"` are only meaningful
/// as the single-string form of `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Why a definition could not even be read as the format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl Definition {
    /// Reads a definition from JSON, naming the state or event whose body is
    /// malformed.
    pub fn from_json(value: &Value) -> Result<Definition, FormatError> {
        let top = value.as_object().ok_or_else(|| {
            FormatError(format!(
                "a machine definition must be a JSON object with \"states\" and \"events\", not {}",
                json_kind(value)
            ))
        })?;
        if let Some(unknown) = top.keys().find(|k| *k != "states" && *k != "events") {
            return Err(FormatError(format!(
                "unknown key \"{unknown}\" in the definition (expected \"states\" and \"events\")"
            )));
        }
        let states = section(top, "states")?
            .iter()
            .map(|(name, body)| parse_entry(name, body, "state"))
            .collect::<Result<_, _>>()?;
        let events = match top.get("events") {
            None => Vec::new(),
            Some(_) => section(top, "events")?
                .iter()
                .map(|(name, body)| parse_event(name, body))
                .collect::<Result<_, _>>()?,
        };
        Ok(Definition { states, events })
    }

    /// The normalized JSON form: `from` and `to` always lists (except the
    /// `"*"`/`"+"` wildcards, kept as declared), defaults left out.
    pub fn to_json(&self) -> Value {
        let states: Map<String, Value> = self
            .states
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    serde_json::to_value(s).expect("state serializes"),
                )
            })
            .collect();
        let events: Map<String, Value> = self
            .events
            .iter()
            .map(|(n, decl)| {
                let body = match decl {
                    EventDecl::One(e) => normalized(e),
                    EventDecl::Branches(list) => list.iter().map(normalized).collect(),
                };
                (n.clone(), body)
            })
            .collect();
        serde_json::json!({ "states": states, "events": events })
    }
}

/// One event body with `from` and `to` as lists (the `"*"`/`"+"`
/// wildcards kept as declared), defaults left out.
fn normalized(e: &EventDef) -> Value {
    let mut e = e.clone();
    if let OneOrMany::One(s) = &e.from {
        if s != "*" && s != "+" {
            e.from = OneOrMany::Many(vec![s.clone()]);
        }
    }
    if let OneOrMany::One(s) = &e.to {
        e.to = OneOrMany::Many(vec![s.clone()]);
    }
    serde_json::to_value(e).expect("event serializes")
}

/// An event's body: an object, or a list of branch objects (errors name
/// the branch, counted from 1).
fn parse_event(name: &str, body: &Value) -> Result<(String, EventDecl), FormatError> {
    let Value::Array(list) = body else {
        return parse_entry(name, body, "event").map(|(n, e)| (n, EventDecl::One(Box::new(e))));
    };
    let branches = list
        .iter()
        .enumerate()
        .map(|(i, branch)| {
            parse_entry(name, branch, "event")
                .map(|(_, e)| e)
                .map_err(|e| FormatError(format!("{} (branch {})", e.0, i + 1)))
        })
        .collect::<Result<_, _>>()?;
    Ok((name.to_string(), EventDecl::Branches(branches)))
}

fn section<'a>(
    top: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, FormatError> {
    match top.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(FormatError(format!(
            "\"{key}\" must be a JSON object keyed by name, not {}",
            json_kind(other)
        ))),
        None => Err(FormatError(format!("the definition has no \"{key}\""))),
    }
}

fn parse_entry<T: serde::de::DeserializeOwned>(
    name: &str,
    body: &Value,
    kind: &str,
) -> Result<(String, T), FormatError> {
    T::deserialize(body)
        .map(|parsed| (name.to_string(), parsed))
        .map_err(|e| {
            FormatError(format!(
                "{kind} \"{name}\": {}",
                e.to_string().replace('`', "\"")
            ))
        })
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
