//! Table lineage at start-up: the same rules the compiler checks for `#[task]` graphs, for every
//! graph (built from data too, and whatever the compile-time search left undecided). A task
//! that reads a table must depend (through `requires` or `after`, directly or not) on every task
//! that writes it; two tasks that write one table must be ordered; a table that no task writes
//! is a source. The members of a family declare their tables together (one declaration for the
//! family): among themselves, they need no order.
//!
//! A read's search walks only tasks of a higher level than its writer (a task's level is one
//! more than its dependencies' largest): the cost is what lies between them, not the graph. A
//! table with many readers has its writer's dependents gathered once instead.

use std::collections::{BTreeMap, HashSet};

use super::{Dag, DagError, Dependents, TaskId};

/// Readers of one table above which its writer's dependents are gathered once.
const FEW_READERS: usize = 8;

/// The tables of a graph: for each, who writes it and who reads it, in name order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// By table name (`database.table`).
    pub tables: BTreeMap<String, TableLineage>,
}

/// One table's writers and readers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TableLineage {
    /// The tasks that write it, in id order; none for a source.
    pub writers: Vec<TaskId>,
    /// The tasks that read it, in id order.
    pub readers: Vec<TaskId>,
}

impl TableLineage {
    /// Read here and written by no task: a replica's table, a view, another team's data.
    pub fn is_source(&self) -> bool {
        self.writers.is_empty()
    }
}

impl Dag {
    /// The tables its tasks declare, with their writers and readers.
    pub fn lineage(&self) -> Lineage {
        let mut lineage = Lineage::default();
        for (id, task) in self.tasks() {
            let Some(tables) = &task.tables else {
                continue;
            };
            for table in &tables.writes {
                let entry = lineage.tables.entry(table.clone()).or_default();
                entry.writers.push(id);
            }
            for table in &tables.reads {
                let entry = lineage.tables.entry(table.clone()).or_default();
                entry.readers.push(id);
            }
        }
        lineage
    }

    /// Refuses reads of tables whose writers the reader does not depend on, and writers of one
    /// table that are not ordered. Costs nothing for a graph that declares no tables.
    pub(super) fn check_lineage(&self) -> Result<(), DagError> {
        if self.tasks.iter().all(|task| task.tables.is_none()) {
            return Ok(());
        }
        let lineage = self.lineage();
        let levels = self.levels();
        let mut dependents = None;
        for (table, uses) in &lineage.tables {
            // Each writer after every earlier one (by level) that is not of its family.
            let mut writers = uses.writers.clone();
            writers.sort_by_key(|&id| levels[id.index()]);
            for (at, &later) in writers.iter().enumerate() {
                for &earlier in &writers[..at] {
                    if !self.same_family(earlier, later) && !self.reaches(later, earlier, &levels) {
                        return Err(DagError::UnorderedWriters {
                            table: table.clone(),
                            first: self.task(earlier).name.clone(),
                            second: self.task(later).name.clone(),
                        });
                    }
                }
            }
            for &writer in &uses.writers {
                // A family declares its tables together: its members do not order.
                let readers = uses
                    .readers
                    .iter()
                    .filter(|&&reader| reader != writer && !self.same_family(reader, writer));
                // Many readers of one table: who depends on its writer, found once, instead of
                // a search from each reader (each may walk most of the graph above it).
                let downstream = (uses.readers.len() > FEW_READERS).then(|| {
                    let dependents = dependents.get_or_insert_with(|| self.dependents());
                    self.downstream_of(writer, dependents)
                });
                for &reader in readers {
                    let depends = match &downstream {
                        Some(downstream) => downstream.contains(&reader),
                        None => self.reaches(reader, writer, &levels),
                    };
                    if !depends {
                        return Err(DagError::UnrequiredWriter {
                            task: self.task(reader).name.clone(),
                            table: table.clone(),
                            writer: self.task(writer).name.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `from` depends on `to`, directly or not (`from` on no task of a level at or
    /// below `to`'s can lead there).
    fn reaches(&self, from: TaskId, to: TaskId, levels: &[u32]) -> bool {
        let floor = levels[to.index()];
        let mut seen = HashSet::from([from]);
        let mut next = vec![from];
        while let Some(id) = next.pop() {
            let task = self.task(id);
            for &dep in task.requires.iter().chain(&task.after) {
                if dep == to {
                    return true;
                }
                if levels[dep.index()] > floor && seen.insert(dep) {
                    next.push(dep);
                }
            }
        }
        false
    }

    /// Every task that depends on `task`, directly or not.
    fn downstream_of(&self, task: TaskId, dependents: &Dependents) -> HashSet<TaskId> {
        let mut seen = HashSet::new();
        let mut next = vec![task];
        while let Some(id) = next.pop() {
            for &dependent in dependents.of(id) {
                if seen.insert(dependent) {
                    next.push(dependent);
                }
            }
        }
        seen
    }

    fn same_family(&self, a: TaskId, b: TaskId) -> bool {
        let family = |id: TaskId| self.task(id).family.as_deref();
        family(a).is_some() && family(a) == family(b)
    }
}
