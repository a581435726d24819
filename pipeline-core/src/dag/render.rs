//! The graph as text for other tools: Graphviz dot and Mermaid. Edges point from a dependency to
//! its dependent (the direction data flows); `after` edges are dashed. Checks are hexagons, and
//! non-critical tasks and `warn` checks have dashed outlines.

use std::fmt::Write;
use std::str::FromStr;

use super::{Dag, TaskId};

/// How `daily graph` draws the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// Mermaid, for Markdown that renders it.
    Mermaid,
}

impl FromStr for GraphFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "dot" => Ok(GraphFormat::Dot),
            "mermaid" => Ok(GraphFormat::Mermaid),
            other => Err(format!(
                "unknown graph format `{other}`: use `dot` or `mermaid`"
            )),
        }
    }
}

pub fn render(dag: &Dag, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => dot(dag),
        GraphFormat::Mermaid => mermaid(dag),
    }
}

/// Every edge as (dependency, dependent, is `after`), in a stable order.
fn edges(dag: &Dag) -> impl Iterator<Item = (TaskId, TaskId, bool)> + '_ {
    dag.tasks().flat_map(|(id, task)| {
        let hard = task.requires.iter().map(move |&dep| (dep, id, false));
        let soft = task.after.iter().map(move |&dep| (dep, id, true));
        hard.chain(soft)
    })
}

fn dot(dag: &Dag) -> String {
    let quote = |name: &str| format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph pipeline {\n    rankdir=LR;\n    node [shape=box];\n");
    for (_, task) in dag.tasks() {
        let mut attributes = Vec::new();
        if task.check.is_some() {
            attributes.push("shape=hexagon");
        }
        if !task.policy.critical {
            attributes.push("style=dashed");
        }
        let style = if attributes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attributes.join(", "))
        };
        let _ = writeln!(out, "    {}{style};", quote(&task.name));
    }
    for (from, to, soft) in edges(dag) {
        let style = if soft { " [style=dashed]" } else { "" };
        let (from, to) = (quote(&dag.task(from).name), quote(&dag.task(to).name));
        let _ = writeln!(out, "    {from} -> {to}{style};");
    }
    out.push_str("}\n");
    out
}

fn mermaid(dag: &Dag) -> String {
    // Node ids are positional: task names may hold characters Mermaid does not allow in ids.
    let label = |name: &str| name.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    let mut optional = Vec::new();
    for (id, task) in dag.tasks() {
        let (open, close) = if task.check.is_some() {
            ("{{", "}}")
        } else {
            ("[", "]")
        };
        let _ = writeln!(
            out,
            "    t{}{open}\"{}\"{close}",
            id.index(),
            label(&task.name)
        );
        if !task.policy.critical {
            optional.push(format!("t{}", id.index()));
        }
    }
    for (from, to, soft) in edges(dag) {
        let arrow = if soft { "-.->" } else { "-->" };
        let _ = writeln!(out, "    t{} {arrow} t{}", from.index(), to.index());
    }
    if !optional.is_empty() {
        out.push_str("    classDef optional stroke-dasharray: 5 5\n");
        let _ = writeln!(out, "    class {} optional", optional.join(","));
    }
    out
}
