//! A task's static definition as `#[task]` writes it, and the registry that collects them.
//! Generated code names these through `__private`; they are no public API.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::acyclic::RankRef;
use super::lineage::{TableDef, TableRead};
use super::{RunFn, Task};
use crate::pool::PoolDef;

/// Everything `#[task]` knows about a task, as a `static` written by the macro.
#[derive(Debug)]
pub struct TaskDef {
    /// The task's name, or its family's.
    pub name: &'static str,
    /// The doc comment of the task function.
    pub description: &'static str,
    /// Where the function is written, and in which module. Behind a pointer of its own: a
    /// task's place in its file changes with every edit above it, and nothing else of the
    /// definition may depend on that (rustc would check it again after each such edit).
    pub location: LocationRef,
    /// Hard dependencies: each must succeed before this task runs.
    pub requires: &'static [DefRef],
    /// Soft dependencies: each runs first, but its failure does not stop this task.
    pub after: &'static [DefRef],
    /// Attempts after the first one.
    pub retries: u32,
    /// Delay before the first retry.
    pub retry_delay: Duration,
    /// Limit of one attempt.
    pub timeout: Option<Duration>,
    /// A failure of a non-critical task does not fail the run.
    pub critical: bool,
    /// For a task family: one task per key (`load[orders]`).
    pub keys: Option<&'static [&'static str]>,
    /// Declared with `#[check]`.
    pub check: bool,
    /// For a blocking check: the checked task, whose dependents wait for this check.
    pub blocks: Option<DefRef>,
    /// The resource pool whose slot the task holds while it runs.
    pub pool: Option<&'static PoolDef>,
    /// Takes free slots before tasks of lower priority (default 0).
    pub priority: i32,
    /// The tables it reads, with their writers.
    pub reads: &'static [TableRead],
    /// The tables it writes.
    pub writes: &'static [&'static TableDef],
    /// Runs the task's function.
    pub run: RunFn,
}

impl TaskDef {
    /// Where the task is defined, for error messages: `example::loads (src/loads.rs:12)`.
    pub fn origin(&self) -> String {
        let location = self.location.get();
        format!(
            "{} ({}:{})",
            location.module_path, location.file, location.line
        )
    }

    /// The module that defines the task.
    pub fn module_path(&self) -> &'static str {
        self.location.get().module_path
    }
}

/// Where a task's function is written.
#[derive(Debug)]
pub struct Location {
    /// The module, as `module_path!()` says.
    pub module_path: &'static str,
    /// The source file, as `file!()` says.
    pub file: &'static str,
    /// The line of the function's name.
    pub line: u32,
    /// The column of the function's name.
    pub column: u32,
}

/// A pointer to a task's [`Location`], which the compile-time check never reads.
#[derive(Clone, Copy, Debug)]
pub struct LocationRef(*const Location);

// SAFETY: built only from a `&'static Location` (see `new`), immutable and `Sync`.
unsafe impl Send for LocationRef {}
// SAFETY: as above.
unsafe impl Sync for LocationRef {}

impl LocationRef {
    /// Points at a location.
    pub const fn new(location: &'static Location) -> Self {
        LocationRef(location)
    }

    /// The location pointed at.
    pub fn get(self) -> &'static Location {
        // SAFETY: built from a `&'static Location` in `new`.
        unsafe { &*self.0 }
    }
}

/// A task as its dependents name it: a pointer to its static definition, with what the
/// compile-time check reads of it (its id and its rank), so that the check touches a task's
/// definition only when it follows that task's own dependencies.
///
/// A raw pointer rather than a reference: the compile-time cycle check reads definitions
/// through it, and rustc does not follow raw pointers when it checks a constant, so a cyclic
/// graph reaches the check (and its clear message) instead of an error about recursive statics.
#[derive(Clone, Copy, Debug)]
pub struct DefRef {
    def: *const TaskDef,
    /// Tells tasks apart in the compile-time check: a hash of the crate and the task's name,
    /// which `#[task]` computes.
    pub id: u64,
    /// The task's rank in the compile-time check (see `acyclic`).
    pub rank: RankRef,
}

// SAFETY: a `DefRef` is only built from a `&'static TaskDef` (see `new`), and `TaskDef` is
// immutable and `Sync`.
unsafe impl Send for DefRef {}
// SAFETY: as above.
unsafe impl Sync for DefRef {}

impl DefRef {
    /// Points at a definition, with its id and rank.
    pub const fn new(def: &'static TaskDef, id: u64, rank: RankRef) -> Self {
        DefRef { def, id, rank }
    }

    /// The definition pointed at.
    pub const fn def(self) -> &'static TaskDef {
        // SAFETY: built from a `&'static TaskDef` in `new`.
        unsafe { &*self.def }
    }

    /// Identity of the definition, for maps at run time.
    pub(crate) fn addr(self) -> usize {
        self.def as usize
    }
}

// `#[task]` places each registration in the section of constructors that the loader runs:
// on a target with none, tasks would silently not register, so the runtime does not compile
// there. The list of targets is the macros' own.
pipeline_macros::__refuse_targets_without_constructors!();

/// Every task registered so far: `#[task]` adds each before `main` (see [`register`]).
static REGISTERED: Mutex<Vec<DefRef>> = Mutex::new(Vec::new());

/// Adds task `T` to the list of every task linked into the binary. `#[task]` places a pointer
/// to this function's instance for its task in the section of constructors that the platform's
/// loader runs before `main`, the way `inventory` works. A generic function rather than one
/// written out per task: rustc checks it once here, and an edit of a task's file leaves nothing
/// of it to check again.
pub extern "C" fn register<T: Task>() {
    REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(T::DEF);
}

/// Every task linked into this binary, sorted by name (the order of registration is not stable).
pub fn registered() -> Vec<&'static TaskDef> {
    let mut defs: Vec<&'static TaskDef> = REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|def| def.def())
        .collect();
    defs.sort_by(|a, b| {
        let (a_at, b_at) = (a.location.get(), b.location.get());
        (a.name, a_at.module_path, a_at.line).cmp(&(b.name, b_at.module_path, b_at.line))
    });
    defs
}
