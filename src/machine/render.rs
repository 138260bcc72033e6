//! Diagrams of a machine: Graphviz DOT and Mermaid `stateDiagram-v2`.
//!
//! Names may hold any printable character, so both renderings quote or
//! alias them rather than trusting them as identifiers.

use super::compiled::Machine;

/// Graphviz: the initial state is pointed at by a dot, final states are
/// double-bordered, a state's `meta.label` (a string) labels its node, each
/// transition is an edge labelled by its event, and where an action's
/// failure leads (`on_error`) is a dotted edge.
pub fn to_dot(name: &str, m: &Machine) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        dot_quote(name)
    );
    out.push_str("  \"[*]\" [shape=point, label=\"\"];\n");
    for s in &m.states {
        let label = s
            .meta
            .as_ref()
            .and_then(|meta| meta.get("label"))
            .and_then(|label| label.as_str())
            .map(|label| format!("label={}", dot_quote(label)));
        let attributes: Vec<String> = label
            .into_iter()
            .chain(s.is_final.then(|| "peripheries=2".to_string()))
            .collect();
        if attributes.is_empty() {
            out.push_str(&format!("  {};\n", dot_quote(&s.name)));
        } else {
            out.push_str(&format!(
                "  {} [{}];\n",
                dot_quote(&s.name),
                attributes.join(", ")
            ));
        }
    }
    out.push_str(&format!(
        "  \"[*]\" -> {};\n",
        dot_quote(&m.state(m.initial).name)
    ));
    for t in m.declared_transitions() {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            dot_quote(&m.state(t.from).name),
            dot_quote(&m.state(t.to).name),
            dot_quote(&m.event(t.event).name)
        ));
    }
    for t in m.declared_error_transitions() {
        out.push_str(&format!(
            "  {} -> {} [label={}, style=dotted];\n",
            dot_quote(&m.state(t.from).name),
            dot_quote(&m.state(t.to).name),
            dot_quote(&format!("{} (on error)", m.event(t.event).name))
        ));
    }
    out.push_str("}\n");
    out
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Mermaid: when some state name is not a plain identifier, every state is
/// declared with an alias by position (`state "in review" as s3`), so any
/// name renders and no alias can collide with a plain name. Mermaid's state
/// diagrams have no dotted edge: where an action's failure leads is an edge
/// labelled "<event> (on error)".
pub fn to_mermaid(m: &Machine) -> String {
    let aliased = m.states.iter().any(|s| !is_plain(&s.name));
    let id = |i: usize| {
        if aliased {
            format!("s{i}")
        } else {
            m.states[i].name.clone()
        }
    };
    let mut out = String::from("stateDiagram-v2\n");
    for (i, s) in m.states.iter().enumerate() {
        if aliased {
            out.push_str(&format!(
                "    state \"{}\" as {}\n",
                mermaid_text(&s.name),
                id(i)
            ));
        }
    }
    out.push_str(&format!("    [*] --> {}\n", id(m.initial as usize)));
    for t in m.declared_transitions() {
        out.push_str(&format!(
            "    {} --> {} : {}\n",
            id(t.from as usize),
            id(t.to as usize),
            mermaid_text(&m.event(t.event).name)
        ));
    }
    for t in m.declared_error_transitions() {
        out.push_str(&format!(
            "    {} --> {} : {} (on error)\n",
            id(t.from as usize),
            id(t.to as usize),
            mermaid_text(&m.event(t.event).name)
        ));
    }
    for (i, s) in m.states.iter().enumerate() {
        if s.is_final {
            out.push_str(&format!("    {} --> [*]\n", id(i)));
        }
    }
    out
}

fn is_plain(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s != "end"
        && s != "state"
}

/// Mermaid has no escape for quotes or colons inside labels: use its
/// entity codes, in one pass so no code is itself rewritten.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            ':' => out.push_str("#58;"),
            ';' => out.push_str("#59;"),
            c => out.push(c),
        }
    }
    out
}
