//! The import graph of `src/` points one way, as ARCHITECTURE.md draws it: every room (a
//! top-level module) sits on a layer, and its code may name only rooms on lower layers; within
//! a room, its files (other than `mod.rs`) name each other without a cycle. Read from the source
//! text: every `crate::<room>` path outside test code, `use crate::{..}` groups included.
//!
//! Test code (`tests.rs` files and `tests/` folders, `#[cfg(test)] mod tests` blocks) and
//! `testutil` may name any room; code that ships may not name `testutil`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rooms from the top down; rooms on one layer may not name each other.
const LAYERS: &[&[&str]] = &[
    &["rpc"],
    &["tasks"],
    &["view"],
    &["render"],
    &["stream_json"],
    &["transcript"],
    &["worktree"],
    &["changes"],
    &["git"],
    &["cli", "process"],
    &["nvim"],
    &["store"],
    &["log"],
    &["task"],
    &["text", "hash", "timefmt"],
];

/// Test support: it may name anything, and only test code may name it.
const TEST_ONLY: &str = "testutil";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn layer_of(room: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&room))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("a readable source directory") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a source file that ships: without comments and without its test module.
fn shipped_code(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_tests = false;
    let mut cfg_test = false;
    for (i, line) in text.lines().enumerate() {
        if in_tests {
            // rustfmt closes a top-level module at column 0.
            in_tests = line != "}";
            continue;
        }
        let t = line.trim_start();
        if cfg_test && t.starts_with("mod ") && t.ends_with('{') {
            in_tests = true;
            continue;
        }
        cfg_test = t == "#[cfg(test)]";
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_owned()));
    }
    out
}

/// The rooms a line names through `crate::`: `crate::a::b`, `crate::{a::b, c, log_info}`.
fn rooms_named(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        // `$crate::` is a macro's own crate, named from inside `log`.
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                out.push(first_ident(part.trim()));
            }
        } else {
            out.push(first_ident(rest));
        }
    }
    out.retain(|r| !r.is_empty());
    // The logging macros are exported at the crate's root, but they are `log`'s.
    for r in out.iter_mut() {
        if r.starts_with("log_") {
            *r = "log".into();
        }
    }
    out
}

fn first_ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The room of a file: `src/<room>.rs` or `src/<room>/...`; None for the crate's roots.
fn room_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// A unit-test module: `tests.rs`, or a file of a `tests/` folder of modules by topic.
fn is_test_file(file: &Path) -> bool {
    let in_tests_folder = file
        .strip_prefix(src())
        .ok()
        .and_then(Path::parent)
        .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "tests"));
    in_tests_folder || file.file_name().is_some_and(|n| n == "tests.rs")
}

#[test]
fn every_room_has_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let unplaced: Vec<&String> = declared
        .iter()
        .filter(|m| layer_of(m).is_none() && m.as_str() != TEST_ONLY)
        .collect();
    assert!(
        unplaced.is_empty(),
        "rooms without a layer in tests/layering.rs (and ARCHITECTURE.md): {unplaced:?}"
    );
    assert!(declared.len() > 10, "lib.rs declares {declared:?}");
}

#[test]
fn imports_point_down_the_layers_only() {
    let mut upward = Vec::new();
    for file in rust_files(&src()) {
        let Some(room) = room_of(&file) else { continue };
        if room == TEST_ONLY || is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for (n, line) in shipped_code(&text) {
            for target in rooms_named(&line) {
                if target == room {
                    continue;
                }
                let what = format!("{}:{n}: {room} names {target}", file.display());
                if target == TEST_ONLY {
                    upward.push(format!("{what} (test support, in code that ships)"));
                    continue;
                }
                match (layer_of(&room), layer_of(&target)) {
                    (Some(a), Some(b)) if b > a => {}
                    (Some(a), Some(b)) if a == b => upward.push(format!("{what} (same layer)")),
                    (Some(_), Some(_)) => upward.push(format!("{what} (a layer above)")),
                    _ => upward.push(format!("{what} (no layer)")),
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_files_of_a_room_name_each_other_without_a_cycle() {
    // room -> file -> the sibling files it names (`super::x`, `crate::room::x`).
    let mut rooms: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in rust_files(&src()) {
        let Some(room) = room_of(&file) else { continue };
        let Ok(rel) = file.strip_prefix(src().join(&room)) else {
            continue;
        };
        // Only a room's own files: `mod.rs` is its face, which its files may name.
        if rel.components().count() != 1 || is_test_file(&file) {
            continue;
        }
        let name = rel.to_string_lossy().trim_end_matches(".rs").to_owned();
        if name == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let mut named = BTreeSet::new();
        for (_, line) in shipped_code(&text) {
            for prefix in ["super::".to_owned(), format!("crate::{room}::")] {
                let mut rest = line.as_str();
                while let Some(at) = rest.find(&prefix) {
                    rest = &rest[at + prefix.len()..];
                    let mut parts = vec![first_ident(rest)];
                    if let Some(group) = rest.strip_prefix('{') {
                        let end = group.find('}').unwrap_or(group.len());
                        parts = group[..end]
                            .split(',')
                            .map(|p| first_ident(p.trim()))
                            .collect();
                    }
                    named.extend(parts.into_iter().filter(|p| !p.is_empty() && *p != name));
                }
            }
        }
        rooms.entry(room).or_default().insert(name, named);
    }
    for (room, files) in &rooms {
        // Names that are not sibling files (items of mod.rs) are no edges.
        let edges: BTreeMap<&String, Vec<&String>> = files
            .iter()
            .map(|(f, named)| (f, named.iter().filter(|n| files.contains_key(*n)).collect()))
            .collect();
        let mut done = BTreeSet::new();
        for start in edges.keys() {
            let mut path = Vec::new();
            if let Some(cycle) = find_cycle(start, &edges, &mut path, &mut done) {
                panic!("a cycle among the files of {room}/: {}", cycle.join(" -> "));
            }
        }
    }
}

fn find_cycle<'a>(
    at: &'a String,
    edges: &BTreeMap<&'a String, Vec<&'a String>>,
    path: &mut Vec<&'a String>,
    done: &mut BTreeSet<&'a String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| *p == at) {
        let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
        cycle.push(at.clone());
        return Some(cycle);
    }
    if done.contains(at) {
        return None;
    }
    path.push(at);
    for next in edges.get(at).into_iter().flatten() {
        if let Some(c) = find_cycle(next, edges, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(at);
    None
}

/// The checks find what they are for: an upward import, a test-only import, a group import.
#[test]
fn the_reader_of_imports_sees_them() {
    assert_eq!(rooms_named("use crate::tasks::Supervisor;"), ["tasks"]);
    assert_eq!(
        rooms_named("use crate::{log_info, store::Store, text};"),
        ["log", "store", "text"]
    );
    assert_eq!(
        rooms_named("    let x = crate::process::proctree::read(p); // crate::rpc"),
        ["process", "rpc"]
    );
    assert!(rooms_named("$crate::log::write(x)").is_empty());
    assert!(rooms_named("claude_tasks::rpc::Rpc").is_empty());
    let code = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::testutil;\n}\n// crate::b\nfn f() {}\n";
    let kept: Vec<String> = shipped_code(code).into_iter().map(|(_, l)| l).collect();
    assert_eq!(kept, ["use crate::a;", "#[cfg(test)]", "fn f() {}"]);
    assert!(layer_of("rpc") < layer_of("tasks") && layer_of("nvim") < layer_of("store"));
}
