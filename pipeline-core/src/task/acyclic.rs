//! The compile-time cycle check. `#[task]` emits `const _: () = assert_acyclic(<T as Task>::DEF);`
//! for every task; rustc evaluates it while compiling and reports a panic as an error:
//!
//! ```text
//! error[E0080]: evaluation panicked: task dependency cycle: load_orders -> load_users -> load_orders
//! ```
//!
//! The walk follows raw pointers between the tasks' static definitions, so it works across
//! modules, files and crates. A cycle is reported once, by its member with the smallest name.

use super::{DefRef, TaskDef};

/// Deeper chains than this are left to the run-time check, which has no limit.
const MAX_DEPTH: usize = 256;
/// More upstream tasks than this are left to the run-time check too.
const MAX_VISITED: usize = 4096;
const MESSAGE_CAPACITY: usize = 1024;
const PREFIX: &str = "task dependency cycle: ";
const ARROW: &str = " -> ";

/// Panics (a compile error in const context) if `start` lies on a dependency cycle and has the
/// smallest name in it. Follows both `requires` and `after`: either kind of cycle can never run.
pub const fn assert_acyclic(start: DefRef) {
    let mut path = [start; MAX_DEPTH];
    let mut next_dep = [0usize; MAX_DEPTH];
    let mut depth = 1;
    let mut visited = [start; MAX_VISITED];
    let mut visited_len = 0;

    while depth > 0 {
        let def = path[depth - 1].def();
        let index = next_dep[depth - 1];
        if index >= def.requires.len() + def.after.len() {
            depth -= 1;
            continue;
        }
        next_dep[depth - 1] = index + 1;
        let dep = if index < def.requires.len() {
            def.requires[index]
        } else {
            def.after[index - def.requires.len()]
        };
        if same_task(dep.def(), start.def()) {
            if start_is_smallest(&path, depth) {
                let (message, len) = cycle_message(&path, depth);
                let (text, _) = message.split_at(len);
                match core::str::from_utf8(text) {
                    Ok(text) => panic!("{}", text),
                    Err(_) => panic!("task dependency cycle"),
                }
            }
            continue;
        }
        if contains(&visited, visited_len, dep) {
            continue;
        }
        if visited_len == MAX_VISITED || depth == MAX_DEPTH {
            return;
        }
        visited[visited_len] = dep;
        visited_len += 1;
        path[depth] = dep;
        next_dep[depth] = 0;
        depth += 1;
    }
}

const fn contains(visited: &[DefRef], len: usize, def: DefRef) -> bool {
    let mut i = 0;
    while i < len {
        if same_task(visited[i].def(), def.def()) {
            return true;
        }
        i += 1;
    }
    false
}

/// Two definitions are the same task when they come from the same macro call. (Pointers cannot
/// be compared in const fns.)
const fn same_task(a: &TaskDef, b: &TaskDef) -> bool {
    a.line == b.line
        && a.column == b.column
        && str_eq(a.name, b.name)
        && str_eq(a.file, b.file)
        && str_eq(a.module_path, b.module_path)
}

const fn start_is_smallest(path: &[DefRef], depth: usize) -> bool {
    let start = path[0].def().name;
    let mut i = 1;
    while i < depth {
        if str_less(path[i].def().name, start) {
            return false;
        }
        i += 1;
    }
    true
}

/// `task dependency cycle: a -> b -> a`, in a buffer (no allocation in const fns).
const fn cycle_message(path: &[DefRef], depth: usize) -> ([u8; MESSAGE_CAPACITY], usize) {
    let mut message = [0u8; MESSAGE_CAPACITY];
    let mut len = append(&mut message, 0, PREFIX);
    let mut i = 0;
    // The path, then its first task again to close the cycle.
    while i <= depth {
        let name = path[if i == depth { 0 } else { i }].def().name;
        if i > 0 {
            len = append(&mut message, len, ARROW);
        }
        if len + name.len() + ARROW.len() + 3 > MESSAGE_CAPACITY {
            len = append(&mut message, len, "...");
            break;
        }
        len = append(&mut message, len, name);
        i += 1;
    }
    (message, len)
}

/// Appends whole strings only, so the buffer always holds valid UTF-8.
const fn append(buf: &mut [u8; MESSAGE_CAPACITY], at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    if at + bytes.len() > MESSAGE_CAPACITY {
        return at;
    }
    let mut i = 0;
    while i < bytes.len() {
        buf[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
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
