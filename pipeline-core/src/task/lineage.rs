//! Table lineage checked by the compiler: what a dependency *means*.
//!
//! Tables are declared once, in [`tables!`](crate::tables), as unit types in a module named
//! after their database (`warehouse::orders`). A task names the tables it writes and reads in
//! `#[task(writes = [..], reads = [..])]`; each written table gets an implementation of
//! [`TableWriter`] that names its task, so rustc itself refuses a second writer (two
//! implementations of one trait for one type) and a write to a `source` table (which
//! `tables!` implements as written by nobody). Each read becomes a constant that asks whether
//! the reader requires the table's writer, directly or through other tasks (`requires` or
//! `after`): if not, the constant panics, which is a compile error at the user's token:
//!
//! ```text
//! error[E0080]: evaluation panicked: task `make_report` reads `warehouse.orders`, written by
//!               task `load_orders`, which it does not require: add `LoadOrders` to `requires`
//! ```
//!
//! The search walks only tasks ranked above the writer (a task's rank, from the cycle check, is
//! one more than its dependencies' largest, so no task of a lower or equal rank can lead to
//! it), breadth first, and looks at no more than [`SEARCH_NODES`] tasks: a search cut short
//! compiles, and the check at start-up, which sees the whole graph, decides.

use super::DefRef;

/// Tasks one read's search looks at, at most.
const SEARCH_NODES: usize = 64;
/// Slots of the search's set of tasks seen: a power of two, twice [`SEARCH_NODES`].
const SEEN_SLOTS: usize = 2 * SEARCH_NODES;
const MESSAGE_CAPACITY: usize = 512;

/// A table as `tables!` declares it.
#[derive(Debug)]
pub struct TableDef {
    /// `database.table`: the configured database's name and the table's.
    pub name: &'static str,
    /// Read here, written elsewhere (a replica, a view): no task may write it.
    pub source: bool,
}

/// Implemented by each table type of `tables!`.
pub trait Table: 'static {
    #[doc(hidden)]
    const DEF: &'static TableDef;
}

/// The task that writes a table: implemented by `#[task(writes = [..])]` for each table it
/// writes, and by `tables!` for a source (written by no task).
#[diagnostic::on_unimplemented(
    message = "no task writes the table `{Self}`",
    label = "read here, but no task declares that it writes this table",
    note = "add the table to `writes = [..]` of the task that fills it, or mark its database \
            `source` in `tables!` if it is only read here"
)]
pub trait TableWriter: Table {
    #[doc(hidden)]
    const WRITER: Option<Writer>;
}

/// A table's writer, as the check names it.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    /// The writing task.
    pub task: DefRef,
    /// Its type, which a reader puts in `requires`.
    pub type_name: &'static str,
}

/// A table a task reads, with its writer (`None` for a source).
#[derive(Clone, Copy, Debug)]
pub struct TableRead {
    /// The table.
    pub table: &'static TableDef,
    /// Its writer.
    pub writer: Option<Writer>,
}

/// Refuses (as a compile error, in const context) the `index`th read of `reader` when it does
/// not require the table's writer. A source, the reader's own table, and a search cut short
/// pass. (The read is looked up here, not in the caller: the less each call site holds, the
/// less rustc checks at each of thousands.)
pub const fn check_read(reader: DefRef, index: usize) {
    let read = reader.def().reads[index];
    let Some(writer) = read.writer else {
        return;
    };
    if writer.task.id == reader.id || reader.id == 0 || writer.task.id == 0 {
        return;
    }
    // Most readers name the writer itself: no search for them.
    if directly_depends(reader, writer.task) || !surely_unreachable(reader, writer.task) {
        return;
    }
    let (message, len) = message(reader, read.table, writer);
    let (text, _) = message.split_at(len);
    match core::str::from_utf8(text) {
        Ok(text) => panic!("{}", text),
        Err(_) => panic!("a task reads a table whose writer it does not require"),
    }
}

/// Whether `task` lists `dependency` in `requires` or `after`.
const fn directly_depends(task: DefRef, dependency: DefRef) -> bool {
    let def = task.def();
    let lists = [def.requires, def.after];
    let mut list = 0;
    while list < lists.len() {
        let deps = lists[list];
        let mut i = 0;
        while i < deps.len() {
            if deps[i].id == dependency.id {
                return true;
            }
            i += 1;
        }
        list += 1;
    }
    false
}

/// Whether a search from `from` along `requires` and `after` saw every task ranked above
/// `target` without meeting it. `false` when it met it, or gave up.
const fn surely_unreachable(from: DefRef, target: DefRef) -> bool {
    let floor = target.rank.value();
    let mut nodes = [from; SEARCH_NODES];
    let mut seen = [0u64; SEEN_SLOTS];
    let mut len = 1;
    let mut next = 0;
    seen[(from.id as usize) & (SEEN_SLOTS - 1)] = from.id;
    while next < len {
        let def = nodes[next].def();
        next += 1;
        let lists = [def.requires, def.after];
        let mut list = 0;
        while list < lists.len() {
            let deps = lists[list];
            let mut i = 0;
            while i < deps.len() {
                let dep = deps[i];
                i += 1;
                if dep.id == target.id {
                    return false;
                }
                // Below or beside the writer's rank: no way to it from there.
                if dep.rank.value() <= floor {
                    continue;
                }
                let mut slot = (dep.id as usize) & (SEEN_SLOTS - 1);
                while seen[slot] != 0 && seen[slot] != dep.id {
                    slot = (slot + 1) & (SEEN_SLOTS - 1);
                }
                if seen[slot] == 0 {
                    if len == SEARCH_NODES {
                        return false;
                    }
                    seen[slot] = dep.id;
                    nodes[len] = dep;
                    len += 1;
                }
            }
            list += 1;
        }
    }
    true
}

/// The compile error's text, in a buffer (no allocation in const fns).
const fn message(
    reader: DefRef,
    table: &TableDef,
    writer: Writer,
) -> ([u8; MESSAGE_CAPACITY], usize) {
    let parts = [
        "task `",
        reader.def().name,
        "` reads `",
        table.name,
        "`, written by task `",
        writer.task.def().name,
        "`, which it does not require: add `",
        writer.type_name,
        "` to `requires` (or to `after`, if it may run on without it)",
    ];
    let mut buf = [0u8; MESSAGE_CAPACITY];
    let mut at = 0;
    let mut part = 0;
    while part < parts.len() {
        at = super::acyclic::append(&mut buf, at, parts[part]);
        part += 1;
    }
    (buf, at)
}
