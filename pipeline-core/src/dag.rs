//! The task graph: built from the `#[task]` registry or from data ([`DagBuilder`]), validated by
//! the same rules either way (unique names, known dependencies, no cycles), and queried for
//! order, upstream closures and dependents. No I/O here.

mod render;
mod suggest;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::task::{self, RunFn, TaskDef, TaskFuture};

pub use render::GraphFormat;

/// How long to wait before the first retry when nothing else is said; doubles on each retry.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Index of a task in its [`Dag`]. Ids follow the order tasks were given to the builder (by name
/// for the registry), so iteration is deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u32);

impl TaskId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How a task is run and what its failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts after the first one. Default: 0.
    pub retries: u32,
    /// Delay before the first retry. Default: [`DEFAULT_RETRY_DELAY`].
    pub retry_delay: Duration,
    /// Limit of one attempt. Default: none.
    pub timeout: Option<Duration>,
    /// Whether a failure fails the run. Default: true.
    pub critical: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: 0,
            retry_delay: DEFAULT_RETRY_DELAY,
            timeout: None,
            critical: true,
        }
    }
}

/// A function run as a task, for graphs built from data.
pub type DynRun = Arc<dyn for<'a> Fn(&'a Ctx) -> TaskFuture<'a> + Send + Sync>;

/// What a task executes.
#[derive(Clone)]
pub enum Action {
    /// A `#[task]` function (with its key, for a member of a family).
    Registered {
        run: RunFn,
        key: Option<&'static str>,
    },
    /// A closure given to the builder.
    Dynamic(DynRun),
}

impl Action {
    /// Starts the task.
    pub fn start<'a>(&self, ctx: &'a Ctx) -> TaskFuture<'a> {
        match self {
            Action::Registered { run, key } => run(ctx, *key),
            Action::Dynamic(run) => run(ctx),
        }
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Registered { key, .. } => {
                f.debug_struct("Registered").field("key", key).finish()
            }
            Action::Dynamic(_) => f.write_str("Dynamic"),
        }
    }
}

/// One task as the builder receives it: dependencies by name.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    name: String,
    description: String,
    family: Option<String>,
    origin: Option<String>,
    requires: Vec<String>,
    after: Vec<String>,
    policy: Policy,
    action: Action,
    /// For a check: the task (or family) it checks, and whether it blocks.
    check: Option<(String, bool)>,
}

impl TaskSpec {
    /// A task that runs `run`; dependencies and policy are set with the other methods.
    pub fn new<F>(name: impl Into<String>, run: F) -> Self
    where
        F: for<'a> Fn(&'a Ctx) -> TaskFuture<'a> + Send + Sync + 'static,
    {
        Self::with_action(name.into(), Action::Dynamic(Arc::new(run)))
    }

    fn with_action(name: String, action: Action) -> Self {
        TaskSpec {
            name,
            description: String::new(),
            family: None,
            origin: None,
            requires: Vec::new(),
            after: Vec::new(),
            policy: Policy::default(),
            action,
            check: None,
        }
    }

    /// Hard dependencies: each must succeed before this task runs.
    pub fn requires<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.requires.extend(names.into_iter().map(Into::into));
        self
    }

    /// Soft dependencies: each runs first, but its failure does not stop this task.
    pub fn after<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.after.extend(names.into_iter().map(Into::into));
        self
    }

    /// Makes this task a member of a family: naming the family (in `daily run`, or in another
    /// task's `requires`) means all its members.
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Makes this task a check of `target` (a task or a family), which it requires. A
    /// `blocking` check also holds back every task that requires the target: they wait for
    /// it and do not run if it fails. Its policy's `critical` is its severity: a failed
    /// non-critical check alerts gently and never fails the run, even when it blocks.
    pub fn checks(mut self, target: impl Into<String>, blocking: bool) -> Self {
        let target = target.into();
        if !self.requires.contains(&target) {
            self.requires.push(target.clone());
        }
        self.check = Some((target, blocking));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A task of a validated [`Dag`].
#[derive(Debug)]
pub struct TaskNode {
    pub name: String,
    pub description: String,
    /// The family name, for members of a `for_each` task.
    pub family: Option<String>,
    /// Where the task is defined, when known.
    pub origin: Option<String>,
    pub requires: Vec<TaskId>,
    pub after: Vec<TaskId>,
    pub policy: Policy,
    pub action: Action,
    /// Set for a check: what it checks.
    pub check: Option<CheckRole>,
}

/// What a check checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRole {
    /// The checked task, or every member of the checked family.
    pub targets: Vec<TaskId>,
    /// Tasks that require a target also require the check.
    pub blocking: bool,
}

/// Why a graph is not valid, or a name not known.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DagError {
    #[error(
        "no tasks are registered: the binary links no crate with #[task] functions \
         (name the crate that defines them, e.g. `use my_tasks as _;`)"
    )]
    Empty,
    #[error(
        "two tasks are named `{name}`: {first} and {second}; rename one with #[task(name = \"..\")]"
    )]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "task `{task}` depends on unknown task `{dependency}`{}",
        did_you_mean(suggestion)
    )]
    UnknownDependency {
        task: String,
        dependency: String,
        suggestion: Option<String>,
    },
    #[error("task dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
    #[error("invalid task name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("unknown task `{name}`{}", did_you_mean(suggestion))]
    UnknownTask {
        name: String,
        suggestion: Option<String>,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|name| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

/// Collects tasks, then validates them into a [`Dag`].
#[derive(Debug, Default)]
pub struct DagBuilder {
    specs: Vec<TaskSpec>,
}

impl DagBuilder {
    pub fn task(&mut self, spec: TaskSpec) -> &mut Self {
        self.specs.push(spec);
        self
    }

    /// Checks names, dependencies and cycles; the first problem found is the error.
    pub fn build(self) -> Result<Dag, DagError> {
        if self.specs.is_empty() {
            return Err(DagError::Empty);
        }
        let mut by_name: HashMap<String, TaskId> = HashMap::with_capacity(self.specs.len());
        let mut families: HashMap<String, Vec<TaskId>> = HashMap::new();
        for (index, spec) in self.specs.iter().enumerate() {
            check_name(&spec.name)?;
            let id = TaskId(u32::try_from(index).map_err(|_| DagError::InvalidName {
                name: spec.name.clone(),
                reason: "more than 4 billion tasks",
            })?);
            if let Some(&first) = by_name.get(&spec.name) {
                let origin = |s: &TaskSpec| {
                    s.origin
                        .clone()
                        .unwrap_or_else(|| "(built at run time)".into())
                };
                return Err(DagError::DuplicateName {
                    name: spec.name.clone(),
                    first: origin(&self.specs[first.index()]),
                    second: origin(spec),
                });
            }
            by_name.insert(spec.name.clone(), id);
            if let Some(family) = &spec.family {
                families.entry(family.clone()).or_default().push(id);
            }
        }
        // A name is a task's, or else a family's, which means each of its members.
        let resolve = |task: &str, names: &[String]| -> Result<Vec<TaskId>, DagError> {
            let mut ids = Vec::with_capacity(names.len());
            for dep in names {
                if let Some(&id) = by_name.get(dep) {
                    ids.push(id);
                } else if let Some(members) = families.get(dep) {
                    ids.extend_from_slice(members);
                } else {
                    return Err(DagError::UnknownDependency {
                        task: task.to_string(),
                        dependency: dep.clone(),
                        suggestion: suggest::closest(dep, by_name.keys().map(String::as_str)),
                    });
                }
            }
            Ok(ids)
        };
        // Each spec is consumed as it is resolved: its dependency names are freed at once,
        // which keeps the peak memory of large graphs low.
        let mut tasks = Vec::with_capacity(self.specs.len());
        for spec in self.specs {
            let check = match &spec.check {
                Some((target, blocking)) => Some(CheckRole {
                    targets: resolve(&spec.name, std::slice::from_ref(target))?,
                    blocking: *blocking,
                }),
                None => None,
            };
            tasks.push(TaskNode {
                requires: resolve(&spec.name, &spec.requires)?,
                after: resolve(&spec.name, &spec.after)?,
                name: spec.name,
                description: spec.description,
                family: spec.family,
                origin: spec.origin,
                policy: spec.policy,
                action: spec.action,
                check,
            });
        }
        hold_back_by_blocking_checks(&mut tasks);
        let dag = Dag {
            tasks,
            by_name,
            families,
        };
        if let Some(path) = dag.find_cycle() {
            return Err(DagError::Cycle { path });
        }
        Ok(dag)
    }
}

/// A blocking check joins the `requires` of every task that requires one of its targets
/// (checks of the same targets do not wait for each other).
fn hold_back_by_blocking_checks(tasks: &mut [TaskNode]) {
    let mut checks_of: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for (index, task) in tasks.iter().enumerate() {
        if let Some(role) = task.check.as_ref().filter(|role| role.blocking) {
            for &target in &role.targets {
                checks_of
                    .entry(target)
                    .or_default()
                    .push(TaskId(index as u32));
            }
        }
    }
    if checks_of.is_empty() {
        return;
    }
    for task in tasks.iter_mut().filter(|task| task.check.is_none()) {
        let mut held_by: Vec<TaskId> = task
            .requires
            .iter()
            .filter_map(|dep| checks_of.get(dep))
            .flatten()
            .copied()
            .collect();
        held_by.sort_unstable();
        held_by.dedup();
        held_by.retain(|check| !task.requires.contains(check));
        task.requires.extend(held_by);
    }
}

fn check_name(name: &str) -> Result<(), DagError> {
    let reason = if name.is_empty() {
        "a name cannot be empty"
    } else if name.chars().any(char::is_control) {
        "a name cannot contain control characters"
    } else if name.trim() != name {
        "a name cannot start or end with white space"
    } else {
        return Ok(());
    };
    Err(DagError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// A validated task graph.
#[derive(Debug)]
pub struct Dag {
    tasks: Vec<TaskNode>,
    by_name: HashMap<String, TaskId>,
    families: HashMap<String, Vec<TaskId>>,
}

impl Dag {
    pub fn builder() -> DagBuilder {
        DagBuilder::default()
    }

    /// The graph of every `#[task]` linked into this binary.
    pub fn from_registry() -> Result<Dag, DagError> {
        Self::from_defs(&task::registered())
    }

    /// The graph of the given definitions; a family becomes one task per key, and a dependency
    /// on a family means a dependency on each of its members.
    pub fn from_defs(defs: &[&'static TaskDef]) -> Result<Dag, DagError> {
        let mut seen: HashMap<&str, &TaskDef> = HashMap::new();
        for def in defs {
            if let Some(first) = seen.insert(def.name, def) {
                return Err(DagError::DuplicateName {
                    name: def.name.to_string(),
                    first: first.origin(),
                    second: def.origin(),
                });
            }
        }
        let names_by_def: HashMap<usize, Vec<String>> = defs
            .iter()
            .map(|def| {
                let names = members(def).into_iter().map(|(name, _)| name).collect();
                (task::DefRef::new(def).addr(), names)
            })
            .collect();
        let dep_names = |deps: &[task::DefRef]| -> Vec<String> {
            deps.iter()
                .flat_map(|dep| {
                    names_by_def
                        .get(&dep.addr())
                        .cloned()
                        .unwrap_or_else(|| vec![dep.def().name.to_string()])
                })
                .collect()
        };
        let mut builder = Dag::builder();
        for def in defs {
            let policy = Policy {
                retries: def.retries,
                retry_delay: def.retry_delay,
                timeout: def.timeout,
                critical: def.critical,
            };
            // A check's target is its one `requires`; a family's name means all its members.
            let check = def
                .check
                .then(|| def.requires.first())
                .flatten()
                .map(|target| (target.def().name.to_string(), def.blocks.is_some()));
            for (name, key) in members(def) {
                let mut spec =
                    TaskSpec::with_action(name, Action::Registered { run: def.run, key });
                spec.description = def.description.to_string();
                spec.family = def.keys.map(|_| def.name.to_string());
                spec.origin = Some(def.origin());
                spec.requires = dep_names(def.requires);
                spec.after = dep_names(def.after);
                spec.policy = policy;
                spec.check = check.clone();
                builder.task(spec);
            }
        }
        builder.build()
    }

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
        let hash = crate::load::fnv1a(lines.join("\n").as_bytes());
        format!("{:012x}", hash & 0xffff_ffff_ffff)
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn task(&self, id: TaskId) -> &TaskNode {
        &self.tasks[id.index()]
    }

    pub fn ids(&self) -> impl ExactSizeIterator<Item = TaskId> + use<> {
        (0..self.tasks.len() as u32).map(TaskId)
    }

    pub fn tasks(&self) -> impl ExactSizeIterator<Item = (TaskId, &TaskNode)> {
        self.ids().zip(self.tasks.iter())
    }

    pub fn id(&self, name: &str) -> Option<TaskId> {
        self.by_name.get(name).copied()
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
            .by_name
            .keys()
            .chain(self.families.keys())
            .map(String::as_str);
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
    pub fn topological_order_with(&self, dependents: &[Vec<TaskId>]) -> Vec<TaskId> {
        let (order, _) = self.kahn(dependents);
        order
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
        let mut closure = self.closure(&[task], |id| dependents[id.index()].clone());
        closure.retain(|&id| id != task);
        closure
    }

    /// For each task, the tasks that list it in `requires` or `after`.
    pub fn dependents(&self) -> Vec<Vec<TaskId>> {
        let mut dependents = vec![Vec::new(); self.tasks.len()];
        for (id, task) in self.tasks() {
            for dep in task.requires.iter().chain(&task.after) {
                dependents[dep.index()].push(id);
            }
        }
        dependents
    }

    pub fn render(&self, format: GraphFormat) -> String {
        render::render(self, format)
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
    fn kahn(&self, dependents: &[Vec<TaskId>]) -> (Vec<TaskId>, Vec<usize>) {
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
            for &dependent in &dependents[id.index()] {
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

/// The tasks a definition stands for, with their keys: itself, or one per key of a family.
fn members(def: &TaskDef) -> Vec<(String, Option<&'static str>)> {
    match def.keys {
        Some(keys) => keys
            .iter()
            .map(|key| (member_name(def.name, key), Some(*key)))
            .collect(),
        None => vec![(def.name.to_string(), None)],
    }
}

/// `load` + `orders` -> `load[orders]`.
pub fn member_name(family: &str, key: &str) -> String {
    format!("{family}[{key}]")
}
