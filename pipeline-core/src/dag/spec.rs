//! Tasks as a graph's builder receives them: what a task runs, its dependencies by name, its
//! policy and, for a check, what it checks.

use std::fmt;
use std::sync::Arc;

use crate::ctx::Ctx;
use crate::task::{Policy, RunFn, TaskFuture};

/// A function run as a task, for graphs built from data.
pub type DynRun = Arc<dyn for<'a> Fn(&'a Ctx) -> TaskFuture<'a> + Send + Sync>;

/// What a task executes.
#[derive(Clone)]
pub enum Action {
    /// A `#[task]` function (with its key, for a member of a family).
    Registered {
        /// The generated entry point.
        run: RunFn,
        /// The member's key.
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
    pub(super) name: String,
    pub(super) description: String,
    pub(super) family: Option<String>,
    pub(super) origin: Option<String>,
    pub(super) requires: Names,
    pub(super) after: Names,
    pub(super) policy: Policy,
    pub(super) action: Action,
    pub(super) pool: Option<String>,
    pub(super) priority: i32,
    /// For a check: the task (or family) it checks, and whether it blocks.
    pub(super) check: Option<(String, bool)>,
    pub(super) tables: Option<Box<TableUse>>,
}

/// The tables a task reads and writes, by name (`database.table`). Boxed where it is kept: most
/// tasks of a large generated graph declare none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableUse {
    /// What it reads.
    pub reads: Vec<String>,
    /// What it writes.
    pub writes: Vec<String>,
}

impl TableUse {
    /// What a `#[task]` declared, if anything.
    pub(super) fn of(def: &crate::task::TaskDef) -> Option<Box<TableUse>> {
        if def.reads.is_empty() && def.writes.is_empty() {
            return None;
        }
        Some(Box::new(TableUse {
            reads: def
                .reads
                .iter()
                .map(|read| read.table.name.to_string())
                .collect(),
            writes: def
                .writes
                .iter()
                .map(|table| table.name.to_string())
                .collect(),
        }))
    }
}

impl TaskSpec {
    /// A task that runs `run`; dependencies and policy are set with the other methods.
    pub fn new<F>(name: impl Into<String>, run: F) -> Self
    where
        F: for<'a> Fn(&'a Ctx) -> TaskFuture<'a> + Send + Sync + 'static,
    {
        Self::with_action(name.into(), Action::Dynamic(Arc::new(run)))
    }

    pub(super) fn with_action(name: String, action: Action) -> Self {
        TaskSpec {
            name,
            description: String::new(),
            family: None,
            origin: None,
            requires: Names::default(),
            after: Names::default(),
            policy: Policy::default(),
            action,
            pool: None,
            priority: 0,
            check: None,
            tables: None,
        }
    }

    /// Hard dependencies: each must succeed before this task runs.
    pub fn requires<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        for name in names {
            self.requires.push(&name.into());
        }
        self
    }

    /// Soft dependencies: each runs first, but its failure does not stop this task.
    pub fn after<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        for name in names {
            self.after.push(&name.into());
        }
        self
    }

    /// Makes this task a member of a family: naming the family (in `daily run`, or in another
    /// task's `requires`) means all its members.
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    /// What the task does, for `daily list`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Retries, delay, timeout and criticality.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Puts the task in the resource pool `pool` (see `pool!`): it holds one of the pool's
    /// slots while it runs.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Free worker and pool slots go to ready tasks of higher priority first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Makes this task a check of `target` (a task or a family), which it requires. A
    /// `blocking` check also holds back every task that requires the target: they wait for
    /// it and do not run if it fails. Its policy's `critical` is its severity: a failed
    /// non-critical check alerts gently and never fails the run, even when it blocks.
    pub fn checks(mut self, target: impl Into<String>, blocking: bool) -> Self {
        let target = target.into();
        if !self.requires.iter().any(|name| name == target) {
            self.requires.push(&target);
        }
        self.check = Some((target, blocking));
        self
    }

    /// Tables it reads (`database.table`, as `pipeline.toml` names the database): each
    /// table's writers must be among its dependencies, direct or not. A table no task writes
    /// is a source.
    pub fn reads<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Self {
        let use_ = self.tables.get_or_insert_with(Box::default);
        use_.reads.extend(tables.into_iter().map(Into::into));
        self
    }

    /// Tables it writes: other writers of one of them must be ordered with it.
    pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Self {
        let use_ = self.tables.get_or_insert_with(Box::default);
        use_.writes.extend(tables.into_iter().map(Into::into));
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Dependency names, packed into one buffer (each name's length, then its bytes): a graph of
/// 100,000 tasks built from data held 12 MB of small strings for them while it was built, one
/// allocation each; this is one per task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Names(Vec<u8>);

impl Names {
    pub(super) fn push(&mut self, name: &str) {
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&name.as_bytes()[..len as usize]);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (name, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            rest = tail;
            // Whole names of `str`s go in, so whole `str`s come out.
            std::str::from_utf8(name).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_as_they_went_in() {
        let mut names = Names::default();
        for name in ["load[orders]", "", "größe", "t1"] {
            names.push(name);
        }
        let back: Vec<&str> = names.iter().collect();
        assert_eq!(back, ["load[orders]", "", "größe", "t1"]);
        assert_eq!(Names::default().iter().count(), 0);
    }

    #[test]
    fn a_check_requires_its_target_once() {
        let spec = TaskSpec::new("fresh", |_| Box::pin(async { Ok(()) }))
            .requires(["load"])
            .checks("load", true)
            .checks("other", false);
        assert_eq!(spec.requires.iter().collect::<Vec<_>>(), ["load", "other"]);
    }
}
