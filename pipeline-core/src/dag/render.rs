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

/// How `daily lineage` prints the tables and the tasks between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineageFormat {
    /// A line a table: its writers and readers, or that it is a source.
    Text,
    /// Graphviz: tables as cylinders, edges from a writer to its table and from a table to its
    /// readers.
    Dot,
    /// Mermaid, likewise.
    Mermaid,
    /// For other tools: tables with writers and readers, tasks with reads and writes.
    Json,
}

impl FromStr for LineageFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(LineageFormat::Text),
            "dot" => Ok(LineageFormat::Dot),
            "mermaid" => Ok(LineageFormat::Mermaid),
            "json" => Ok(LineageFormat::Json),
            other => Err(format!(
                "unknown lineage format `{other}`: use `text`, `dot`, `mermaid` or `json`"
            )),
        }
    }
}

pub fn render_lineage(dag: &Dag, format: LineageFormat) -> String {
    let lineage = dag.lineage();
    // A family declares its tables once, for all its members: it is shown once, by its name.
    let declarer = |id: TaskId| {
        let task = dag.task(id);
        task.family.as_deref().unwrap_or(&task.name)
    };
    let names = |ids: &[TaskId]| -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        ids.iter()
            .map(|&id| declarer(id))
            .filter(|name| seen.insert(*name))
            .collect()
    };
    match format {
        LineageFormat::Text => {
            let width = lineage.tables.keys().map(String::len).max().unwrap_or(0);
            let mut out = String::new();
            for (table, uses) in &lineage.tables {
                let written = if uses.is_source() {
                    "source".to_string()
                } else {
                    format!("written by {}", names(&uses.writers).join(", "))
                };
                let read = if uses.readers.is_empty() {
                    "; read by no task".to_string()
                } else {
                    format!("; read by {}", names(&uses.readers).join(", "))
                };
                let _ = writeln!(out, "{table:<width$}  {written}{read}");
            }
            if out.is_empty() {
                out.push_str(
                    "no task declares the tables it reads or writes (tables! and \
                     #[task(reads = [..], writes = [..])])\n",
                );
            }
            out
        }
        LineageFormat::Json => {
            let tables: Vec<serde_json::Value> = lineage
                .tables
                .iter()
                .map(|(table, uses)| {
                    serde_json::json!({
                        "name": table,
                        "source": uses.is_source(),
                        "writers": names(&uses.writers),
                        "readers": names(&uses.readers),
                    })
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            let tasks: Vec<serde_json::Value> = dag
                .tasks()
                .filter_map(|(id, task)| {
                    let tables = task.tables.as_deref()?;
                    let name = declarer(id);
                    if !seen.insert(name) {
                        return None;
                    }
                    Some(serde_json::json!({
                        "name": name,
                        "reads": tables.reads,
                        "writes": tables.writes,
                    }))
                })
                .collect();
            let mut out = serde_json::json!({ "tables": tables, "tasks": tasks }).to_string();
            out.push('\n');
            out
        }
        LineageFormat::Dot => {
            let quote =
                |name: &str| format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
            let mut out =
                String::from("digraph lineage {\n    rankdir=LR;\n    node [shape=box];\n");
            for (table, uses) in &lineage.tables {
                let style = if uses.is_source() {
                    ", style=dashed"
                } else {
                    ""
                };
                let table = quote(table);
                let _ = writeln!(out, "    {table} [shape=cylinder{style}];");
                for writer in names(&uses.writers) {
                    let _ = writeln!(out, "    {} -> {table};", quote(writer));
                }
                for reader in names(&uses.readers) {
                    let _ = writeln!(out, "    {table} -> {};", quote(reader));
                }
            }
            out.push_str("}\n");
            out
        }
        LineageFormat::Mermaid => {
            // Node ids are positional: names may hold characters Mermaid does not allow in ids.
            let label = |name: &str| name.replace('"', "#quot;");
            let mut out = String::from("flowchart LR\n");
            // Each task's node once, numbered as it first appears.
            let mut tasks: std::collections::HashMap<String, usize> = Default::default();
            let mut node = |name: &str, out: &mut String| -> usize {
                if let Some(&at) = tasks.get(name) {
                    return at;
                }
                let at = tasks.len();
                let _ = writeln!(out, "    t{at}[\"{}\"]", label(name));
                tasks.insert(name.to_string(), at);
                at
            };
            for (index, (table, uses)) in lineage.tables.iter().enumerate() {
                let _ = writeln!(out, "    d{index}[(\"{}\")]", label(table));
                for writer in names(&uses.writers) {
                    let at = node(writer, &mut out);
                    let _ = writeln!(out, "    t{at} --> d{index}");
                }
                for reader in names(&uses.readers) {
                    let at = node(reader, &mut out);
                    let _ = writeln!(out, "    d{index} --> t{at}");
                }
            }
            out
        }
    }
}
