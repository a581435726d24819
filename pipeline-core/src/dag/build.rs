//! From tasks to a validated graph: names checked, dependencies resolved (a family's name
//! means its members), blocking checks added to the tasks they hold back, cycles refused. The
//! `#[task]` registry goes through the same rules as graphs built from data.

use std::collections::HashMap;

use super::names::NameIndex;
use super::spec::{Action, Names, TableUse, TaskSpec};
use super::{CheckRole, Dag, TaskId, TaskNode, suggest};
use crate::hash::NameMap;
use crate::task::{self, Policy, TaskDef};

/// Why a graph is not valid, or a name not known.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DagError {
    /// No task at all.
    #[error(
        "no tasks are registered: the binary links no crate with #[task] functions \
         (name the crate that defines them, e.g. `use my_tasks as _;`)"
    )]
    Empty,
    #[error(
        "two tasks are named `{name}`: {first} and {second}; rename one with #[task(name = \"..\")]"
    )]
    /// Two tasks share a name.
    DuplicateName {
        /// The name.
        name: String,
        /// Where the first is defined.
        first: String,
        /// Where the second is defined.
        second: String,
    },
    #[error(
        "task `{task}` depends on unknown task `{dependency}`{}",
        did_you_mean(suggestion)
    )]
    /// A dependency names no task.
    UnknownDependency {
        /// The task that names it.
        task: String,
        /// The unknown name.
        dependency: String,
        /// The closest known name, if one is close.
        suggestion: Option<String>,
    },
    #[error("task dependency cycle: {}", path.join(" -> "))]
    /// The dependencies go round.
    Cycle {
        /// The tasks of the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    #[error("invalid task name {name:?}: {reason}")]
    /// A name that cannot be a task's.
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    #[error(
        "task `{task}` reads `{table}`, written by task `{writer}`, which it does not depend on: \
         add `{writer}` to its `requires` (or to `after`, if it may run on without it)"
    )]
    /// A task reads a table without depending on its writer: it may read it half made or stale.
    UnrequiredWriter {
        /// The reading task.
        task: String,
        /// The table.
        table: String,
        /// The task that writes it.
        writer: String,
    },
    #[error(
        "tasks `{first}` and `{second}` both write `{table}` in no order: make one require the \
         other, or give each a table of its own"
    )]
    /// Two tasks write one table in no order.
    UnorderedWriters {
        /// The table.
        table: String,
        /// One writer.
        first: String,
        /// The other.
        second: String,
    },
    #[error("unknown task `{name}`{}", did_you_mean(suggestion))]
    /// A target names no task or family.
    UnknownTask {
        /// The unknown name.
        name: String,
        /// The closest known name, if one is close.
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
    /// Adds a task.
    pub fn task(&mut self, spec: TaskSpec) -> &mut Self {
        self.specs.push(spec);
        self
    }

    /// Checks names, dependencies and cycles; the first problem found is the error.
    pub fn build(self) -> Result<Dag, DagError> {
        if self.specs.is_empty() {
            return Err(DagError::Empty);
        }
        let specs = self.specs;
        let name_of = |id: TaskId| specs[id.index()].name.as_str();
        let mut by_name = NameIndex::with_capacity(specs.len());
        let mut families: NameMap<String, Vec<TaskId>> = NameMap::default();
        for (index, spec) in specs.iter().enumerate() {
            check_name(&spec.name)?;
            let id = TaskId(u32::try_from(index).map_err(|_| DagError::InvalidName {
                name: spec.name.clone(),
                reason: "more than 4 billion tasks",
            })?);
            if let Err(first) = by_name.insert(id, &spec.name, name_of) {
                let origin = |s: &TaskSpec| {
                    s.origin
                        .clone()
                        .unwrap_or_else(|| "(built at run time)".into())
                };
                return Err(DagError::DuplicateName {
                    name: spec.name.clone(),
                    first: origin(&specs[first.index()]),
                    second: origin(spec),
                });
            }
            if let Some(family) = &spec.family {
                families.entry(family.clone()).or_default().push(id);
            }
        }
        // A name is a task's, or else a family's, which means each of its members.
        let resolve = |task: &str, names: &mut dyn Iterator<Item = &str>| {
            let mut ids = Vec::new();
            for dep in names {
                if let Some(id) = by_name.get(dep, name_of) {
                    ids.push(id);
                } else if let Some(members) = families.get(dep) {
                    ids.extend_from_slice(members);
                } else {
                    return Err(DagError::UnknownDependency {
                        task: task.to_string(),
                        dependency: dep.to_string(),
                        suggestion: suggest::closest(dep, specs.iter().map(|s| s.name.as_str())),
                    });
                }
            }
            Ok::<_, DagError>(ids)
        };
        let mut resolved = specs
            .iter()
            .map(|spec| {
                let check = match &spec.check {
                    Some((target, blocking)) => Some(Box::new(CheckRole {
                        targets: resolve(&spec.name, &mut std::iter::once(target.as_str()))?,
                        blocking: *blocking,
                    })),
                    None => None,
                };
                Ok(Resolved {
                    requires: resolve(&spec.name, &mut spec.requires.iter())?,
                    after: resolve(&spec.name, &mut spec.after.iter())?,
                    check,
                })
            })
            .collect::<Result<Vec<_>, DagError>>()?;
        // Each spec becomes its node where it lies (a node is no larger, so `collect` reuses
        // the list's allocation) and its dependency names are freed at once: a graph of
        // 100,000 tasks never holds both lists.
        let mut tasks: Vec<TaskNode> = specs
            .into_iter()
            .zip(resolved.iter_mut())
            .map(|(spec, resolved)| TaskNode {
                requires: std::mem::take(&mut resolved.requires),
                after: std::mem::take(&mut resolved.after),
                check: resolved.check.take(),
                name: spec.name,
                description: spec.description.into_boxed_str(),
                family: spec.family.map(String::into_boxed_str),
                origin: spec.origin.map(String::into_boxed_str),
                policy: spec.policy,
                action: spec.action,
                pool: spec.pool.map(String::into_boxed_str),
                priority: spec.priority,
                tables: spec.tables,
            })
            .collect();
        // A node is smaller than its spec: the list gives back what it no longer needs.
        tasks.shrink_to_fit();
        drop(resolved);
        hold_back_by_blocking_checks(&mut tasks);
        let dag = Dag {
            tasks,
            by_name,
            families,
        };
        if let Some(path) = dag.find_cycle() {
            return Err(DagError::Cycle { path });
        }
        dag.check_lineage()?;
        Ok(dag)
    }
}

// Building in place relies on a node being no larger than its spec, with the same alignment.
const _: () = assert!(
    size_of::<TaskNode>() <= size_of::<TaskSpec>()
        && align_of::<TaskNode>() == align_of::<TaskSpec>()
);

/// A spec's dependencies as ids, found while every spec is still there to be named.
struct Resolved {
    requires: Vec<TaskId>,
    after: Vec<TaskId>,
    check: Option<Box<CheckRole>>,
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

impl Dag {
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
                (std::ptr::from_ref(*def) as usize, names)
            })
            .collect();
        let dep_names = |deps: &[task::DefRef]| -> Names {
            let mut names = Names::default();
            for dep in deps {
                match names_by_def.get(&dep.addr()) {
                    Some(members) => members.iter().for_each(|member| names.push(member)),
                    None => names.push(dep.def().name),
                }
            }
            names
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
                spec.pool = def.pool.map(|pool| pool.name.to_string());
                spec.priority = def.priority;
                spec.check = check.clone();
                spec.tables = TableUse::of(def);
                builder.task(spec);
            }
        }
        builder.build()
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
pub(crate) fn member_name(family: &str, key: &str) -> String {
    format!("{family}[{key}]")
}
