//! Every flag the backend passes to the CLI (cli::invoke's argv and tui_argv), and every value it
//! passes with one, is accepted by each pinned CLI: read from that version's recorded `--help`
//! (tests/fixtures/claude-cli-<version>/help.txt, written by tests/e2e/record_fixture.py).

use std::collections::BTreeSet;
use std::path::PathBuf;

use claude_tasks::cli::invoke::{argv, tui_argv, SessionArg};
use claude_tasks::task::TaskOptions;

/// The pinned versions (claude-versions.txt), each with its recorded help.
fn pinned() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("claude-versions.txt")).expect("the pins");
    let v: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert!(v.len() >= 2, "pins: {v:?}");
    v
}

fn fixture(version: &str, rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("claude-cli-{version}"))
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The option names `--help` documents: the first column of its option lines (`-p, --print`,
/// `--allowedTools, --allowed-tools <tools...>`).
fn documented(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        // Option lines are indented by two; descriptions continue at a deeper indent.
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if !rest.starts_with('-') {
            continue;
        }
        let head = rest.split("  ").next().unwrap_or("");
        for part in head.split(", ") {
            let name = part.split([' ', '=']).next().unwrap_or("");
            if name.starts_with('-') && name.len() > 1 {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The `(choices: "a", "b")` of an option in `--help` (its description may wrap).
fn choices(help: &str, flag: &str) -> Vec<String> {
    let start = help
        .lines()
        .position(|l| l.trim_start().starts_with(&format!("{flag} ")))
        .unwrap_or_else(|| panic!("{flag} not in --help"));
    let mut text = String::new();
    for (i, l) in help.lines().enumerate().skip(start) {
        if i > start && l.trim_start().starts_with('-') && l.starts_with("  -") {
            break;
        }
        text.push_str(l.trim());
        text.push(' ');
    }
    let Some(c) = text.split("(choices:").nth(1) else {
        panic!("{flag}: no choices in {text}");
    };
    c.split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every argv the backend builds: new task and follow-up with every option set, and the TUI's.
fn our_argvs() -> Vec<Vec<String>> {
    let o = TaskOptions {
        cmd: vec!["claude".into()],
        model: Some("sonnet".into()),
        permission_mode: "acceptEdits".into(),
        allowed_tools: vec!["Bash(git status:*)".into(), "Read".into()],
        args: vec![],
        permissions: Default::default(),
    };
    vec![
        argv(&o, SessionArg::New("00000000-0000-4000-8000-000000000000")),
        argv(
            &o,
            SessionArg::Resume("00000000-0000-4000-8000-000000000000"),
        ),
        tui_argv(&o, "00000000-0000-4000-8000-000000000000"),
    ]
}

/// `(flag, value)` for each flag of an argv past the program: `--x=v`, or `--x v` where the
/// next word is not a flag.
fn flags(argv: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1).peekable();
    while let Some(a) = it.next() {
        assert!(
            a.starts_with('-'),
            "a bare word in our argv: {a} in {argv:?}"
        );
        if let Some((f, v)) = a.split_once('=') {
            out.push((f.to_string(), Some(v.to_string())));
        } else if it.peek().is_some_and(|n| !n.starts_with('-')) {
            out.push((a.clone(), it.next().cloned()));
        } else {
            out.push((a.clone(), None));
        }
    }
    out
}

/// Flags the CLI takes but leaves out of `--help`, each with the recorded run that shows it
/// working on every pinned version.
const HIDDEN: &[(&str, &str)] = &[
    // CONTROL.md §1: what makes the CLI ask on stdout; recorded as `can_use_tool` requests.
    ("--permission-prompt-tool", "control-permission-allow"),
];

#[test]
fn every_flag_the_backend_passes_is_one_each_pinned_cli_documents() {
    let argvs = our_argvs();
    let used: BTreeSet<String> = argvs.iter().flat_map(|a| flags(a)).map(|f| f.0).collect();
    // The list is what we mean to check: a flag added to invoke.rs shows up here.
    assert!(used.len() >= 10, "{used:?}");
    assert!(used.contains("--permission-prompt-tool"), "{used:?}");
    for v in pinned() {
        let help = fixture(&v, "help.txt");
        let doc = documented(&help);
        assert!(
            doc.contains("--print") && doc.contains("-p"),
            "{v}: {doc:?}"
        );
        for f in &used {
            if let Some((_, run)) = HIDDEN.iter().find(|(h, _)| h == f) {
                // Hidden on purpose: if a version documents it, it moves out of HIDDEN.
                assert!(!doc.contains(f), "{v} documents {f}: drop it from HIDDEN");
                let cmd = fixture(&v, &format!("{run}/cmd.txt"));
                let out = fixture(&v, &format!("{run}/stdout.jsonl"));
                assert!(cmd.contains(f.as_str()), "{v}/{run}: not run with {f}");
                assert!(
                    out.contains("\"can_use_tool\""),
                    "{v}/{run}: {f} had no effect"
                );
                continue;
            }
            assert!(doc.contains(f), "CLI {v} does not document {f} (help.txt)");
        }
    }
}

#[test]
fn every_value_the_backend_passes_is_one_each_pinned_cli_accepts() {
    for v in pinned() {
        let help = fixture(&v, "help.txt");
        let mut checked = 0;
        for a in our_argvs() {
            for (f, val) in flags(&a) {
                let Some(val) = val else { continue };
                if f == "--input-format" || f == "--output-format" {
                    assert!(choices(&help, &f).contains(&val), "{v}: {f} {val}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 4, "{v}: {checked}");
    }
}

/// The permission modes the editor accepts (lua/claude-tasks/config.lua `PERMISSION_MODES`,
/// and `PERMISSION_MODES_NEWER` for newer CLIs only), against each version's choices.
#[test]
fn the_permission_modes_the_editor_accepts_are_the_pinned_clis_choices() {
    let lua = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lua/claude-tasks/config.lua"),
    )
    .expect("config.lua");
    let list = |name: &str| -> Vec<String> {
        let line = lua
            .lines()
            .find(|l| l.starts_with(&format!("M.{name} = {{")))
            .unwrap_or_else(|| panic!("{name} not in config.lua"));
        line.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let modes = list("PERMISSION_MODES");
    let newer = list("PERMISSION_MODES_NEWER");
    assert!(modes.contains(&"acceptEdits".to_string()), "{modes:?}");
    let pins = pinned();
    let (oldest, newest) = (&pins[0], &pins[pins.len() - 1]);
    let old = choices(&fixture(oldest, "help.txt"), "--permission-mode");
    let new = choices(&fixture(newest, "help.txt"), "--permission-mode");
    for m in &modes {
        assert!(old.contains(m), "{oldest} does not list {m}: {old:?}");
        if !new.contains(m) {
            // 2.1.332 lists `manual` where 2.1.197 lists `default`, and still runs `default`
            // (its init says so): recorded, so a CLI that stops accepting it fails here.
            assert_eq!(m, "default", "{newest} does not list {m}: {new:?}");
            let out = fixture(newest, "control-permission-allow/stdout.jsonl");
            assert!(out.contains(r#""permissionMode":"default""#), "{newest}");
        }
    }
    for m in &newer {
        assert!(new.contains(m), "{newest} does not list {m}: {new:?}");
    }
}
