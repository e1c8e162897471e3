//! What a task changed, end to end through the supervisor: fake-claude edits, creates, deletes
//! and renames files in real repositories (through its edit tools and through a Bash command
//! the transcript does not name a file in); the record, the `completed` event, the footer, the
//! review's diff, a file before the run, revert (clean, a later edit kept, a conflict), the
//! attribution of files the editor saved during the run, the fallback outside git, follow-ups,
//! dispose. Every test compares the user's index, HEAD, branches, stash and the files it did
//! not mean to change before and after.

mod common;
mod gitrepo;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use claude_tasks::store::Store;
use claude_tasks::task::{FileChanged, Status, TaskOptions, TaskRecord};
use claude_tasks::tasks::{Isolation, StartRequest, Supervisor};
use common::{Screen, FAKE};
use gitrepo::{numbered, World};
use serde_json::json;

const GUARD: Duration = Duration::from_secs(30);

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        claude_tasks::process::reaper::init().expect("reaper");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

struct Env {
    w: World,
    sup: Supervisor,
    ed: Arc<Screen<TaskRecord>>,
}

/// The end of a test is the editor's exit: every CLI the test left (idle ones kept for
/// follow-ups included) is closed, as `on_exit = "cancel"` does, instead of outliving the test
/// binary. On a thread of its own, so that a drop inside the runtime cannot block it.
impl Drop for Env {
    fn drop(&mut self) {
        let sup = self.sup.clone();
        let _ = std::thread::spawn(move || rt().block_on(sup.shutdown())).join();
    }
}

fn env(w: World) -> Env {
    let store = Store::open(&w.tmp.0.join("store")).unwrap();
    let ed = Arc::new(Screen::new(GUARD));
    let sup = rt().block_on(async { Supervisor::new(store, ed.clone()) });
    let git = w.git.clone();
    sup.configure(|c| {
        c.git = git;
        c.cancel_grace = Duration::from_millis(300);
    });
    Env { w, sup, ed }
}

impl Env {
    fn cwd(&self) -> String {
        self.w.root.to_string_lossy().into_owned()
    }

    /// Starts a task whose CLI makes the tool calls `steps` (fake-claude's `--fake-tools`).
    async fn start(&self, steps: serde_json::Value) -> TaskRecord {
        self.start_isolated(steps, Isolation::None).await
    }

    async fn start_isolated(&self, steps: serde_json::Value, isolation: Isolation) -> TaskRecord {
        let req = StartRequest {
            prompt: "change some files".into(),
            cwd: self.cwd(),
            name: None,
            options: TaskOptions {
                cmd: vec![FAKE.into(), format!("--fake-tools={steps}")],
                // Its shell commands run without asking (tests/permissions.rs asks).
                permission_mode: "bypassPermissions".into(),
                ..TaskOptions::default()
            },
            isolation,
            context: Vec::new(),
        };
        self.sup.start(req).await.expect("start")
    }

    fn attach(&self, id: u64, buf: i64) {
        self.ed.new_buf(buf);
        self.sup.attach(&self.cwd(), id, buf).expect("attach");
    }

    /// The run's files, by path.
    fn files(rec: &TaskRecord, run: usize) -> Vec<FileChanged> {
        let mut f = rec.runs[run].files_changed.clone().expect("files_changed");
        f.sort_by(|a, b| a.path.cmp(&b.path));
        f
    }

    /// Task `id` after its warm follow-up: the second run went to the live CLI `cli`, the first
    /// changed the one file `first`, the second added `second.txt`.
    fn warm_second_run(&self, id: u64, cli: i32, first: (&str, &str, u64, u64)) {
        let done = self.sup.get(&self.cwd(), id).unwrap();
        assert_eq!(done.runs[1].via, Some(claude_tasks::task::Via::Live));
        assert_eq!(done.process.as_ref().map(|p| p.pid), Some(cli));
        assert_eq!(summary(&Env::files(&done, 0)), [first]);
        assert_eq!(
            summary(&Env::files(&done, 1)),
            [("second.txt", "added", 1, 0)]
        );
    }

    /// The refs of our snapshots in the user's repository.
    fn our_refs(&self) -> Vec<String> {
        self.w
            .git(&["for-each-ref", "--format=%(refname)", "refs/claude-tasks/"])
            .lines()
            .map(String::from)
            .collect()
    }
}

fn edit(path: &str, old: &str, new: &str) -> serde_json::Value {
    json!({"name": "Edit", "input": {"file_path": path, "old_string": old, "new_string": new}})
}

fn write(path: &str, content: &str) -> serde_json::Value {
    json!({"name": "Write", "input": {"file_path": path, "content": content}})
}

fn bash(command: &str) -> serde_json::Value {
    json!({"name": "Bash", "input": {"command": command}})
}

fn summary(f: &[FileChanged]) -> Vec<(&str, &str, u64, u64)> {
    f.iter()
        .map(|f| (f.path.as_str(), f.status.as_str(), f.added, f.removed))
        .collect()
}

#[test]
fn a_run_s_changes_are_in_its_record_its_footer_and_its_review_bash_included() {
    let w = World::repo("task-diff");
    w.write("old name.txt", &numbered(5));
    w.write("gone.txt", "to be deleted\n");
    w.commit_all("more");
    let e = env(w);
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e
            .start(json!([
                edit("src/lib.rs", "line 3\n", "line three\n"),
                [
                    write("dir with space/ünï.txt", "hello\nwörld\n"),
                    // Through the shell: the transcript names no file.
                    bash("rm gone.txt && mv 'old name.txt' 'new name.txt'"),
                ]
            ]))
            .await;
        e.attach(rec.id, 1);
        let done = e.ed.wait_event("completed", rec.id).await;
        let ch = done.runs[0].changes.clone().expect("changes recorded");
        assert_eq!(ch.method, "git");
        assert_eq!(Path::new(&ch.root), e.w.root);
        assert!(ch.error.is_none(), "{ch:?}");
        let files = Env::files(&done, 0);
        assert_eq!(
            summary(&files),
            [
                ("dir with space/ünï.txt", "added", 2, 0),
                ("gone.txt", "deleted", 0, 1),
                ("new name.txt", "renamed", 0, 0),
                ("src/lib.rs", "modified", 1, 1),
            ]
        );
        assert_eq!(files[2].old_path.as_deref(), Some("old name.txt"));
        assert!(files.iter().all(|f| !f.edited_by_you));
        assert_eq!((ch.files, ch.added, ch.removed), (4, 3, 2));
        let lines = e.ed.footer(1, "✓ done in").await;
        assert!(
            lines.last().unwrap().ends_with(" · 4 files +3 −2"),
            "{lines:#?}"
        );

        // The review: one quickfix entry per hunk, the patch, the file before the run.
        let review = e.sup.review(&e.cwd(), rec.id, None).expect("review");
        assert_eq!(review.run, 1);
        let qf = review.changes.quickfix();
        assert!(
            qf.iter()
                .any(|q| q.path == "src/lib.rs" && q.line == 3 && q.text == "+1 −1"),
            "{qf:?}"
        );
        assert!(qf
            .iter()
            .any(|q| q.path == "gone.txt" && q.text == "deleted −1"));
        let patch = String::from_utf8(review.changes.patch.clone()).unwrap();
        assert!(patch.contains("-line 3\n+line three\n"), "{patch}");
        assert!(patch.contains("rename from old name.txt"), "{patch}");
        let (_, old) = e
            .sup
            .original(&e.cwd(), rec.id, None, "src/lib.rs")
            .unwrap();
        assert_eq!(old.unwrap(), numbered(20).into_bytes());
        let abs = e.w.path("src/lib.rs").to_string_lossy().into_owned();
        let (_, old) = e.sup.original(&e.cwd(), rec.id, Some(1), &abs).unwrap();
        assert_eq!(old.unwrap(), numbered(20).into_bytes());
        let (_, none) = e
            .sup
            .original(&e.cwd(), rec.id, None, "dir with space/ünï.txt")
            .unwrap();
        assert!(none.is_none());
        assert!(e.sup.review(&e.cwd(), rec.id, Some(2)).is_err());
        // The project's private index lists the user's file names: theirs alone.
        let index_dir = e.sup.store().git_index(&e.cwd());
        for f in std::fs::read_dir(&index_dir).unwrap() {
            let f = f.unwrap();
            let mode = f.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.path().display());
        }
    });
    before.assert_same(
        &e.w.capture(),
        &[
            "src/lib.rs",
            "dir with space",
            "gone.txt",
            "old name.txt",
            "new name.txt",
        ],
    );
}

#[test]
fn a_file_the_editor_saved_during_the_run_is_also_edited_by_you() {
    let e = env(World::repo("task-saved"));
    let before = e.w.capture();
    rt().block_on(async {
        // The task waits for the test's signal (an ignored file), then edits README.
        let rec = e
            .start(json!([bash(
                "while [ ! -e go.log ]; do sleep 0.01; done; echo task >> README; \
                 echo task >> src/lib.rs"
            )]))
            .await;
        e.attach(rec.id, 1);
        e.ed.wait_event("started", rec.id).await;
        e.w.write("src/lib.rs", &(numbered(20) + "user\n"));
        e.sup.saved(&e.w.path("src/lib.rs").to_string_lossy());
        // Outside the task's work tree, and relative: not the run's business.
        e.sup.saved("/etc/hostname");
        e.sup.saved("README");
        e.w.write("go.log", "");
        let done = e.ed.wait_event("completed", rec.id).await;
        let files = Env::files(&done, 0);
        assert_eq!(
            files
                .iter()
                .map(|f| (f.path.as_str(), f.edited_by_you))
                .collect::<Vec<_>>(),
            [("README", false), ("src/lib.rs", true)]
        );
        let lines = e.ed.footer(1, "✓ done in").await;
        assert!(
            lines
                .last()
                .unwrap()
                .ends_with(" · 2 files +3 −0 (1 also edited by you)"),
            "{lines:#?}"
        );
        let review = e.sup.review(&e.cwd(), rec.id, None).unwrap();
        assert!(review.by_you.contains("src/lib.rs"));
    });
    before.assert_same(&e.w.capture(), &["README", "src/lib.rs", "go.log"]);
}

#[test]
fn revert_keeps_a_later_edit_restores_and_removes_files_and_says_so() {
    let w = World::repo("task-revert");
    w.write("gone.txt", "to be deleted\n");
    w.commit_all("more");
    let e = env(w);
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e
            .start(json!([
                edit("src/lib.rs", "line 3\n", "line three\n"),
                write("made by the task.txt", "new\n"),
                bash("rm gone.txt && mv README README.md"),
            ]))
            .await;
        e.attach(rec.id, 1);
        e.ed.wait_event("completed", rec.id).await;
        // The user edits elsewhere in the same file afterwards.
        let edited = numbered(20)
            .replace("line 3\n", "line three\n")
            .replace("line 17\n", "user's 17\n");
        e.w.write("src/lib.rs", &edited);
        let done = e.sup.revert(&e.cwd(), rec.id, None).expect("revert");
        assert!(done.report.is_clean(), "{:?}", done.report);
        assert_eq!(done.run, 1);
        assert_eq!(
            e.w.read("src/lib.rs"),
            numbered(20).replace("line 17\n", "user's 17\n")
        );
        assert!(!e.w.exists("made by the task.txt"));
        assert_eq!(e.w.read("gone.txt"), "to be deleted\n");
        assert_eq!(e.w.read("README"), "read me\n");
        assert!(!e.w.exists("README.md"));
        let reverts = done.rec.runs[0].changes.as_ref().unwrap().reverts.clone();
        assert_eq!(reverts.len(), 1);
        assert_eq!((reverts[0].files, reverts[0].conflicts), (4, 0));
        assert_eq!(reverts[0].after_runs, 1);
        // An event says so (a run sends `updated` events of its own: the latest is the revert's).
        e.ed.until("the revert's update", |s| {
            s.find(&["updated"], rec.id).is_some_and(|(_, r)| {
                r.runs[0]
                    .changes
                    .as_ref()
                    .is_some_and(|c| c.reverts.len() == 1)
            })
        })
        .await;
        // The buffer says so under the run's footer, and a buffer opened later too.
        e.ed.footer(1, "↶ run 1 reverted: 4 files").await;
        e.attach(rec.id, 2);
        let later = e.ed.footer(2, "↶ run 1 reverted: 4 files").await;
        assert!(
            later[later.len() - 3].starts_with("✓ done in"),
            "{later:#?}"
        );
    });
    before.assert_same(&e.w.capture(), &["src/lib.rs"]);
}

#[test]
fn revert_over_a_conflicting_edit_leaves_markers_and_lists_them() {
    let e = env(World::repo("task-conflict"));
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e
            .start(json!([edit("src/lib.rs", "line 5\n", "task's 5\n")]))
            .await;
        e.ed.wait_event("completed", rec.id).await;
        e.w.write(
            "src/lib.rs",
            &numbered(20).replace("line 5\n", "user's 5\n"),
        );
        let done = e.sup.revert(&e.cwd(), rec.id, Some(1)).expect("revert");
        assert_eq!(done.report.conflicts.len(), 1);
        let c = &done.report.conflicts[0];
        assert_eq!((c.path.as_str(), c.line), ("src/lib.rs", 5));
        let text = e.w.read("src/lib.rs");
        assert!(
            text.contains(&format!(
                "<<<<<<< yours\nuser's 5\n=======\nline 5\n>>>>>>> before task #{} run 1\n",
                rec.id
            )),
            "{text}"
        );
        let reverts = done.rec.runs[0].changes.as_ref().unwrap().reverts.clone();
        assert_eq!(reverts[0].conflicts, 1);
    });
    before.assert_same(&e.w.capture(), &["src/lib.rs"]);
}

#[test]
fn a_running_task_cannot_be_reverted_and_a_warm_follow_up_has_its_own_changes() {
    let e = env(World::repo("task-runs"));
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e
            .start(json!([
                bash("echo first >> README"),
                bash("while [ ! -e go.log ]; do sleep 0.01; done")
            ]))
            .await;
        e.ed.wait_event("started", rec.id).await;
        let err = e.sup.revert(&e.cwd(), rec.id, None).err().unwrap();
        assert!(err.contains("is running"), "{err}");
        let err = e.sup.review(&e.cwd(), rec.id, None).err().unwrap();
        assert!(err.contains("known when it ends"), "{err}");
        e.w.write("go.log", "");
        // The run's end is recorded when its result comes, its CLI still alive and idle.
        let first = e.ed.wait_event("completed", rec.id).await;
        let cli = first.process.as_ref().expect("its CLI idles").pid;
        assert!(first.live.is_some(), "{first:#?}");
        assert_eq!(
            summary(&Env::files(&first, 0)),
            [("README", "modified", 1, 0)]
        );
        // A warm follow-up, written to that CLI: a run of its own, recorded from before its
        // prompt was written to the end of its result.
        e.sup
            .resume(
                &e.cwd(),
                rec.id,
                format!("fake-tools: {}", json!([write("second.txt", "2\n")])),
            )
            .unwrap();
        e.ed.until("the follow-up's end", |s| s.count("completed", rec.id) == 2)
            .await;
        e.warm_second_run(rec.id, cli, ("README", "modified", 1, 0));
        assert_eq!(e.sup.review(&e.cwd(), rec.id, None).unwrap().run, 2);
        assert_eq!(e.sup.review(&e.cwd(), rec.id, Some(1)).unwrap().run, 1);
        // Undo the first run only: the second one's file stays.
        e.sup.revert(&e.cwd(), rec.id, Some(1)).unwrap();
        assert_eq!(e.w.read("README"), "read me\n");
        assert_eq!(e.w.read("second.txt"), "2\n");
        // Dispose takes the task's refs along, and only them.
        assert_eq!(e.our_refs().len(), 5, "{:?}", e.our_refs());
        e.sup.dispose(&e.cwd(), rec.id).unwrap();
        assert_eq!(e.our_refs().len(), 1, "the project's keep-alive ref stays");
        assert!(e.our_refs()[0].ends_with("/index"));
    });
    before.assert_same(&e.w.capture(), &["second.txt", "go.log"]);
}

/// Gives the supervisor a `git` that holds every `commit-tree` while `<dir>/hold` exists: it
/// writes `<dir>/held`, and goes on once `<dir>/release` exists (or after 30 s). Returns `dir`.
fn hold_commits(e: &Env) -> std::path::PathBuf {
    let dir = e.w.tmp.0.clone();
    let wrapper = dir.join("git-holding-commits");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nd='{}'\nfor a in \"$@\"; do\n  if [ \"$a\" = commit-tree ] && [ -e \"$d/hold\" ]; then\n    : > \"$d/held\"\n    i=0\n    while [ ! -e \"$d/release\" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n    break\n  fi\ndone\nexec git \"$@\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let git = e.w.git.clone().program(&wrapper);
    e.sup.configure(|c| c.git = git);
    dir
}

/// Waits (polling, bounded) until `path` exists: the sign a held `git` or the CLI gives.
async fn until_exists(path: &Path, what: &str) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !path.exists() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_warm_follow_up_reaches_its_cli_before_its_start_snapshot_is_committed() {
    // The prompt waits for the work tree's capture (`git add -A`, `write-tree`), not for the
    // snapshot's commit and refs: a `git` that holds every `commit-tree` while `hold` exists
    // shows the CLI working on the follow-up while its start is being committed, and the run's
    // changes still its own.
    let e = env(World::repo("task-warm-capture"));
    let dir = hold_commits(&e);
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e.start(json!([write("first.txt", "1\n")])).await;
        let first = e.ed.wait_event("completed", rec.id).await;
        assert!(first.live.is_some(), "{first:#?}");
        let cli = first.process.as_ref().expect("its CLI idles").pid;
        std::fs::write(dir.join("hold"), "").unwrap();
        e.sup
            .resume(
                &e.cwd(),
                rec.id,
                format!("fake-tools: {}", json!([write("second.txt", "2\n")])),
            )
            .unwrap();
        until_exists(&dir.join("held"), "the start's commit-tree").await;
        until_exists(
            &e.w.path("second.txt"),
            "the CLI's edit while the commit is held",
        )
        .await;
        // The run is not watched (so it cannot end) before its start is recorded.
        assert_eq!(e.ed.count("completed", rec.id), 1);
        std::fs::write(dir.join("release"), "").unwrap();
        e.ed.until("the follow-up's end", |s| s.count("completed", rec.id) == 2)
            .await;
        e.warm_second_run(rec.id, cli, ("first.txt", "added", 1, 0));
        e.sup.dispose(&e.cwd(), rec.id).unwrap();
    });
    before.assert_same(&e.w.capture(), &["first.txt", "second.txt"]);
}

#[test]
fn quitting_while_a_run_s_end_is_recorded_closes_its_cli_instead_of_keeping_it() {
    // The editor quits (`shutdown`, on_exit = "cancel") after a run's end decided to keep its
    // CLI for follow-ups and before the CLI is kept: here while the end snapshot's commit is
    // held. The CLI must be closed with the rest, not kept alive behind the quit.
    let e = env(World::repo("task-quit-at-end"));
    let dir = hold_commits(&e);
    rt().block_on(async {
        let rec = e
            .start(json!([bash("while [ ! -e go.log ]; do sleep 0.01; done")]))
            .await;
        let started = e.ed.wait_event("started", rec.id).await;
        let cli = started.process.as_ref().expect("a CLI").pid;
        std::fs::write(dir.join("hold"), "").unwrap();
        e.w.write("go.log", "");
        until_exists(&dir.join("held"), "the end's commit-tree").await;
        let sup = e.sup.clone();
        let quit = tokio::spawn(async move { sup.shutdown().await });
        // `shutdown` cancels what runs once it has begun: then it is under way.
        let deadline = tokio::time::Instant::now() + GUARD;
        while !e.sup.get(&e.cwd(), rec.id).unwrap().cancel_requested {
            assert!(
                tokio::time::Instant::now() < deadline,
                "shutdown never began"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(dir.join("release"), "").unwrap();
        tokio::time::timeout(GUARD, quit)
            .await
            .expect("shutdown ends")
            .unwrap();
        assert!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(cli), None).is_err(),
            "the CLI outlived the quit"
        );
        let done = e.sup.get(&e.cwd(), rec.id).unwrap();
        assert!(done.live.is_none() && done.process.is_none(), "{done:#?}");
        assert!(done.status.is_finished(), "{done:#?}");
    });
}

#[test]
fn outside_git_the_named_files_are_recorded_and_reverted() {
    let w = World::plain("task-plain");
    w.write("keep.txt", &numbered(5));
    w.write("other.txt", "other\n");
    let e = env(w);
    rt().block_on(async {
        let rec = e
            .start(json!([
                edit("keep.txt", "line 2\n", "two\n"),
                write("ünï new.txt", "new\n"),
                write("keep.txt", "rewritten\n"),
                // Not named by the transcript: the fallback cannot see it.
                bash("rm other.txt"),
            ]))
            .await;
        e.attach(rec.id, 1);
        let done = e.ed.wait_event("completed", rec.id).await;
        let ch = done.runs[0].changes.clone().unwrap();
        assert_eq!(ch.method, "files");
        assert!(
            ch.why
                .as_deref()
                .unwrap_or("")
                .contains("not in a git work tree"),
            "{ch:?}"
        );
        assert_eq!(
            summary(&Env::files(&done, 0)),
            [
                ("keep.txt", "modified", 1, 5),
                ("ünï new.txt", "added", 1, 0)
            ]
        );
        let lines = e.ed.footer(1, "✓ done in").await;
        assert!(
            lines
                .last()
                .unwrap()
                .ends_with("· 2 files +2 −5 (edit tools only: not a git work tree)"),
            "{lines:#?}"
        );
        let (_, old) = e.sup.original(&e.cwd(), rec.id, None, "keep.txt").unwrap();
        assert_eq!(old.unwrap(), numbered(5).into_bytes());
        let done = e.sup.revert(&e.cwd(), rec.id, None).unwrap();
        assert!(done.report.is_clean(), "{:?}", done.report);
        assert_eq!(e.w.read("keep.txt"), numbered(5));
        assert!(!e.w.exists("ünï new.txt"));
        assert!(
            !e.w.exists("other.txt"),
            "what the fallback did not see stays"
        );
        assert!(!e.w.root.join(".git").exists());
    });
}

#[test]
fn with_track_changes_off_nothing_is_recorded() {
    let e = env(World::repo("task-off"));
    e.sup.configure(|c| c.track_changes = false);
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e.start(json!([bash("echo x >> README")])).await;
        e.attach(rec.id, 1);
        let done = e.ed.wait_event("completed", rec.id).await;
        assert!(done.runs[0].changes.is_none());
        assert!(done.runs[0].files_changed.is_none());
        let lines = e.ed.footer(1, "✓ done in").await;
        assert!(!lines.last().unwrap().contains("file"), "{lines:#?}");
        let err = e.sup.review(&e.cwd(), rec.id, None).err().unwrap();
        assert!(err.contains("not recorded"), "{err}");
        assert!(e.our_refs().is_empty());
    });
    before.assert_same(&e.w.capture(), &["README"]);
}

#[test]
fn a_cancelled_run_still_says_what_it_changed() {
    let e = env(World::repo("task-cancel"));
    let before = e.w.capture();
    rt().block_on(async {
        let rec = e
            .start(json!([bash(
                "echo half >> README; touch started.log; sleep 60"
            )]))
            .await;
        e.attach(rec.id, 1);
        e.ed.wait_event("started", rec.id).await;
        common::wait_file(&e.w.path("started.log")).await;
        e.sup.cancel(&e.cwd(), rec.id).unwrap();
        let done = e.ed.wait_event("cancelled", rec.id).await;
        assert_eq!(done.status, Status::Cancelled);
        assert_eq!(
            summary(&Env::files(&done, 0)),
            [("README", "modified", 1, 0)]
        );
        let lines = e.ed.footer(1, "■ cancelled").await;
        assert!(
            lines.last().unwrap().ends_with(" · 1 file +1 −0"),
            "{lines:#?}"
        );
    });
    before.assert_same(&e.w.capture(), &["README", "started.log"]);
}

#[test]
fn a_worktree_task_s_runs_are_recorded_in_its_worktree() {
    let e = env(World::repo("task-worktree"));
    let before = e.w.capture().without_task_branches();
    rt().block_on(async {
        let rec = e
            .start_isolated(
                json!([edit("src/lib.rs", "line 3\n", "line three\n")]),
                Isolation::Worktree {
                    branch_prefix: "claude-tasks/".into(),
                },
            )
            .await;
        let done = e.ed.wait_event("completed", rec.id).await;
        let wt = done.worktree.clone().expect("a worktree task");
        let ch = done.runs[0].changes.clone().unwrap();
        assert_eq!(ch.method, "git");
        assert_eq!(Path::new(&ch.root), Path::new(&wt.path), "{ch:?}");
        assert_eq!(
            summary(&Env::files(&done, 0)),
            [("src/lib.rs", "modified", 1, 1)]
        );
        // Reverted in the worktree; the project never changed.
        e.sup.revert(&e.cwd(), rec.id, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(Path::new(&wt.path).join("src/lib.rs")).unwrap(),
            numbered(20)
        );
    });
    before.assert_same(&e.w.capture().without_task_branches(), &[]);
}
