//! Benchmark of the per-run snapshots (issue 22, deliverable 4): a generated repository of 50k
//! files, the first snapshot of a project (private index seeded from the user's index, and, for
//! comparison, built from nothing), then start and end snapshots of runs that change a few files,
//! the diff of such a run and its revert.
//!
//!   cargo run --release --example snapshots                 # 50k files, 7 runs per row
//!   cargo run --release --example snapshots -- --files 5000 --runs 3
//!   cargo run --release --example snapshots -- --keep DIR   # reuse the repository in DIR
//!
//! Prints a table (median, min, max in ms) and the machine's load before and after; nothing is
//! timed inside git, only what the backend would wait for.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use claude_tasks::changes::{self, Labels, Place, Refs};
use claude_tasks::git::Git;

struct Opts {
    files: usize,
    runs: usize,
    keep: Option<PathBuf>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        files: 50_000,
        runs: 7,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--files" => o.files = value()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--runs" => o.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("snapshots: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("snapshots: {e}");
        std::process::exit(1);
    }
}

fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn git_ok(git: &Git, dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    git.cmd(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
        .run()
        .map_err(|e| e.to_string())
}

/// A source-like tree: 2-level directories of 100 files of 10–80 lines each.
fn generate(git: &Git, root: &Path, files: usize) -> Result<(), String> {
    let marker = root.join(".bench-complete");
    if marker.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).map_err(|e| e.to_string())?;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..files {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let path = root.join(file_path(i));
        if i % 100 == 0 {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
        }
        let lines = 10 + (seed % 70) as usize;
        let text: String = (0..lines)
            .map(|l| {
                format!(
                    "fn f{i}_{l}() -> u64 {{ {} }}\n",
                    seed.wrapping_mul(l as u64 + 1)
                )
            })
            .collect();
        fs::write(path, text).map_err(|e| e.to_string())?;
    }
    fs::write(root.join(".gitignore"), "target/\n").map_err(|e| e.to_string())?;
    git_ok(git, root, &["init", "-q"])?;
    git_ok(git, root, &["add", "-A"])?;
    git_ok(git, root, &["commit", "-q", "-m", "generated"])?;
    fs::write(&marker, "").map_err(|e| e.to_string())?;
    // The marker itself stays untracked, like any stray file in a real tree.
    Ok(())
}

/// Where generated file `i` lives.
fn file_path(i: usize) -> String {
    format!("pkg{:03}/mod{:02}/file{i}.rs", i / 1000, (i / 100) % 10)
}

struct Row {
    name: &'static str,
    times: Vec<Duration>,
}

impl Row {
    fn print(&self) {
        let mut v: Vec<f64> = self
            .times
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let median = v[v.len() / 2];
        println!(
            "{:<58} {:>8.1} {:>8.1} {:>8.1}",
            self.name,
            median,
            v[0],
            v[v.len() - 1]
        );
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let base = match &o.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("claude-tasks-bench-{}", std::process::id())),
    };
    let root = base.join(format!("repo-{}", o.files));
    let state = base.join("state");
    let git = Git::new();
    let load_before = load();
    let t = Instant::now();
    generate(&git, &root, o.files)?;
    let generated = t.elapsed();
    let refs = Refs::new("bench-00000000");
    let mut rows = vec![
        Row {
            name: "first snapshot, private index seeded from the user's",
            times: vec![],
        },
        Row {
            name: "first snapshot, private index built from nothing",
            times: vec![],
        },
        Row {
            name: "start snapshot (5 files changed since the last)",
            times: vec![],
        },
        Row {
            name: "end snapshot (5 files changed, 1 created, 1 deleted)",
            times: vec![],
        },
        Row {
            name: "diff of the run (files, hunks, patch)",
            times: vec![],
        },
        Row {
            name: "revert of the run",
            times: vec![],
        },
    ];
    let labels = Labels {
        ours: "yours".into(),
        base: "after".into(),
        theirs: "before".into(),
    };
    let touched: Vec<PathBuf> = (0..5)
        .map(|k| root.join(file_path(k * 9973 % o.files)))
        .collect();
    let run_dir = state.join("run");
    let any = Place {
        git: &git,
        cwd: &root,
        index_dir: &state,
        run_dir: &run_dir,
        refs: &refs,
        id: 0,
        run: 1,
    };
    for i in 0..o.runs {
        for (row, seeded) in [(0, true), (1, false)] {
            let index_dir = state.join(format!("first-{i}-{seeded}"));
            let _ = fs::remove_dir_all(&index_dir);
            if !seeded {
                // No user index to copy: the same as a project whose user index is split.
                fs::create_dir_all(&index_dir).map_err(|e| e.to_string())?;
            }
            let place = Place {
                index_dir: &index_dir,
                id: 1000 + i as u64,
                ..any
            };
            let t = Instant::now();
            if seeded {
                changes::begin(&place).map_err(|e| e.to_string())?;
            } else {
                first_from_nothing(&git, &root, &index_dir)?;
            }
            rows[row].times.push(t.elapsed());
            let _ = fs::remove_dir_all(&index_dir);
        }
        let index_dir = state.join("index");
        let place = Place {
            index_dir: &index_dir,
            id: i as u64 + 1,
            ..any
        };
        // Warm: the project's private index exists from an earlier run.
        if i == 0 {
            changes::begin(&place).map_err(|e| e.to_string())?;
        }
        for (k, p) in touched.iter().enumerate() {
            let mut text = fs::read_to_string(p).map_err(|e| e.to_string())?;
            text.push_str(&format!("// user edit {i} {k}\n"));
            fs::write(p, text).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        let start = changes::begin(&place).map_err(|e| e.to_string())?;
        rows[2].times.push(t.elapsed());
        for p in &touched {
            let mut text = fs::read_to_string(p).map_err(|e| e.to_string())?;
            text = text.replacen("fn ", "pub fn ", 1);
            fs::write(p, text).map_err(|e| e.to_string())?;
        }
        fs::write(root.join(format!("created-{i}.rs")), "fn new() {}\n")
            .map_err(|e| e.to_string())?;
        let victim = root.join(file_path(500 + i));
        let _ = fs::remove_file(&victim);
        let t = Instant::now();
        let snaps = changes::finish(&place, &start).map_err(|e| e.to_string())?;
        rows[3].times.push(t.elapsed());
        let t = Instant::now();
        let c = changes::run_changes(&git, &snaps).map_err(|e| e.to_string())?;
        rows[4].times.push(t.elapsed());
        if c.files.len() != 7 {
            return Err(format!("expected 7 changed files, got {}", c.files.len()));
        }
        let t = Instant::now();
        let report = changes::revert(&git, &snaps, &labels).map_err(|e| e.to_string())?;
        rows[5].times.push(t.elapsed());
        if !report.is_clean() {
            return Err(format!("revert conflicted: {:?}", report.conflicts));
        }
        changes::dispose(&git, &root, &refs, i as u64 + 1).map_err(|e| e.to_string())?;
    }
    for i in 0..o.runs {
        changes::dispose(&git, &root, &refs, 1000 + i as u64).map_err(|e| e.to_string())?;
    }
    println!(
        "snapshots: {} files, {} runs per row, {} cores; generated in {:.1} s{}",
        o.files,
        o.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        generated.as_secs_f64(),
        if o.keep.is_some() { " (or reused)" } else { "" }
    );
    println!("load average before: {load_before}, after: {}", load());
    println!(
        "{:<58} {:>8} {:>8} {:>8}",
        "row (ms)", "median", "min", "max"
    );
    for r in &rows {
        r.print();
    }
    if o.keep.is_none() {
        let _ = fs::remove_dir_all(&base);
    }
    Ok(())
}

/// The first snapshot as it costs without a copy of the user's index: `git add -A` into an
/// empty private index hashes every file.
fn first_from_nothing(git: &Git, root: &Path, index_dir: &Path) -> Result<(), String> {
    let index = index_dir.join("index");
    git.cmd(root)
        .args(["-c", "core.splitIndex=false", "add", "-A"])
        .index(&index)
        .run()
        .map_err(|e| e.to_string())?;
    git.cmd(root)
        .arg("write-tree")
        .index(&index)
        .run()
        .map_err(|e| e.to_string())?;
    Ok(())
}
