//! Worktree tasks against real repositories made by the tests: creation from what the user
//! sees, isolation, the diff against the base, apply back (files and commit), discard, a user's
//! `git worktree prune`, and the refusals. Every test compares the user's index bytes, HEAD,
//! branches (but the task's own), stash and files before and after.

mod gitrepo;

use std::fs;
use std::path::{Path, PathBuf};

use claude_tasks::changes::{Action, Labels, Refs};
use claude_tasks::git::Error;
use claude_tasks::worktree::{self, Applied, ApplyMode, Outcome, Spec, Worktree};
use gitrepo::{numbered, World};

const KEY: &str = "work-0123abcd";

fn refs() -> Refs {
    Refs::new(KEY)
}

fn create(w: &World, id: u64) -> Worktree {
    try_create(w, id).unwrap_or_else(|e| panic!("{e}"))
}

fn try_create(w: &World, id: u64) -> Result<Worktree, Error> {
    let path = w.state.join(format!("worktrees/claude-tasks-{id}"));
    let index_dir = w.state.join("git-index");
    let refs = refs();
    worktree::create(&Spec {
        git: &w.git,
        cwd: &w.root,
        path: &path,
        branch: &format!("{}{id}", worktree::DEFAULT_BRANCH_PREFIX),
        index_dir: &index_dir,
        refs: &refs,
        id,
    })
}

fn result(w: &World, wt: &Worktree, id: u64) -> Outcome {
    worktree::result(
        &w.git,
        &w.root,
        wt,
        &w.state.join(format!("{id}/worktree-index")),
        &refs(),
        id,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn labels(id: u64) -> Labels {
    Labels {
        ours: "yours".into(),
        base: format!("base of task #{id}"),
        theirs: format!("task #{id}"),
    }
}

fn apply(w: &World, wt: &Worktree, id: u64, mode: ApplyMode) -> Applied {
    let outcome = result(w, wt, id);
    worktree::apply(&w.git, &w.root, &outcome, &mode, &labels(id)).unwrap_or_else(|e| panic!("{e}"))
}

/// The user's branches and their commits (not the tasks').
fn user_branches(w: &World) -> String {
    w.git(&[
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/heads",
    ])
    .lines()
    .filter(|l| !l.contains("claude-tasks/"))
    .map(|l| format!("{l}\n"))
    .collect()
}

fn wt_write(wt: &Worktree, rel: &str, text: &str) {
    let p = wt.path.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn wt_read(wt: &Worktree, rel: &str) -> String {
    fs::read_to_string(wt.path.join(rel)).unwrap()
}

#[test]
fn the_base_is_what_the_user_sees_uncommitted_and_untracked_included() {
    let w = World::repo("wt-base");
    w.write("README", "edited, not staged\n");
    w.write("staged.txt", "staged\n");
    w.git(&["add", "staged.txt"]);
    w.write("untracked dir/ünï.txt", "untracked\n");
    w.write("build.log", "ignored\n");
    let before = w.capture();
    let wt = create(&w, 1);
    assert_eq!(wt.branch, "claude-tasks/1");
    assert!(wt.path.starts_with(fs::canonicalize(&w.state).unwrap()));
    assert_eq!(wt_read(&wt, "README"), "edited, not staged\n");
    assert_eq!(wt_read(&wt, "staged.txt"), "staged\n");
    assert_eq!(wt_read(&wt, "untracked dir/ünï.txt"), "untracked\n");
    assert!(
        !wt.path.join("build.log").exists(),
        "ignored files stay out"
    );
    assert_eq!(wt.head.as_deref(), Some(w.head().as_str()));
    assert_eq!(
        w.git(&["rev-parse", &format!("{}^", wt.base)]).trim(),
        w.head(),
        "the base sits on the user's HEAD"
    );
    let st = worktree::state(&w.git, &w.root, &wt).unwrap();
    assert!(st.ok() && st.locked, "{st:?}");
    // A clean worktree has no changes against its base.
    let outcome = result(&w, &wt, 1);
    assert!(worktree::changes(&w.git, &outcome)
        .unwrap()
        .files
        .is_empty());
    before
        .without_task_branches()
        .assert_same(&w.capture().without_task_branches(), &[]);
}

#[test]
fn two_worktrees_editing_one_file_apply_clean_then_conflict() {
    let w = World::repo("wt-two");
    let before = w.capture();
    // Started at once, as two tasks would be.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| create(&w, 1));
        let b = s.spawn(|| create(&w, 2));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.path, b.path);
    wt_write(
        &a,
        "src/lib.rs",
        &numbered(20).replace("line 4\n", "task one\n"),
    );
    wt_write(
        &b,
        "src/lib.rs",
        &numbered(20).replace("line 4\n", "task two\n"),
    );
    // Neither sees the other; the user's tree sees neither.
    assert!(wt_read(&a, "src/lib.rs").contains("task one"));
    assert!(!wt_read(&a, "src/lib.rs").contains("task two"));
    assert!(!wt_read(&b, "src/lib.rs").contains("task one"));
    assert_eq!(w.read("src/lib.rs"), numbered(20));
    before
        .clone()
        .without_task_branches()
        .assert_same(&w.capture().without_task_branches(), &[]);

    let diff = worktree::changes(&w.git, &result(&w, &a, 1)).unwrap();
    assert_eq!(diff.files.len(), 1);
    assert_eq!(diff.files[0].path, "src/lib.rs");
    assert_eq!(diff.files[0].hunks[0].line, 4);

    let first = apply(&w, &a, 1, ApplyMode::Files);
    assert!(first.report.is_clean(), "{:?}", first.report);
    assert_eq!(first.report.files[0].action, Action::Updated);
    assert_eq!(
        w.read("src/lib.rs"),
        numbered(20).replace("line 4\n", "task one\n")
    );

    let second = apply(&w, &b, 2, ApplyMode::Files);
    assert_eq!(second.report.files[0].action, Action::Conflicted);
    assert_eq!(second.report.conflicts.len(), 1);
    assert_eq!(
        (
            second.report.conflicts[0].path.as_str(),
            second.report.conflicts[0].line
        ),
        ("src/lib.rs", 4)
    );
    let text = w.read("src/lib.rs");
    assert!(
        text.contains("<<<<<<< yours\ntask one\n=======\ntask two\n>>>>>>> task #2\n"),
        "{text}"
    );
    before
        .without_task_branches()
        .assert_same(&w.capture().without_task_branches(), &["src/lib.rs"]);
}

#[test]
fn apply_keeps_a_user_edit_made_after_the_task_started() {
    let w = World::repo("wt-keep");
    let wt = create(&w, 1);
    w.write(
        "src/lib.rs",
        &numbered(20).replace("line 18\n", "user 18\n"),
    );
    wt_write(
        &wt,
        "src/lib.rs",
        &numbered(20).replace("line 2\n", "task 2\n"),
    );
    // The task also commits in its worktree, and leaves an untracked file and a deletion.
    w.git_ok(&wt.path, &["commit", "-q", "-am", "task commit"]);
    wt_write(&wt, "docs/new.md", "new\n");
    fs::remove_file(wt.path.join("README")).unwrap();
    let before = w.capture();
    let applied = apply(&w, &wt, 1, ApplyMode::Files);
    assert!(applied.report.is_clean(), "{:?}", applied.report);
    assert!(applied.commit.is_none());
    assert_eq!(
        w.read("src/lib.rs"),
        numbered(20)
            .replace("line 2\n", "task 2\n")
            .replace("line 18\n", "user 18\n")
    );
    assert_eq!(w.read("docs/new.md"), "new\n");
    assert!(!w.exists("README"));
    before.without_task_branches().assert_same(
        &w.capture().without_task_branches(),
        &["src/lib.rs", "docs", "README"],
    );
    // Applying again changes nothing.
    let before = w.capture();
    let again = apply(&w, &wt, 1, ApplyMode::Files);
    assert!(
        again
            .report
            .files
            .iter()
            .all(|f| f.action == Action::Unchanged),
        "{again:?}"
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn apply_as_a_commit_holds_exactly_the_task_s_changes() {
    let w = World::repo("wt-commit");
    w.write("other.txt", "other\n");
    w.commit_all("other");
    let wt = create(&w, 1);
    wt_write(
        &wt,
        "src/lib.rs",
        &numbered(20).replace("line 2\n", "task 2\n"),
    );
    wt_write(&wt, "added by task.txt", "added\n");
    // Meanwhile the user stages a change elsewhere and edits the same file elsewhere.
    w.write("other.txt", "other, staged\n");
    w.git(&["add", "other.txt"]);
    w.write(
        "src/lib.rs",
        &numbered(20).replace("line 19\n", "user 19\n"),
    );
    let old_head = w.head();
    let staged_before = w.git(&["ls-files", "-s", "--", "other.txt", "README"]);
    let branches_before = user_branches(&w);
    let before = w.capture();

    let applied = apply(
        &w,
        &wt,
        1,
        ApplyMode::Commit {
            message: "task #1: edit lib".into(),
        },
    );
    let commit = applied
        .commit
        .clone()
        .unwrap_or_else(|| panic!("{applied:?}"));
    assert_eq!(w.head(), commit);
    assert_eq!(w.git(&["rev-parse", "HEAD^"]).trim(), old_head);
    assert_eq!(
        w.git(&["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main",
        "still on the branch"
    );
    // Exactly the task's files, with the task's content only.
    assert_eq!(
        w.git(&["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]),
        "added by task.txt\nsrc/lib.rs\n"
    );
    assert_eq!(
        w.git(&["show", "HEAD:src/lib.rs"]),
        numbered(20).replace("line 2\n", "task 2\n")
    );
    assert_eq!(
        w.git(&["log", "-1", "--format=%an %s"]),
        "The User task #1: edit lib\n"
    );
    // The user's staged change is still staged and not committed; their edit is unstaged.
    assert_eq!(
        w.git(&["ls-files", "-s", "--", "other.txt", "README"]),
        staged_before
    );
    assert_eq!(w.git(&["diff", "--cached", "--name-only"]), "other.txt\n");
    assert_eq!(w.git(&["diff", "--name-only"]), "src/lib.rs\n");
    assert_eq!(
        w.read("src/lib.rs"),
        numbered(20)
            .replace("line 2\n", "task 2\n")
            .replace("line 19\n", "user 19\n")
    );
    // Only the files, the branch and the index entries of the committed paths changed.
    let after = w.capture();
    assert_eq!(before.stash, after.stash);
    assert_eq!(before.head_file, after.head_file);
    assert_eq!(
        user_branches(&w),
        branches_before.replace(&old_head, &commit),
        "only the current branch moved"
    );
    before.assert_files_same(&after, &["src/lib.rs", "added by task.txt"]);
}

#[test]
fn apply_as_a_commit_is_refused_whole_over_staged_changes_or_conflicts() {
    let w = World::repo("wt-commit-refused");
    let wt = create(&w, 1);
    wt_write(
        &wt,
        "src/lib.rs",
        &numbered(20).replace("line 2\n", "task 2\n"),
    );
    w.write("src/lib.rs", &numbered(20).replace("line 9\n", "user 9\n"));
    w.git(&["add", "src/lib.rs"]);
    let before = w.capture();
    let outcome = result(&w, &wt, 1);
    let mode = ApplyMode::Commit {
        message: "m".into(),
    };
    let err = worktree::apply(&w.git, &w.root, &outcome, &mode, &labels(1)).unwrap_err();
    assert!(
        err.to_string().contains("staged changes in src/lib.rs"),
        "{err}"
    );
    before.assert_same(&w.capture(), &[]);

    // Unstaged but conflicting: refused too, nothing written.
    w.git(&["reset", "-q"]);
    w.write("src/lib.rs", &numbered(20).replace("line 2\n", "user 2\n"));
    let before = w.capture();
    let err = worktree::apply(&w.git, &w.root, &outcome, &mode, &labels(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("conflict with your uncommitted changes"),
        "{err}"
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn apply_as_a_commit_on_a_detached_head_and_in_an_empty_repository() {
    let w = World::repo("wt-commit-detached");
    w.git(&["checkout", "-q", "--detach"]);
    let wt = create(&w, 1);
    wt_write(&wt, "x.txt", "x\n");
    let old = w.head();
    let applied = apply(
        &w,
        &wt,
        1,
        ApplyMode::Commit {
            message: "x".into(),
        },
    );
    let commit = applied.commit.unwrap();
    assert_eq!(w.head(), commit);
    assert_eq!(w.git(&["rev-parse", "HEAD^"]).trim(), old);
    assert!(
        w.git(&["branch", "--show-current"]).trim().is_empty(),
        "still detached"
    );

    let e = World::empty_repo("wt-commit-empty");
    e.write("first.txt", "first\n");
    let before = e.capture();
    let wt = create(&e, 1);
    assert!(wt.head.is_none());
    assert_eq!(wt_read(&wt, "first.txt"), "first\n");
    wt_write(&wt, "second.txt", "second\n");
    let applied = apply(&e, &wt, 1, ApplyMode::Files);
    assert!(applied.report.is_clean());
    assert_eq!(e.read("second.txt"), "second\n");
    before
        .without_task_branches()
        .assert_same(&e.capture().without_task_branches(), &["second.txt"]);
}

#[test]
fn discard_removes_the_worktree_its_branch_and_refs_and_nothing_else() {
    let w = World::repo("wt-discard");
    w.write("README", "user's uncommitted edit\n");
    let before = w.capture();
    let wt = create(&w, 3);
    wt_write(&wt, "README", "task's unapplied change\n");
    result(&w, &wt, 3);
    worktree::discard(&w.git, &w.root, &wt, &refs(), 3).unwrap();
    assert!(!wt.path.exists());
    assert!(
        w.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count()
            == 1
    );
    assert_eq!(
        w.git(&[
            "for-each-ref",
            "refs/claude-tasks/",
            "refs/heads/claude-tasks/"
        ])
        .lines()
        .filter(|l| !l.ends_with("/index"))
        .count(),
        0
    );
    // Everything as before, branches included.
    before.assert_same(&w.capture(), &[]);
    // Discarding again finds nothing to do.
    worktree::discard(&w.git, &w.root, &wt, &refs(), 3).unwrap();
}

#[test]
fn a_prune_by_the_user_is_survived_and_a_lost_worktree_is_reported() {
    let w = World::repo("wt-prune");
    let wt = create(&w, 1);
    wt_write(&wt, "README", "committed by the task\n");
    w.git_ok(&wt.path, &["commit", "-q", "-am", "task"]);
    wt_write(&wt, "uncommitted.txt", "lost with the directory\n");
    let before = w.capture();
    // The user prunes: the worktree is locked, nothing happens.
    w.git(&["worktree", "prune"]);
    assert!(worktree::state(&w.git, &w.root, &wt).unwrap().ok());
    // The directory is lost (a cleaned state directory) and the user prunes again: the
    // locked entry stays, the state says what is missing.
    fs::remove_dir_all(&wt.path).unwrap();
    w.git(&["worktree", "prune"]);
    let st = worktree::state(&w.git, &w.root, &wt).unwrap();
    assert!(!st.dir && st.registered && st.branch, "{st:?}");
    let problem = st.problem(&wt).unwrap();
    assert!(problem.contains("its directory"), "{problem}");
    // The user unlocks and prunes: git forgets it; the branch remains.
    w.git(&["worktree", "unlock", wt.path.to_str().unwrap()]);
    w.git(&["worktree", "prune"]);
    let st = worktree::state(&w.git, &w.root, &wt).unwrap();
    assert!(!st.registered && st.branch, "{st:?}");
    // What the branch holds can still be reviewed and applied.
    let outcome = result(&w, &wt, 1);
    assert!(outcome.missing.is_some());
    let diff = worktree::changes(&w.git, &outcome).unwrap();
    let names: Vec<&str> = diff.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["README"]);
    before
        .without_task_branches()
        .assert_same(&w.capture().without_task_branches(), &[]);
    worktree::discard(&w.git, &w.root, &wt, &refs(), 1).unwrap();
    assert!(w.git(&["branch", "--list", "claude-tasks/*"]).is_empty());
}

#[test]
fn no_worktree_outside_a_work_tree_nor_for_a_bare_repository() {
    let plain = World::plain("wt-plain");
    let err = try_create(&plain, 1).unwrap_err();
    assert!(err.to_string().contains("not in a git work tree"), "{err}");
    assert!(!plain.state.join("worktrees").exists());

    let w = World::plain("wt-bare");
    w.git(&["init", "-q", "--bare"]);
    let err = try_create(&w, 1).unwrap_err();
    assert!(err.to_string().contains("bare"), "{err}");
    assert!(w.git(&["for-each-ref"]).is_empty(), "no ref left behind");
}

#[test]
fn a_taken_branch_name_gets_a_suffix_and_a_bad_one_is_refused() {
    let w = World::repo("wt-branch");
    w.git(&["branch", "claude-tasks/1"]);
    let wt = create(&w, 1);
    assert_eq!(wt.branch, "claude-tasks/1-2");
    let refs = refs();
    let err = worktree::create(&Spec {
        git: &w.git,
        cwd: &w.root,
        path: &w.state.join("bad"),
        branch: "bad..name",
        index_dir: &w.state.join("git-index"),
        refs: &refs,
        id: 9,
    })
    .unwrap_err();
    assert!(err.to_string().contains("not a valid branch name"), "{err}");
    assert!(!w.state.join("bad").exists());
}

#[test]
fn an_existing_path_is_refused_and_leaves_nothing() {
    let w = World::repo("wt-exists");
    let path: PathBuf = w.state.join("worktrees/claude-tasks-1");
    fs::create_dir_all(&path).unwrap();
    let before = w.capture();
    let err = try_create(&w, 1).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    before.assert_same(&w.capture(), &[]);
    assert!(Path::new(&path).read_dir().unwrap().next().is_none());
}

#[test]
fn no_hook_fires_when_a_worktree_is_made_and_applied() {
    let w = World::repo("wt-hooks");
    let hooks = w.failing_hooks(&[
        "post-checkout",
        "post-index-change",
        "reference-transaction",
        "post-commit",
    ]);
    w.git(&["config", "core.hooksPath", hooks.to_str().unwrap()]);
    let wt = create(&w, 1);
    wt_write(&wt, "README", "changed\n");
    apply(
        &w,
        &wt,
        1,
        ApplyMode::Commit {
            message: "m".into(),
        },
    );
    worktree::discard(&w.git, &w.root, &wt, &refs(), 1).unwrap();
    assert!(!w.hook_ran(), "a hook ran");
}
