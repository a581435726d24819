//! The run's graph and its timeline, drawn as SVG on the server: no script needed to see
//! them, and the same markup at 5 tasks or 5,000. Nodes carry their status as a class
//! (`s-failed`, ...) that the stylesheet colours and the live page updates.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::layout::{self, NODE_HEIGHT, NODE_WIDTH};
use super::text::{encode, escape};
use super::view::{LineageView, RunView, TaskInRun, WAITING};

/// Characters of a name shown in a node; the whole name is in its tooltip.
const LABEL_CHARS: usize = 24;
/// Attempts drawn in a timeline; a run with more says how many were left out.
pub const TIMELINE_ROWS: usize = 1_000;

/// From worst to best: a collapsed family shows the worst status of its members.
const SEVERITY: [&str; 9] = [
    "failed",
    "timed_out",
    "upstream_failed",
    "cancelled",
    "not_configured",
    "running",
    WAITING,
    "succeeded",
    "skipped",
];

/// The worst of some statuses: what a family drawn as one node shows.
pub fn worst<'a>(statuses: &[&'a str]) -> &'a str {
    statuses
        .iter()
        .min_by_key(|status| severity(status))
        .copied()
        .unwrap_or(WAITING)
}

fn severity(status: &str) -> usize {
    SEVERITY
        .iter()
        .position(|s| *s == status)
        .unwrap_or(SEVERITY.len())
}

/// One box of the drawing: a task, or a family drawn as one.
struct Node<'a> {
    label: String,
    title: String,
    href: String,
    status: &'static str,
    /// `data-task` or `data-family`, for the live page.
    data: (&'static str, &'a str),
    critical: bool,
    blocked: bool,
    /// The rank of its earliest member in the task graph.
    rank: usize,
}

/// The run's graph. Families are drawn as one node each unless named in `expanded`.
pub fn run_graph(view: &RunView, expanded: &HashSet<String>) -> String {
    let tasks = &view.tasks;
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| (task.name.as_str(), i))
        .collect();
    let dependencies = |task: &TaskInRun| -> Vec<usize> {
        task.requires
            .iter()
            .chain(&task.after)
            .filter_map(|dep| index.get(dep.as_str()).copied())
            .collect()
    };
    let task_edges: Vec<(usize, usize)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, task)| dependencies(task).into_iter().map(move |dep| (dep, i)))
        .collect();
    let task_rank = layout::longest_path_ranks(tasks.len(), &task_edges);
    let on_path: HashSet<&str> = view.critical_path.iter().map(String::as_str).collect();
    let blocked: HashSet<&str> = view.blocked.iter().map(|b| b.task.as_str()).collect();

    // Tasks to nodes: a collapsed family's members share one.
    let mut members: HashMap<&str, usize> = HashMap::new();
    for family in tasks.iter().filter_map(|t| t.family.as_deref()) {
        *members.entry(family).or_default() += 1;
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut node_of = vec![0usize; tasks.len()];
    let mut family_node: HashMap<&str, usize> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        let collapsed = task
            .family
            .as_deref()
            .filter(|family| !expanded.contains(*family));
        if let Some(family) = collapsed {
            if let Some(&n) = family_node.get(family) {
                let node = &mut nodes[n];
                if severity(task.status) < severity(node.status) {
                    node.status = task.status;
                }
                node.critical |= on_path.contains(task.name.as_str());
                node.blocked |= blocked.contains(task.name.as_str());
                node.rank = node.rank.min(task_rank[i]);
                node_of[i] = n;
                continue;
            }
            family_node.insert(family, nodes.len());
            node_of[i] = nodes.len();
            let members = members.get(family).copied().unwrap_or(0);
            nodes.push(Node {
                label: format!("{} ({members})", shorten(family, LABEL_CHARS - 5)),
                title: format!("family {family}: {members} tasks; click to expand"),
                href: expand_link(view.run.id, expanded, family),
                status: task.status,
                data: ("data-family", family),
                critical: on_path.contains(task.name.as_str()),
                blocked: blocked.contains(task.name.as_str()),
                rank: task_rank[i],
            });
        } else {
            node_of[i] = nodes.len();
            nodes.push(Node {
                label: shorten(&task.name, LABEL_CHARS),
                title: format!("{}: {}", task.name, task.status),
                href: format!("/runs/{}/tasks/{}", view.run.id, encode(&task.name)),
                status: task.status,
                data: ("data-task", &task.name),
                critical: on_path.contains(task.name.as_str()),
                blocked: blocked.contains(task.name.as_str()),
                rank: task_rank[i],
            });
        }
    }
    let mut edges: Vec<(usize, usize)> = task_edges
        .iter()
        .map(|&(from, to)| (node_of[from], node_of[to]))
        .filter(|(from, to)| from != to)
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let path_edges: HashSet<(usize, usize)> = view
        .critical_path
        .windows(2)
        .filter_map(|pair| {
            let from = node_of[*index.get(pair[0].as_str())?];
            let to = node_of[*index.get(pair[1].as_str())?];
            Some((from, to))
        })
        .collect();

    let boxes: Vec<Drawn> = nodes
        .into_iter()
        .map(|node| {
            let mut class = format!("node s-{}", node.status);
            if node.critical {
                class.push_str(" critical");
            }
            if node.blocked {
                class.push_str(" blocked");
            }
            Drawn {
                label: node.label,
                title: node.title,
                href: node.href,
                class,
                data: Some(node.data),
                rank: node.rank,
            }
        })
        .collect();
    draw(&boxes, &edges, &path_edges, "task graph")
}

/// The pipeline's tables between the tasks that write and read them: writer -> table ->
/// reader. Families are drawn as one node, as `daily lineage` lists them. Columns follow the
/// task graph: a table stands right of its writers, a source left of everything.
pub fn lineage_graph(view: &LineageView) -> String {
    // Task nodes: one a task, or a family; ranked as in the task graph, times two, so that a
    // table fits between its writer and its readers.
    let mut nodes: Vec<Drawn> = Vec::new();
    let mut node_of: HashMap<&str, usize> = HashMap::new();
    let mut family_node: HashMap<&str, usize> = HashMap::new();
    for task in &view.tasks {
        let rank = 2 * task.rank + 1;
        if let Some(family) = task.family.as_deref() {
            if let Some(&n) = family_node.get(family) {
                nodes[n].rank = nodes[n].rank.min(rank);
                node_of.insert(&task.name, n);
                continue;
            }
            family_node.insert(family, nodes.len());
        }
        let name = task.family.as_deref().unwrap_or(&task.name);
        node_of.insert(&task.name, nodes.len());
        nodes.push(Drawn {
            label: shorten(name, LABEL_CHARS),
            title: match task.family {
                Some(_) => format!("family {name}"),
                None => format!("task {name}"),
            },
            href: format!("/tasks/{}", encode(&task.name)),
            class: "node task".into(),
            data: None,
            rank,
        });
    }
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for table in &view.tables {
        let writers: Vec<usize> = table
            .writers
            .iter()
            .filter_map(|w| node_of.get(w.as_str()).copied())
            .collect();
        let at = nodes.len();
        let rank = writers
            .iter()
            .map(|&w| nodes[w].rank + 1)
            .max()
            .unwrap_or(0);
        let (title, class, href) = match (&table.last_load, table.source) {
            (_, true) => (
                format!("{}: a source, read here and written elsewhere", table.name),
                "node table source",
                "#tables".to_string(),
            ),
            (Some(load), _) => (
                format!(
                    "{}: last loaded {} UTC by {} ({}, run {})",
                    table.name, load.finished_at, load.task, load.partition, load.run_id
                ),
                "node table s-succeeded",
                format!("/runs/{}", load.run_id),
            ),
            (None, _) => (
                format!("{}: not loaded yet", table.name),
                "node table s-waiting",
                "#tables".to_string(),
            ),
        };
        nodes.push(Drawn {
            label: shorten(&table.name, LABEL_CHARS),
            title,
            href,
            class: class.into(),
            data: Some(("data-table", &table.name)),
            rank,
        });
        edges.extend(writers.iter().map(|&w| (w, at)));
        // A task that reads what it writes draws one edge, not a loop.
        edges.extend(
            table
                .readers
                .iter()
                .filter_map(|r| node_of.get(r.as_str()).copied())
                .filter(|r| !writers.contains(r))
                .map(|r| (at, r)),
        );
    }
    edges.sort_unstable();
    edges.dedup();
    // Ranks that hold nothing (tasks without tables) leave no empty column.
    let mut used: Vec<usize> = nodes.iter().map(|node| node.rank).collect();
    used.sort_unstable();
    used.dedup();
    for node in &mut nodes {
        node.rank = used.partition_point(|&rank| rank < node.rank);
    }
    draw(&nodes, &edges, &HashSet::new(), "lineage graph")
}

/// A box to draw, whatever it stands for.
struct Drawn<'a> {
    label: String,
    title: String,
    href: String,
    /// `node` and what the stylesheet colours it by.
    class: String,
    /// An attribute for the live page: `data-task` or `data-family`, and its value.
    data: Option<(&'static str, &'a str)>,
    rank: usize,
}

/// Lays out and draws boxes and the edges between them (by index), left to right; edges in
/// `highlighted` are drawn as the critical path.
fn draw(
    boxes: &[Drawn<'_>],
    edges: &[(usize, usize)],
    highlighted: &HashSet<(usize, usize)>,
    label: &str,
) -> String {
    let ranks: Vec<usize> = boxes.iter().map(|node| node.rank).collect();
    let placed = layout::layered(&ranks, edges);
    let mut svg = String::with_capacity(256 * (boxes.len() + edges.len()) + 512);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="{label}">"#,
        w = placed.width,
        h = placed.height,
    );
    svg.push_str(r#"<g class="edges">"#);
    for &(from, to) in edges {
        let (x1, y1) = placed.positions[from];
        let (x2, y2) = placed.positions[to];
        let (x1, y1, x2, y2) = (
            x1 + NODE_WIDTH,
            y1 + NODE_HEIGHT / 2.0,
            x2,
            y2 + NODE_HEIGHT / 2.0,
        );
        let middle = (x1 + x2) / 2.0;
        let class = if highlighted.contains(&(from, to)) {
            "edge critical"
        } else {
            "edge"
        };
        let _ = write!(
            svg,
            r#"<path class="{class}" d="M{x1:.0} {y1:.0}C{middle:.0} {y1:.0} {middle:.0} {y2:.0} {x2:.0} {y2:.0}"/>"#
        );
    }
    svg.push_str("</g><g class=\"nodes\">");
    for (node, &(x, y)) in boxes.iter().zip(&placed.positions) {
        let data = node.data.map_or(String::new(), |(attr, value)| {
            format!(" {attr}=\"{}\"", escape(value))
        });
        let _ = write!(
            svg,
            r#"<a href="{href}" class="{class}"{data}><title>{title}</title><rect x="{x:.0}" y="{y:.0}" width="{NODE_WIDTH:.0}" height="{NODE_HEIGHT:.0}" rx="4"/><text x="{tx:.0}" y="{ty:.0}">{label}</text></a>"#,
            href = escape(&node.href),
            class = escape(&node.class),
            title = escape(&node.title),
            tx = x + 8.0,
            ty = y + NODE_HEIGHT / 2.0 + 4.0,
            label = escape(&node.label),
        );
    }
    svg.push_str("</g></svg>");
    svg
}

/// The link that expands `family` too.
fn expand_link(run: i64, expanded: &HashSet<String>, family: &str) -> String {
    let mut families: Vec<&str> = expanded.iter().map(String::as_str).collect();
    families.push(family);
    families.sort_unstable();
    let query: Vec<String> = families
        .iter()
        .map(|f| format!("expand={}", encode(f)))
        .collect();
    format!("/runs/{run}?{}#graph", query.join("&"))
}

/// At most `chars` characters of `text`, with an ellipsis when cut.
pub fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// The run's attempts on a time axis, one row each in the order they started.
pub fn timeline(view: &RunView) -> String {
    const LABEL: f64 = 200.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 16.0;
    let mut rows: Vec<(&str, &super::view::AttemptView)> = view
        .tasks
        .iter()
        .flat_map(|task| task.attempts.iter().map(move |a| (task.name.as_str(), a)))
        .collect();
    rows.sort_by_key(|(name, attempt)| (attempt.started_at_ms, *name, attempt.attempt));
    rows.truncate(TIMELINE_ROWS);
    let start = view.run.started_at_ms;
    let end = rows
        .iter()
        .map(|(_, a)| a.started_at_ms + a.duration_ms)
        .max()
        .unwrap_or(start)
        .max(start + view.run.duration_ms)
        .max(start + 1);
    let scale = WIDTH / (end - start) as f64;
    let height = ROW * rows.len() as f64 + 24.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{tw:.0}" height="{height:.0}" role="img" aria-label="timeline of attempts">"#,
        tw = LABEL + WIDTH + 20.0,
    );
    for (row, (name, attempt)) in rows.iter().enumerate() {
        let y = row as f64 * ROW;
        let x = LABEL + (attempt.started_at_ms - start).max(0) as f64 * scale;
        let w = (attempt.duration_ms.max(0) as f64 * scale).max(2.0);
        let _ = write!(
            svg,
            r#"<g class="bar s-{status}" data-task="{task}"><title>{title}</title><text x="0" y="{ty:.0}">{label}</text><rect x="{x:.1}" y="{y:.0}" width="{w:.1}" height="{h:.0}"/></g>"#,
            status = attempt.status,
            task = escape(name),
            title = escape(&format!(
                "{name} attempt {}: {} in {}",
                attempt.attempt,
                attempt.status,
                crate::date::format_duration(std::time::Duration::from_millis(
                    attempt.duration_ms.max(0) as u64
                ))
            )),
            ty = y + ROW - 4.0,
            label = escape(&shorten(name, 30)),
            h = ROW - 3.0,
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{LABEL:.0}" y="{y:.0}">0 s</text><text class="axis end" x="{x:.0}" y="{y:.0}">{span}</text></svg>"#,
        y = height - 6.0,
        x = LABEL + WIDTH,
        span = crate::date::format_duration(std::time::Duration::from_millis((end - start) as u64)),
    );
    svg
}
