//! The crate's layers, held against its code: each module uses only modules of lower layers
//! (the README's layout section shows the same table), and no two files of one module use each
//! other. Read from the source's own `crate::` and `super::` paths, outside test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// From the ground up: a module may use the modules of the layers below its own, never its
/// own layer or one above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &["date", "fatal", "hash", "host", "secrets", "status", "sync"],
    ),
    (
        "settings and plumbing",
        &["access", "config", "http", "message", "pool", "task_log"],
    ),
    ("connections", &["alert", "db", "openlineage"]),
    ("what a task sees, what a run leaves", &["ctx", "state"]),
    ("what a process did", &["metrics"]),
    ("tasks", &["check", "task"]),
    ("the graph, table loads", &["dag", "load"]),
    ("runs and the other loaders", &["api", "event", "run"]),
    ("long-running processes", &["distributed", "schedule"]),
    ("faces", &["__private", "serve"]),
    (
        "the binary, and the hooks of its tests",
        &["cli", "testing"],
    ),
];

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its `#[cfg(test)]` module and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names that follow each `prefix` in `code`: `crate::db::Db` gives `db`, and
/// `super::{json, wire::Plans}` gives `json` and `wire`.
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(group.split(',').map(ident));
            }
            None => {
                names.insert(ident(rest));
            }
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// The top-level module a file belongs to: `event/wire.rs` and `event.rs` are `event`.
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(source()).unwrap_or(file);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    match first.strip_suffix(".rs") {
        Some("private") => "__private".into(),
        Some(name) => name.into(),
        None => first,
    }
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(at, (_, modules))| modules.iter().map(move |m| (*m, at)))
        .collect();
    let mut all = Vec::new();
    files(&source(), &mut all);
    assert!(all.len() > 50, "the source was not found: {:?}", source());
    let mut wrong = Vec::new();
    for file in &all {
        let module = module_of(file);
        if module == "lib" || module == "layers" {
            continue;
        }
        let Some(&own) = layer.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer",
                file.display()
            ));
            continue;
        };
        for used in named_after(&code(file), "crate::") {
            let Some(&theirs) = layer.get(used.as_str()) else {
                continue;
            };
            if used != module && theirs >= own {
                wrong.push(format!(
                    "{}: `{module}` ({}) uses `{used}` ({})",
                    file.strip_prefix(source()).unwrap_or(file).display(),
                    LAYERS[own].0,
                    LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (move the helper down, or the user up):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_of_a_module_use_each_other() {
    let mut all = Vec::new();
    files(&source(), &mut all);
    // Sibling files: `super::name` in a file of a module's folder names `name.rs` beside it.
    let mut uses: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &all {
        let Some(dir) = file.parent() else { continue };
        if dir == source() {
            continue;
        }
        let siblings = named_after(&code(file), "super::")
            .into_iter()
            .map(|name| dir.join(format!("{name}.rs")))
            .filter(|sibling| sibling.exists() && sibling != file)
            .collect();
        uses.insert(file.clone(), siblings);
    }
    let circle = find_circle(&uses);
    assert!(
        circle.is_none(),
        "files that use each other in a circle: {circle:?}"
    );
}

/// A circle in `uses`, as the files along it, if there is one.
fn find_circle(uses: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        file: &PathBuf,
        uses: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(at) = path.iter().position(|f| f == file) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(file.clone()) {
            return None;
        }
        path.push(file.clone());
        for next in uses.get(file).into_iter().flatten() {
            if let Some(circle) = visit(next, uses, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|file| visit(file, uses, &mut Vec::new(), &mut done))
}

#[test]
fn the_reader_sees_a_wrong_import_and_a_circle() {
    assert_eq!(
        named_after(
            "use crate::db::Db;\nuse super::{json, wire::Plans};",
            "crate::"
        ),
        BTreeSet::from(["db".to_string()])
    );
    assert_eq!(
        named_after("use super::{json, wire::Plans};", "super::"),
        BTreeSet::from(["json".to_string(), "wire".to_string()])
    );
    assert!(named_after("$crate::x; my_crate::y", "crate::").is_empty());
    let (a, b, c) = (PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c"));
    let mut uses = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([c.clone()])),
        (c.clone(), BTreeSet::new()),
    ]);
    assert_eq!(find_circle(&uses), None);
    uses.insert(c.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(find_circle(&uses), Some(vec![a, b, c]));
}
