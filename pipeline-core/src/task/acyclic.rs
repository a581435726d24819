//! The compile-time cycle check, at a cost linear in tasks plus edges.
//!
//! Every task has a rank, a `static` that `#[task]` writes next to its definition: one more
//! than the largest rank of its dependencies. rustc evaluates each static once, so ranking a
//! graph costs one step per edge, and a graph with a cycle has no ranking: somewhere on the
//! cycle a rank would need itself. Before a task's rank looks at its dependencies' ranks, it
//! looks for a short way back to itself (a search of at most [`SEARCH_NODES`] tasks); a task on
//! such a cycle gets rank 0 and reads no other rank, so nothing recurses, and the member of the
//! cycle with the smallest name reports it:
//!
//! ```text
//! error[E0080]: evaluation panicked: task dependency cycle: load_orders -> load_users -> load_orders
//! ```
//!
//! A cycle too long for that search is still refused: its ranks need themselves, and rustc's
//! own cycle error lists the rank statics of the tasks on it. There is no limit under which a
//! cycle compiles. Ranks are read through raw pointers so that rustc follows them only when a
//! rank is computed, and tasks are told apart by an id that `#[task]` hashes from their crate
//! and name, so that moving a task within its file changes nothing here.

use super::DefRef;

/// Tasks a search for a way back looks at, at most (a cycle whose tasks are within this many
/// of each other gets the clear message).
const SEARCH_NODES: usize = 8;
/// Dependencies a search follows, at most.
const SEARCH_EDGES: usize = 32;
/// Slots of the search's set of tasks seen: a power of two, twice [`SEARCH_NODES`], so that
/// a lookup takes a probe or two (const evaluation is slow: a scanned list made the search
/// cost grow with the square of the tasks it saw).
const SEEN_SLOTS: usize = 2 * SEARCH_NODES;
const MESSAGE_CAPACITY: usize = 1024;
const PREFIX: &str = "task dependency cycle: ";
const ARROW: &str = " -> ";

/// A pointer to a task's rank `static`.
#[derive(Clone, Copy, Debug)]
pub struct RankRef(*const u32);

// SAFETY: built only from a `&'static u32` (see `new`), which is immutable and `Sync`.
unsafe impl Send for RankRef {}
// SAFETY: as above.
unsafe impl Sync for RankRef {}

impl RankRef {
    /// Points at a rank.
    pub const fn new(rank: &'static u32) -> Self {
        RankRef(rank)
    }

    /// The rank pointed at (in const context, evaluates its static).
    pub(crate) const fn value(self) -> u32 {
        // SAFETY: built from a `&'static u32` in `new`.
        unsafe { *self.0 }
    }
}

/// The rank of `task`: one more than its largest dependency's rank (1 without dependencies).
/// On a cycle that the search finds, the member with the smallest name panics with the cycle
/// (a compile error in const context, at that task's rank) and the others get rank 0, so that
/// nothing recurses. rustc evaluates every rank, so every cycle is refused, whatever its length.
pub const fn rank(task: DefRef) -> u32 {
    let def = task.def();
    // A task without dependencies is on no cycle: no search (most loads are such tasks).
    if def.requires.is_empty() && def.after.is_empty() {
        return 1;
    }
    let search = way_back(task);
    if search.found {
        if start_is_smallest(&search) {
            let (message, len) = cycle_message(&search);
            let (text, _) = message.split_at(len);
            match core::str::from_utf8(text) {
                Ok(text) => panic!("{}", text),
                Err(_) => panic!("task dependency cycle"),
            }
        }
        return 0;
    }
    let mut best = 0;
    let lists = [def.requires, def.after];
    let mut list = 0;
    while list < lists.len() {
        let deps = lists[list];
        let count = deps.len();
        let mut i = 0;
        while i < count {
            // SAFETY: built from a `&'static u32` in `RankRef::new`.
            let rank = unsafe { *deps[i].rank.0 };
            if rank > best {
                best = rank;
            }
            i += 1;
        }
        list += 1;
    }
    best + 1
}

/// A breadth-first search from a task for a way back to it.
struct Search {
    nodes: [DefRef; SEARCH_NODES],
    /// The index in `nodes` each node was reached from.
    parents: [usize; SEARCH_NODES],
    len: usize,
    /// Whether the last node reached has an edge back to the start.
    found: bool,
    /// The node whose edge leads back.
    last: usize,
    /// Ids of the tasks in `nodes`, by hash; 0 marks a free slot.
    seen: [u64; SEEN_SLOTS],
}

// Const evaluation pays for every function call (a frame, a resolution), so the loops below
// index slices and probe the set inline rather than through helpers.
const fn way_back(start: DefRef) -> Search {
    let mut search = Search {
        nodes: [start; SEARCH_NODES],
        parents: [0; SEARCH_NODES],
        len: 1,
        found: false,
        last: 0,
        seen: [0; SEEN_SLOTS],
    };
    let start_id = start.id;
    search.seen[(start_id as usize) & (SEEN_SLOTS - 1)] = start_id;
    let mut edges = 0;
    let mut next = 0;
    while next < search.len {
        let def = search.nodes[next].def();
        let lists = [def.requires, def.after];
        let mut list = 0;
        while list < lists.len() {
            let deps = lists[list];
            let count = deps.len();
            let mut i = 0;
            while i < count {
                if edges == SEARCH_EDGES {
                    return search;
                }
                edges += 1;
                let dep = deps[i];
                i += 1;
                if dep.id == start_id {
                    search.found = true;
                    search.last = next;
                    return search;
                }
                if search.len == SEARCH_NODES {
                    continue;
                }
                // Open addressing: the set holds at most SEARCH_NODES ids in twice as many
                // slots, so a free slot is always found; 0 marks a free slot.
                let mut slot = (dep.id as usize) & (SEEN_SLOTS - 1);
                while search.seen[slot] != 0 && search.seen[slot] != dep.id {
                    slot = (slot + 1) & (SEEN_SLOTS - 1);
                }
                if search.seen[slot] == 0 {
                    search.seen[slot] = dep.id;
                    search.nodes[search.len] = dep;
                    search.parents[search.len] = next;
                    search.len += 1;
                }
            }
            list += 1;
        }
        next += 1;
    }
    search
}

/// The cycle found, from the start: indices into `nodes`, and how many.
const fn cycle_path(search: &Search) -> ([usize; SEARCH_NODES], usize) {
    let mut reversed = [0usize; SEARCH_NODES];
    let mut len = 0;
    let mut at = search.last;
    loop {
        reversed[len] = at;
        len += 1;
        if at == 0 {
            break;
        }
        at = search.parents[at];
    }
    let mut path = [0usize; SEARCH_NODES];
    let mut i = 0;
    while i < len {
        path[i] = reversed[len - 1 - i];
        i += 1;
    }
    (path, len)
}

const fn start_is_smallest(search: &Search) -> bool {
    let (path, len) = cycle_path(search);
    let start = search.nodes[0].def().name;
    let mut i = 1;
    while i < len {
        if str_less(search.nodes[path[i]].def().name, start) {
            return false;
        }
        i += 1;
    }
    true
}

/// `task dependency cycle: a -> b -> a`, in a buffer (no allocation in const fns).
const fn cycle_message(search: &Search) -> ([u8; MESSAGE_CAPACITY], usize) {
    let (path, len) = cycle_path(search);
    let mut message = [0u8; MESSAGE_CAPACITY];
    let mut at = append(&mut message, 0, PREFIX);
    let mut i = 0;
    // The path, then its first task again to close the cycle.
    while i <= len {
        let name = search.nodes[if i == len { 0 } else { path[i] }].def().name;
        if i > 0 {
            at = append(&mut message, at, ARROW);
        }
        if at + name.len() + ARROW.len() + 3 > MESSAGE_CAPACITY {
            at = append(&mut message, at, "...");
            break;
        }
        at = append(&mut message, at, name);
        i += 1;
    }
    (message, at)
}

/// Appends whole strings only, so the buffer always holds valid UTF-8; one that does not fit
/// is left out. Where the message goes on.
pub(super) const fn append<const N: usize>(buf: &mut [u8; N], at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    if at + bytes.len() > N {
        return at;
    }
    let mut i = 0;
    while i < bytes.len() {
        buf[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

const fn str_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}
