//! The task graph: built from the `#[task]` registry or from data ([`DagBuilder`]), validated by
//! the same rules either way (unique names, known dependencies, no cycles), and queried for
//! order, upstream closures and dependents. No I/O here.

mod build;
mod lineage;
mod names;
mod render;
mod spec;
mod suggest;

use crate::hash::NameMap;
use std::collections::HashMap;

pub use crate::task::{DEFAULT_RETRY_DELAY, Policy};
pub use build::{DagBuilder, DagError};
pub use lineage::{Lineage, TableLineage};
pub use render::{GraphFormat, LineageFormat};
pub use spec::{Action, TableUse, TaskSpec};

/// Index of a task in its [`Dag`]. Ids follow the order tasks were given to the builder (by name
/// for the registry), so iteration is deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u32);

impl TaskId {
    /// The position in the graph, for vectors indexed by task.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A task of a validated [`Dag`].
#[derive(Debug)]
pub struct TaskNode {
    /// Its unique name (`load[orders]` for a family member).
    pub name: String,
    /// What it does: the doc comment of a `#[task]`.
    pub description: Box<str>,
    /// The family name, for members of a `for_each` task.
    pub family: Option<Box<str>>,
    /// Where the task is defined, when known.
    pub origin: Option<Box<str>>,
    /// Hard dependencies: must succeed first.
    pub requires: Vec<TaskId>,
    /// Soft dependencies: run first, whatever their outcome.
    pub after: Vec<TaskId>,
    /// Retries, timeout, criticality.
    pub policy: Policy,
    /// What running it does.
    pub action: Action,
    /// The resource pool whose slot it holds while it runs.
    pub pool: Option<Box<str>>,
    /// Free slots go to ready tasks of higher priority first.
    pub priority: i32,
    /// Set for a check: what it checks (boxed: most tasks are not checks).
    pub check: Option<Box<CheckRole>>,
    /// The tables it reads and writes, if it declares any.
    pub tables: Option<Box<TableUse>>,
}

/// What a check checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRole {
    /// The checked task, or every member of the checked family.
    pub targets: Vec<TaskId>,
    /// Tasks that require a target also require the check.
    pub blocking: bool,
}

/// For each task, the tasks that list it in `requires` or `after`, in id order: one list for
/// the graph and where each task's part starts, not a vector per task (5 MB less at 100,000
/// tasks).
#[derive(Debug)]
pub struct Dependents {
    starts: Vec<u32>,
    ids: Vec<TaskId>,
}

impl Dependents {
    /// The tasks that depend on `id` directly.
    pub fn of(&self, id: TaskId) -> &[TaskId] {
        &self.ids[self.starts[id.index()] as usize..self.starts[id.index() + 1] as usize]
    }
}

/// A validated task graph.
#[derive(Debug)]
pub struct Dag {
    tasks: Vec<TaskNode>,
    by_name: names::NameIndex,
    families: NameMap<String, Vec<TaskId>>,
}

impl Dag {
    /// A builder for graphs made from data at start-up (see [`TaskSpec`]).
    pub fn builder() -> DagBuilder {
        DagBuilder::default()
    }

    /// How many tasks (family members counted one by one).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// A short fingerprint of the graph's shape: its tasks' names, dependencies and checks,
    /// independent of the order they were given in. `daily --version` shows it.
    pub fn fingerprint(&self) -> String {
        let names = |ids: &[TaskId]| {
            let mut names: Vec<&str> = ids.iter().map(|id| self.task(*id).name.as_str()).collect();
            names.sort_unstable();
            names.join(",")
        };
        let mut lines: Vec<String> = self
            .tasks
            .iter()
            .map(|task| {
                let check = task.check.as_ref().map_or(String::new(), |role| {
                    format!("check {} {}", names(&role.targets), role.blocking)
                });
                format!(
                    "{}|{}|{}|{check}",
                    task.name,
                    names(&task.requires),
                    names(&task.after)
                )
            })
            .collect();
        lines.sort_unstable();
        let hash = crate::hash::fnv1a(lines.join("\n").as_bytes());
        format!("{:012x}", hash & 0xffff_ffff_ffff)
    }

    /// Whether it has no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The task of an id from this graph.
    pub fn task(&self, id: TaskId) -> &TaskNode {
        &self.tasks[id.index()]
    }

    /// Every id, in order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = TaskId> + use<> {
        (0..self.tasks.len() as u32).map(TaskId)
    }

    /// Every task with its id, in order.
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = (TaskId, &TaskNode)> {
        self.ids().zip(self.tasks.iter())
    }

    /// The id of the task with this name.
    pub fn id(&self, name: &str) -> Option<TaskId> {
        self.by_name.get(name, |id| &self.task(id).name)
    }

    /// The tasks a name on the command line means: one task, or every member of a family.
    pub fn select(&self, name: &str) -> Result<Vec<TaskId>, DagError> {
        if let Some(id) = self.id(name) {
            return Ok(vec![id]);
        }
        if let Some(members) = self.families.get(name) {
            return Ok(members.clone());
        }
        let candidates = self
            .tasks
            .iter()
            .map(|task| task.name.as_str())
            .chain(self.families.keys().map(String::as_str));
        Err(DagError::UnknownTask {
            name: name.to_string(),
            suggestion: suggest::closest(name, candidates),
        })
    }

    /// Every task, dependencies before dependents (ties broken by id, so the order is stable).
    pub fn topological_order(&self) -> Vec<TaskId> {
        let (order, _) = self.kahn(&self.dependents());
        order
    }

    /// The same, reusing dependents already computed with [`Dag::dependents`].
    pub fn topological_order_with(&self, dependents: &Dependents) -> Vec<TaskId> {
        let (order, _) = self.kahn(dependents);
        order
    }

    /// Each task's level: one more than its dependencies' largest (0 without any).
    pub(crate) fn levels(&self) -> Vec<u32> {
        let mut levels = vec![0u32; self.len()];
        for id in self.topological_order() {
            let task = self.task(id);
            levels[id.index()] = task
                .requires
                .iter()
                .chain(&task.after)
                .map(|dep| levels[dep.index()] + 1)
                .max()
                .unwrap_or(0);
        }
        levels
    }

    /// The targets and everything they depend on (through `requires` and `after`), in id order.
    pub fn upstream(&self, targets: &[TaskId]) -> Vec<TaskId> {
        self.closure(targets, |id| {
            let task = self.task(id);
            task.requires.iter().chain(&task.after).copied().collect()
        })
    }

    /// Every task that depends on `task`, directly or not, in id order (without `task`).
    pub fn downstream(&self, task: TaskId) -> Vec<TaskId> {
        let dependents = self.dependents();
        let mut closure = self.closure(&[task], |id| dependents.of(id).to_vec());
        closure.retain(|&id| id != task);
        closure
    }

    /// For each task, the tasks that list it in `requires` or `after`.
    pub fn dependents(&self) -> Dependents {
        // Counted first, then placed: one list for the whole graph.
        let mut starts = vec![0u32; self.tasks.len() + 1];
        for task in &self.tasks {
            for dep in task.requires.iter().chain(&task.after) {
                starts[dep.index() + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next: Vec<u32> = starts[..self.tasks.len()].to_vec();
        let mut ids = vec![TaskId(0); starts[self.tasks.len()] as usize];
        for (id, task) in self.tasks() {
            for dep in task.requires.iter().chain(&task.after) {
                ids[next[dep.index()] as usize] = id;
                next[dep.index()] += 1;
            }
        }
        Dependents { starts, ids }
    }

    /// The graph as Graphviz or Mermaid text.
    pub fn render(&self, format: GraphFormat) -> String {
        render::render(self, format)
    }

    /// Its tables and the tasks that write and read them, for `daily lineage`.
    pub fn render_lineage(&self, format: LineageFormat) -> String {
        render::render_lineage(self, format)
    }

    fn closure(&self, start: &[TaskId], next: impl Fn(TaskId) -> Vec<TaskId>) -> Vec<TaskId> {
        let mut seen = vec![false; self.tasks.len()];
        let mut stack: Vec<TaskId> = start.to_vec();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut seen[id.index()], true) {
                continue;
            }
            stack.extend(next(id).into_iter().filter(|dep| !seen[dep.index()]));
        }
        self.ids().filter(|id| seen[id.index()]).collect()
    }

    /// Kahn's algorithm: the order, and the in-degrees left (non-zero only on or behind cycles).
    fn kahn(&self, dependents: &Dependents) -> (Vec<TaskId>, Vec<usize>) {
        let mut waiting: Vec<usize> = self
            .tasks
            .iter()
            .map(|t| t.requires.len() + t.after.len())
            .collect();
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<TaskId>> = self
            .ids()
            .filter(|id| waiting[id.index()] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.tasks.len());
        while let Some(std::cmp::Reverse(id)) = ready.pop() {
            order.push(id);
            for &dependent in dependents.of(id) {
                waiting[dependent.index()] -= 1;
                if waiting[dependent.index()] == 0 {
                    ready.push(std::cmp::Reverse(dependent));
                }
            }
        }
        (order, waiting)
    }

    /// A dependency cycle, if any, as names starting from its smallest one and ending with it
    /// again: `a -> b -> a` means `a` depends on `b`, which depends on `a`.
    fn find_cycle(&self) -> Option<Vec<String>> {
        let (order, waiting) = self.kahn(&self.dependents());
        if order.len() == self.tasks.len() {
            return None;
        }
        // Every task left waits on another task left, so following such dependencies from any
        // of them must come back to a task already on the path.
        let stuck = |id: TaskId| waiting[id.index()] > 0;
        let start = self
            .ids()
            .filter(|&id| stuck(id))
            .min_by_key(|&id| &self.task(id).name)?;
        let mut path = vec![start];
        let mut position: HashMap<TaskId, usize> = HashMap::from([(start, 0)]);
        loop {
            let current = self.task(*path.last()?);
            let next = current
                .requires
                .iter()
                .chain(&current.after)
                .copied()
                .find(|&dep| stuck(dep))?;
            if let Some(&at) = position.get(&next) {
                let cycle = &path[at..];
                let smallest = (0..cycle.len()).min_by_key(|&i| &self.task(cycle[i]).name)?;
                let mut names: Vec<String> = (0..=cycle.len())
                    .map(|i| self.task(cycle[(smallest + i) % cycle.len()]).name.clone())
                    .collect();
                names.shrink_to_fit();
                return Some(names);
            }
            position.insert(next, path.len());
            path.push(next);
        }
    }
}
