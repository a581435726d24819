//! Task ids by name, with each name kept once: by its task. A map from `String` would copy
//! every name and hold a 32-byte entry per task (7 MB at 100,000 tasks); this table holds the
//! id alone and reads the name from the task when it compares.

use hashbrown::HashTable;

use super::TaskId;
use crate::hash::fnv1a;

/// Ids by name; the names are looked up through `name_of`, which every call is given.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    table: HashTable<TaskId>,
}

impl NameIndex {
    pub fn with_capacity(capacity: usize) -> Self {
        NameIndex {
            table: HashTable::with_capacity(capacity),
        }
    }

    /// The id of the task named `name`.
    pub fn get<'a>(&self, name: &str, name_of: impl Fn(TaskId) -> &'a str) -> Option<TaskId> {
        self.table
            .find(fnv1a(name.as_bytes()), |&id| name_of(id) == name)
            .copied()
    }

    /// Adds `id` under `name`, or says which id already has that name.
    pub fn insert<'a>(
        &mut self,
        id: TaskId,
        name: &str,
        name_of: impl Fn(TaskId) -> &'a str,
    ) -> Result<(), TaskId> {
        let hash = fnv1a(name.as_bytes());
        if let Some(&first) = self.table.find(hash, |&other| name_of(other) == name) {
            return Err(first);
        }
        self.table
            .insert_unique(hash, id, |&other| fnv1a(name_of(other).as_bytes()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_name_and_refuses_a_second_task_of_a_name() {
        let names: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let name_of = |id: TaskId| names[id.index()].as_str();
        let mut index = NameIndex::with_capacity(1);
        for i in 0..names.len() {
            let id = TaskId(i as u32);
            assert_eq!(index.insert(id, name_of(id), name_of), Ok(()));
        }
        assert_eq!(index.get("t999", name_of), Some(TaskId(999)));
        assert_eq!(index.get("t0", name_of), Some(TaskId(0)));
        assert_eq!(index.get("t1000", name_of), None);
        assert_eq!(index.insert(TaskId(5), "t7", name_of), Err(TaskId(7)));
    }
}
