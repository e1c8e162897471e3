//! Worktree tasks end to end: the backend binary over msgpack-RPC (the test plays Neovim), the
//! fake CLI run through `sh -c` so that it edits files in its directory first, as the CLI's tools
//! would, in real repositories made by `gitrepo`. Two tasks at once on one file, the base taken
//! from what the user sees, apply (clean, conflicting, with later edits of the user, again after
//! a follow-up), discard, dispose, a backend killed mid-task, an editor restart, a user's
//! `git worktree prune`, and the refusals. Every test compares the user's index, HEAD, branches
//! (but the tasks' own) and stash before and after.
//!
//! Waits are on recorded events, or on files the tasks write (nothing announces those); the
//! timeouts only turn a hang into a failure.

mod common;
mod gitrepo;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{alive, map, s, wait_file, FAKE};
use gitrepo::numbered;
use rmpv::Value;
use serde_json::Value as Json;

const GUARD: Duration = Duration::from_secs(30);

/// The user's repository (`gitrepo`) and the editor's side (`common`): a backend's state
/// directory and the fake Neovim.
struct Env {
    user: gitrepo::World,
    ed: common::World,
}

fn env(name: &str) -> Env {
    Env {
        user: gitrepo::World::repo(&format!("iso-{name}")),
        ed: common::World::new("iso", name, GUARD),
    }
}

impl Env {
    fn cwd(&self) -> String {
        self.user.root.to_string_lossy().into_owned()
    }

    /// `start` arguments for a worktree task whose CLI runs `script` (in its directory) first.
    fn start_args(&self, prompt: &str, script: &str, fake: &[&str]) -> Value {
        start_in(prompt, &self.cwd(), script, fake, Some("worktree"))
    }

    fn id_args(&self, id: u64) -> Value {
        map(vec![("id", Value::from(id)), ("cwd", s(&self.cwd()))])
    }

    fn with(&self, id: u64, more: Vec<(&str, Value)>) -> Value {
        let mut pairs = vec![("id", Value::from(id)), ("cwd", s(&self.cwd()))];
        pairs.extend(more);
        map(pairs)
    }

    /// A file the test and a task's script meet at.
    fn flag(&self, name: &str) -> PathBuf {
        self.ed.root.join(name)
    }
}

/// `start` arguments: `prompt` in `cwd`, the fake CLI run by `sh -c script`.
fn start_in(
    prompt: &str,
    cwd: &str,
    script: &str,
    fake: &[&str],
    isolation: Option<&str>,
) -> Value {
    let mut cmd = vec![
        s("sh"),
        s("-c"),
        s(&format!("{script}\nexec \"$@\"")),
        s("sh"),
        s(FAKE),
    ];
    cmd.extend(fake.iter().map(|a| s(a)));
    let mut pairs = vec![
        ("prompt", s(prompt)),
        ("cwd", s(cwd)),
        ("cmd", Value::Array(cmd)),
    ];
    if let Some(i) = isolation {
        pairs.push(("isolation", s(i)));
    }
    map(pairs)
}

/// A script line: replaces line `n` of the 20 numbered lines of `src/lib.rs` with `text`.
fn edit_line(n: usize, text: &str) -> String {
    format!("sed -i 's/^line {n}$/{text}/' src/lib.rs")
}

/// A script line: says it is ready by creating `ready`, then waits for `go` to exist.
fn rendezvous(ready: &Path, go: &Path) -> String {
    format!(
        ": > '{}'\nwhile [ ! -e '{}' ]; do sleep 0.01; done",
        ready.display(),
        go.display()
    )
}

fn wt_path(rec: &Json) -> PathBuf {
    PathBuf::from(rec["worktree"]["path"].as_str().expect("a worktree"))
}

async fn wait_completed(e: &Env, id: u64) -> Json {
    let (kind, rec) = e.ed.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "task #{id}: {rec:#}");
    rec
}

/// The branches of worktree tasks.
fn task_branches(e: &Env) -> Vec<String> {
    e.user
        .git(&[
            "branch",
            "--list",
            "--format=%(refname:short)",
            "claude-tasks/*",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_at_once_on_one_file_are_isolated_then_apply_clean_then_conflict() {
    let e = env("two");
    let before = e.user.capture();
    let b = e.ed.backend().await;
    // The policies count worktree tasks apart: `reject` lets them run beside each other and
    // beside a task in the project's own files.
    b.configure(vec![("concurrency", s("reject"))]).await;
    let go = e.flag("go");
    let mut ids = Vec::new();
    for (n, text) in [(1, "task one"), (2, "task two")] {
        let ready = e.flag(&format!("ready-{n}"));
        let script = format!("{}\n{}", edit_line(4, text), rendezvous(&ready, &go));
        let record = e.flag(&format!("record-{n}"));
        let fake = [format!("--fake-record={}", record.display())];
        let args = e.start_args(text, &script, &[fake[0].as_str()]);
        ids.push(b.start(args).await);
    }
    // Both run at once: each is waiting for the other to be ready.
    for n in [1, 2] {
        wait_file(&e.flag(&format!("ready-{n}"))).await;
    }
    let recs: Vec<Json> = {
        let mut v = Vec::new();
        for &id in &ids {
            v.push(b.req("get", e.id_args(id)).await);
        }
        v
    };
    for r in &recs {
        assert_eq!(r["status"], "running", "{r:#}");
    }
    let in_place = b
        .start(common::start_in("in place", &e.cwd(), common::cmd(&[])))
        .await;
    let (a, bb) = (wt_path(&recs[0]), wt_path(&recs[1]));
    assert_ne!(a, bb);
    assert!(a.starts_with(e.ed.root.join("state")), "{}", a.display());
    let read = |p: &Path| std::fs::read_to_string(p.join("src/lib.rs")).unwrap();
    assert_eq!(read(&a), numbered(20).replace("line 4\n", "task one\n"));
    assert_eq!(read(&bb), numbered(20).replace("line 4\n", "task two\n"));
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20),
        "the user's tree is untouched"
    );
    std::fs::write(&go, "").unwrap();
    for &id in &ids {
        wait_completed(&e, id).await;
    }
    wait_completed(&e, in_place).await;
    // The CLI ran in the worktree, and the record says where.
    for (n, r) in recs.iter().enumerate() {
        let cwd = std::fs::read_to_string(e.flag(&format!("record-{}.cwd", n + 1))).unwrap();
        assert_eq!(cwd.trim_end(), r["worktree"]["cwd"].as_str().unwrap());
        assert_eq!(r["worktree"]["cwd"], r["worktree"]["path"]);
        assert_eq!(r["worktree"]["branch"], format!("claude-tasks/{}", ids[n]));
        assert_eq!(
            r["worktree"]["head"].as_str().unwrap(),
            e.user.head(),
            "{r:#}"
        );
    }
    before
        .clone()
        .without_task_branches()
        .assert_same(&e.user.capture().without_task_branches(), &[]);

    let first = b.req("apply", e.id_args(ids[0])).await;
    assert_eq!(first["clean"], true, "{first:#}");
    assert_eq!(first["files"][0]["action"], "updated");
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20).replace("line 4\n", "task one\n")
    );
    let second = b.req("apply", e.id_args(ids[1])).await;
    assert_eq!(second["clean"], false, "{second:#}");
    assert_eq!(second["files"][0]["action"], "conflicted");
    let conflicts = second["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{second:#}");
    assert_eq!(
        conflicts[0]["filename"],
        e.user.root.join("src/lib.rs").to_str().unwrap()
    );
    assert_eq!(conflicts[0]["lnum"], 4);
    let text = e.user.read("src/lib.rs");
    assert!(
        text.contains(&format!(
            "<<<<<<< yours\ntask one\n=======\ntask two\n>>>>>>> task #{}\n",
            ids[1]
        )),
        "{text}"
    );
    // The applies are in the records.
    let rec = b.req("get", e.id_args(ids[1])).await;
    assert_eq!(rec["worktree"]["applied"]["conflicts"], 1, "{rec:#}");
    before
        .without_task_branches()
        .assert_same(&e.user.capture().without_task_branches(), &["src/lib.rs"]);
    assert_eq!(
        task_branches(&e),
        [
            format!("claude-tasks/{}", ids[0]),
            format!("claude-tasks/{}", ids[1])
        ]
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_is_what_the_user_sees_and_apply_keeps_their_later_edits() {
    let e = env("base");
    e.user.write("README", "edited, not committed\n");
    e.user.write("staged.txt", "staged\n");
    e.user.git(&["add", "staged.txt"]);
    e.user.write("notes/untracked ü.txt", "untracked\n");
    e.user.write("build.log", "ignored\n");
    let b = e.ed.backend().await;
    // The follow-up's script runs in a new CLI (a live one would not run it).
    b.configure(vec![("keep_alive_ms", Value::from(0))]).await;
    let go = e.flag("go");
    // The task reports what it found, changes line 2 and waits: the user edits meanwhile. Its
    // follow-up changes line 10.
    let follow_up = e.flag("follow-up");
    let script = format!(
        "cat README staged.txt 'notes/untracked ü.txt' > '{}'; ls build.log >> '{}' 2>&1\n{}\n{}\n\
         if [ -e '{}' ]; then {}; fi",
        e.flag("seen").display(),
        e.flag("seen").display(),
        edit_line(2, "task 2"),
        rendezvous(&e.flag("ready"), &go),
        follow_up.display(),
        edit_line(10, "task 10"),
    );
    let id = b.start(e.start_args("edit", &script, &[])).await;
    wait_file(&e.flag("ready")).await;
    let seen = std::fs::read_to_string(e.flag("seen")).unwrap();
    assert!(
        seen.starts_with("edited, not committed\nstaged\nuntracked\n"),
        "{seen}"
    );
    assert!(
        seen.contains("No such file"),
        "ignored files stay out: {seen}"
    );
    e.user.write(
        "src/lib.rs",
        &numbered(20).replace("line 18\n", "user 18\n"),
    );
    std::fs::write(&go, "").unwrap();
    let rec = wait_completed(&e, id).await;
    let base = rec["worktree"]["base"].as_str().unwrap().to_owned();
    assert_eq!(
        e.user.git(&["rev-parse", &format!("{base}^")]).trim(),
        e.user.head(),
        "the base sits on the user's HEAD"
    );

    // The review: a diff against the base, one quickfix entry in the worktree's file.
    let diff = b.req("worktree_diff", e.id_args(id)).await;
    assert!(
        diff["patch"]
            .as_str()
            .unwrap()
            .contains("-line 2\n+task 2\n"),
        "{diff:#}"
    );
    assert_eq!(diff["files"].as_array().unwrap().len(), 1, "{diff:#}");
    assert_eq!(diff["quickfix"][0]["lnum"], 2);
    assert_eq!(
        diff["quickfix"][0]["filename"],
        wt_path(&rec).join("src/lib.rs").to_str().unwrap()
    );
    let before_file = b
        .call(
            "worktree_file",
            vec![e.with(id, vec![("path", s("src/lib.rs"))])],
        )
        .await
        .unwrap();
    assert_eq!(before_file, Value::Binary(numbered(20).into_bytes()));
    let status = b.req("worktree", e.id_args(id)).await;
    assert_eq!(status["unapplied"], serde_json::json!(["src/lib.rs"]));
    assert_eq!(status["locked"], true, "{status:#}");

    let before = e.user.capture();
    let applied = b.req("apply", e.id_args(id)).await;
    assert_eq!(applied["clean"], true, "{applied:#}");
    assert_eq!(applied["files"][0]["action"], "merged", "{applied:#}");
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20)
            .replace("line 2\n", "task 2\n")
            .replace("line 18\n", "user 18\n"),
        "the user's later edit is kept"
    );
    before.assert_same(&e.user.capture(), &["src/lib.rs"]);
    let status = b.req("worktree", e.id_args(id)).await;
    assert_eq!(status["unapplied"], serde_json::json!([]));

    // A follow-up runs in the worktree again; a second apply brings only what it changed.
    std::fs::write(&follow_up, "").unwrap();
    let resume = map(vec![
        ("id", Value::from(id)),
        ("cwd", s(&e.cwd())),
        ("prompt", s("and line 10")),
    ]);
    b.req("resume", resume).await;
    e.ed.fake
        .until("the follow-up's end", |n| n.count("completed", id) == 2)
        .await;
    let again = b.req("apply", e.id_args(id)).await;
    assert_eq!(again["since_last_apply"], true, "{again:#}");
    assert_eq!(again["clean"], true, "{again:#}");
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20)
            .replace("line 2\n", "task 2\n")
            .replace("line 10\n", "task 10\n")
            .replace("line 18\n", "user 18\n")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_run_in_the_worktree() {
    let e = env("resume");
    let b = e.ed.backend().await;
    // A new CLI for the follow-up (a live one would be there already): it starts in the
    // worktree too, resuming the session.
    b.configure(vec![("keep_alive_ms", Value::from(0))]).await;
    let record = e.flag("record");
    let fake = format!("--fake-record={}", record.display());
    let id = b
        .start(e.start_args("first", &edit_line(3, "task 3"), &[fake.as_str()]))
        .await;
    let rec = wait_completed(&e, id).await;
    std::fs::remove_file(record.with_extension("cwd")).unwrap();
    let resume = map(vec![
        ("id", Value::from(id)),
        ("cwd", s(&e.cwd())),
        ("prompt", s("more")),
    ]);
    b.req("resume", resume).await;
    e.ed.fake
        .until("the follow-up's end", |n| n.count("completed", id) == 2)
        .await;
    let cwd = std::fs::read_to_string(record.with_extension("cwd")).unwrap();
    assert_eq!(cwd.trim_end(), rec["worktree"]["cwd"].as_str().unwrap());
    let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
    assert!(
        argv.contains(&format!("--resume={}", rec["session_id"].as_str().unwrap())),
        "{argv}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_in_a_subdirectory_runs_at_the_same_place_in_its_worktree() {
    let e = env("subdir");
    let b = e.ed.backend().await;
    let sub = e.user.root.join("src");
    let record = e.flag("record");
    let fake = format!("--fake-record={}", record.display());
    let id = b
        .start(start_in(
            "in src",
            sub.to_str().unwrap(),
            "sed -i 's/^line 5$/task 5/' lib.rs",
            &[fake.as_str()],
            Some("worktree"),
        ))
        .await;
    let (kind, rec) = e.ed.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{rec:#}");
    let wt = wt_path(&rec);
    assert_eq!(rec["worktree"]["cwd"], wt.join("src").to_str().unwrap());
    let cwd = std::fs::read_to_string(record.with_extension("cwd")).unwrap();
    assert_eq!(cwd.trim_end(), wt.join("src").to_str().unwrap());
    let args = map(vec![
        ("id", Value::from(id)),
        ("cwd", s(sub.to_str().unwrap())),
    ]);
    let applied = b.req("apply", args).await;
    assert_eq!(applied["files"][0]["path"], "src/lib.rs", "{applied:#}");
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20).replace("line 5\n", "task 5\n")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_and_dispose_remove_the_worktree_and_branch_and_nothing_else() {
    let e = env("discard");
    e.user.write("README", "the user's own uncommitted edit\n");
    let before = e.user.capture();
    let b = e.ed.backend().await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let script = edit_line(n, &format!("task {n}"));
        ids.push(b.start(e.start_args("edit", &script, &[])).await);
    }
    let mut paths = Vec::new();
    for &id in &ids {
        paths.push(wt_path(&wait_completed(&e, id).await));
    }

    // Unapplied changes: dispose is refused, the task and its worktree stay.
    let err = b.err("dispose", e.id_args(ids[0])).await;
    assert!(
        err.contains("not applied (src/lib.rs)") && err.contains("force"),
        "{err}"
    );
    assert!(paths[0].is_dir());
    // Discard: the worktree and branch go, the record stays and says so.
    let rec = b.req("discard", e.id_args(ids[0])).await;
    assert!(rec["worktree"]["discarded_at_ms"].is_u64(), "{rec:#}");
    assert!(!paths[0].exists());
    let list = b.req("list", map(vec![("cwd", s(&e.cwd()))])).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    let err = b
        .err(
            "resume",
            map(vec![
                ("id", Value::from(ids[0])),
                ("cwd", s(&e.cwd())),
                ("prompt", s("more")),
            ]),
        )
        .await;
    assert!(err.contains("discarded"), "{err}");
    let err = b.err("discard", e.id_args(ids[0])).await;
    assert!(err.contains("already discarded"), "{err}");
    // A discarded task is disposed of without a question.
    b.req("dispose", e.id_args(ids[0])).await;

    // Applied: dispose takes the worktree with it.
    b.req("apply", e.id_args(ids[1])).await;
    b.req("dispose", e.id_args(ids[1])).await;
    assert!(!paths[1].exists());
    // Not applied, forced.
    b.req(
        "dispose",
        e.with(ids[2], vec![("force", Value::Boolean(true))]),
    )
    .await;
    assert!(!paths[2].exists());

    assert!(task_branches(&e).is_empty(), "{:?}", task_branches(&e));
    assert_eq!(
        e.user
            .git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert!(
        e.user
            .git(&["for-each-ref", "refs/claude-tasks/"])
            .lines()
            .all(|l| l.ends_with("/index")),
        "only the project's index ref is left"
    );
    before.assert_same(&e.user.capture(), &["src/lib.rs"]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_task_readopts_it_with_its_worktree_intact() {
    let e = env("sigkill");
    let before = e.user.capture();
    let b = e.ed.backend().await;
    let go = e.flag("go");
    let script = format!(
        "{}\n{}",
        edit_line(7, "task 7"),
        rendezvous(&e.flag("ready"), &go)
    );
    let id = b.start(e.start_args("edit", &script, &[])).await;
    wait_file(&e.flag("ready")).await;
    let started = b.req("get", e.id_args(id)).await;
    let cli = started["process"]["pid"].as_i64().unwrap() as i32;
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    assert!(alive(cli), "the CLI outlives its backend");

    let b2 = e.ed.backend().await;
    let adopted = b2.req("get", e.id_args(id)).await;
    assert_eq!(adopted["status"], "running", "{adopted:#}");
    std::fs::write(&go, "").unwrap();
    let done = wait_completed(&e, id).await;
    assert_eq!(done["worktree"], started["worktree"]);
    let status = b2.req("worktree", e.id_args(id)).await;
    assert!(
        status["dir"] == true && status["registered"] == true && status["branch_exists"] == true,
        "{status:#}"
    );
    assert_eq!(status["unapplied"], serde_json::json!(["src/lib.rs"]));
    b2.req("apply", e.id_args(id)).await;
    assert_eq!(
        e.user.read("src/lib.rs"),
        numbered(20).replace("line 7\n", "task 7\n")
    );
    before
        .without_task_branches()
        .assert_same(&e.user.capture().without_task_branches(), &["src/lib.rs"]);
    b2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_worktree_is_there_and_a_pruned_one_is_reported() {
    let e = env("restart");
    let b = e.ed.backend().await;
    // The task commits in its worktree: the branch holds that much even without the directory.
    let script = format!(
        "{}\ngit -c user.name=t -c user.email=t@t commit -qam 'task commit'\necho more > extra.txt",
        edit_line(9, "task 9")
    );
    let id = b.start(e.start_args("edit", &script, &[])).await;
    let rec = wait_completed(&e, id).await;
    let wt = wt_path(&rec);
    b.stop().await;

    let b = e.ed.backend().await;
    let list = b.req("list", map(vec![("cwd", s(&e.cwd()))])).await;
    assert_eq!(list[0]["worktree"], rec["worktree"]);
    let before = e.user.capture();
    // A plain prune leaves the worktree alone (it is locked).
    e.user.git(&["worktree", "prune"]);
    let status = b.req("worktree", e.id_args(id)).await;
    assert!(status["problem"].is_null(), "{status:#}");
    assert_eq!(
        status["unapplied"],
        serde_json::json!(["extra.txt", "src/lib.rs"])
    );
    // The directory is lost and the user unlocks and prunes: reported, the record survives,
    // the branch's commits can still be reviewed and applied.
    std::fs::remove_dir_all(&wt).unwrap();
    e.user.git(&["worktree", "unlock", wt.to_str().unwrap()]);
    e.user.git(&["worktree", "prune"]);
    let status = b.req("worktree", e.id_args(id)).await;
    let problem = status["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("its directory"), "{status:#}");
    let list = b.req("list", map(vec![("cwd", s(&e.cwd()))])).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let diff = b.req("worktree_diff", e.id_args(id)).await;
    assert!(diff["missing"].is_string(), "{diff:#}");
    assert_eq!(diff["files"][0]["path"], "src/lib.rs", "{diff:#}");
    let err = b
        .err(
            "resume",
            map(vec![
                ("id", Value::from(id)),
                ("cwd", s(&e.cwd())),
                ("prompt", s("more")),
            ]),
        )
        .await;
    assert!(err.contains("worktree is gone"), "{err}");
    // (`git branch -v` marks a branch checked out in a worktree: the task's changed with it.)
    before
        .without_task_branches()
        .assert_same(&e.user.capture().without_task_branches(), &[]);
    b.req("discard", e.id_args(id)).await;
    assert!(task_branches(&e).is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worktree_task_outside_a_work_tree_and_max_running_holds() {
    let e = env("refused");
    let b = e.ed.backend().await;
    let plain = gitrepo::World::plain("iso-plain");
    let bare = gitrepo::World::plain("iso-bare");
    bare.git(&["init", "-q", "--bare"]);
    let cases = [
        (plain.root.clone(), None, "is not in a git work tree"),
        (bare.root.clone(), None, "is a bare git repository"),
        (
            e.user.root.clone(),
            Some("bad..prefix/"),
            "not a valid branch name",
        ),
    ];
    for (dir, prefix, want) in cases {
        let mut args = start_in("x", dir.to_str().unwrap(), "true", &[], Some("worktree"));
        if let (Some(p), Value::Map(m)) = (prefix, &mut args) {
            m.push((s("branch_prefix"), s(p)));
        }
        let err = b.err("start", args).await;
        assert!(err.contains(want), "{err}");
        let list = b
            .req("list", map(vec![("cwd", s(dir.to_str().unwrap()))]))
            .await;
        assert_eq!(list, serde_json::json!([]), "no task is left");
    }
    assert!(task_branches(&e).is_empty());
    let err = b
        .err(
            "start",
            map(vec![
                ("prompt", s("x")),
                ("cwd", s(&e.cwd())),
                ("isolation", s("sideways")),
            ]),
        )
        .await;
    assert!(
        err.contains("'isolation' must be one of 'none', 'worktree'"),
        "{err}"
    );
    // The worktree methods on a task run in place, and bad arguments.
    let in_place = b
        .start(common::start_in("x", &e.cwd(), common::cmd(&[])))
        .await;
    wait_completed(&e, in_place).await;
    let cases = [
        ("worktree", e.id_args(in_place), "did not run in a worktree"),
        (
            "worktree_diff",
            e.id_args(in_place),
            "did not run in a worktree",
        ),
        ("apply", e.id_args(in_place), "did not run in a worktree"),
        ("discard", e.id_args(in_place), "did not run in a worktree"),
        (
            "apply",
            e.with(in_place, vec![("mode", s("push"))]),
            "'mode' must be one of 'files', 'commit'",
        ),
        (
            "worktree_file",
            e.id_args(in_place),
            "worktree_file: 'path' is required",
        ),
        ("apply", e.id_args(99), "no task #99"),
    ];
    for (method, args, want) in cases {
        let err = b.err(method, args).await;
        assert!(err.contains(want), "{method}: {err}");
    }

    // max_running counts worktree tasks too: the third waits.
    b.configure(vec![("max_running", Value::from(2))]).await;
    let go = e.flag("go");
    let mut ids = Vec::new();
    for n in 1..=3 {
        let script = rendezvous(&e.flag(&format!("ready-{n}")), &go);
        ids.push(b.start(e.start_args("wait", &script, &[])).await);
    }
    wait_file(&e.flag("ready-1")).await;
    wait_file(&e.flag("ready-2")).await;
    // Its worktree is made at once, from what the user sees now; only its run waits.
    e.ed.fake
        .until("the third worktree", |n| {
            n.find(&["updated"], ids[2])
                .is_some_and(|(_, r)| r["worktree"]["base"].is_string())
        })
        .await;
    let third = b.req("get", e.id_args(ids[2])).await;
    assert_eq!(third["status"], "queued", "{third:#}");
    std::fs::write(&go, "").unwrap();
    for &id in &ids {
        wait_completed(&e, id).await;
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_commits_gets_a_worktree_and_its_changes_back() {
    let e = Env {
        user: gitrepo::World::empty_repo("iso-empty"),
        ed: common::World::new("iso", "empty", GUARD),
    };
    e.user.write("first.txt", "first\n");
    let before = e.user.capture();
    let b = e.ed.backend().await;
    let id = b
        .start(e.start_args("add", "cat first.txt > copy.txt", &[]))
        .await;
    let rec = wait_completed(&e, id).await;
    assert!(rec["worktree"]["head"].is_null(), "{rec:#}");
    b.req("apply", e.id_args(id)).await;
    assert_eq!(e.user.read("copy.txt"), "first\n");
    before
        .without_task_branches()
        .assert_same(&e.user.capture().without_task_branches(), &["copy.txt"]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_as_a_commit_and_what_a_running_task_refuses() {
    let e = env("commit");
    let b = e.ed.backend().await;
    let go = e.flag("go");
    let script = format!(
        "{}\n{}",
        edit_line(6, "task 6"),
        rendezvous(&e.flag("ready"), &go)
    );
    let id = b.start(e.start_args("six", &script, &[])).await;
    wait_file(&e.flag("ready")).await;
    for (method, args) in [
        ("apply", e.id_args(id)),
        ("discard", e.id_args(id)),
        ("dispose", e.id_args(id)),
    ] {
        let err = b.err(method, args).await;
        assert!(err.contains("is running"), "{method}: {err}");
    }
    std::fs::write(&go, "").unwrap();
    wait_completed(&e, id).await;
    let old = e.user.head();
    let applied = b
        .req("apply", e.with(id, vec![("mode", s("commit"))]))
        .await;
    let commit = applied["commit"].as_str().unwrap();
    assert_eq!(e.user.head(), commit);
    assert_eq!(e.user.git(&["rev-parse", "HEAD^"]).trim(), old);
    assert_eq!(
        e.user.git(&["log", "-1", "--format=%s"]).trim(),
        "six",
        "the task's name is the subject"
    );
    assert_eq!(e.user.git(&["status", "--porcelain"]), "");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_header_names_the_worktree() {
    let e = env("header");
    let b = e.ed.backend().await;
    let id = b.start(e.start_args("hi", "true", &[])).await;
    let rec = wait_completed(&e, id).await;
    e.ed.fake.new_buf(1);
    b.req(
        "attach",
        map(vec![
            ("id", Value::from(id)),
            ("cwd", s(&e.cwd())),
            ("buf", Value::from(1)),
        ]),
    )
    .await;
    let lines = e.ed.fake.footer(1, "✓ done").await;
    assert_eq!(
        lines[2],
        format!(
            "worktree: {} · branch claude-tasks/{id}",
            wt_path(&rec).display()
        ),
        "{lines:#?}"
    );
    b.stop().await;
}
