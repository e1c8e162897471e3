//! What a task changed, against real repositories made by the tests: snapshots (untracked
//! included, ignored excluded), the diff between a run's start and end, a file's content at a
//! snapshot, revert by three-way merge, the fallback outside git, and dispose. Every test
//! compares the user's index bytes, HEAD, branches, stash and the files it did not mean to
//! touch before and after.

mod gitrepo;

use std::fs;
use std::path::{Path, PathBuf};

use claude_tasks::changes::{
    self, Action, End, Labels, Method, Place, Refs, RunSnapshots, RunStart, Status,
};
use claude_tasks::git::Repo;
use gitrepo::{numbered, World};

const KEY: &str = "work-0123abcd";

/// One run of task `id` in `w`: its places, begun and finished around `during`.
struct Run<'w> {
    w: &'w World,
    refs: Refs,
    id: u64,
    run: u32,
    index_dir: PathBuf,
    run_dir: PathBuf,
}

impl<'w> Run<'w> {
    fn new(w: &'w World, id: u64, run: u32) -> Run<'w> {
        Run {
            w,
            refs: Refs::new(KEY),
            id,
            run,
            index_dir: w.state.join("git-index"),
            run_dir: w.state.join(format!("{id}/changes-{run}")),
        }
    }

    fn place(&self) -> Place<'_> {
        Place {
            git: &self.w.git,
            cwd: &self.w.root,
            index_dir: &self.index_dir,
            run_dir: &self.run_dir,
            refs: &self.refs,
            id: self.id,
            run: self.run,
        }
    }

    fn begin(&self) -> RunStart {
        changes::begin(&self.place()).unwrap()
    }

    fn finish(&self, start: &RunStart) -> RunSnapshots {
        changes::finish(&self.place(), start).unwrap()
    }

    /// Begins, lets `during` change the files, finishes.
    fn around(&self, during: impl FnOnce(&RunStart)) -> RunSnapshots {
        let start = self.begin();
        during(&start);
        self.finish(&start)
    }
}

fn labels() -> Labels {
    Labels {
        ours: "yours".into(),
        base: "after task #1".into(),
        theirs: "before task #1".into(),
    }
}

/// Paths of a commit's tree.
fn tree_paths(w: &World, commit: &str) -> Vec<String> {
    let out = w.git(&["ls-tree", "-r", "-z", "--name-only", commit]);
    out.split('\0')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn a_snapshot_holds_untracked_files_and_not_ignored_ones_and_touches_nothing() {
    let w = World::repo("snap");
    w.write("README", "changed, not staged\n");
    w.write("src/new.rs", "fn new() {}\n");
    w.write("staged.txt", "staged\n");
    w.git(&["add", "staged.txt"]);
    w.write("debug.log", "ignored\n");
    w.write("target/out.bin", "ignored too\n");
    let before = w.capture();

    let run = Run::new(&w, 1, 1);
    let start = run.begin();
    let RunStart::Git { start: snap } = &start else {
        panic!("a git work tree must use git snapshots: {start:?}")
    };
    assert_eq!(snap.method, Method::Git);
    let paths = tree_paths(&w, &snap.commit);
    assert_eq!(
        paths,
        [
            ".gitignore",
            "README",
            "src/lib.rs",
            "src/new.rs",
            "staged.txt"
        ]
    );
    assert_eq!(
        w.git(&["show", &format!("{}:README", snap.commit)]),
        "changed, not staged\n"
    );
    // Parent: HEAD; kept alive by the run's ref and the project's.
    assert_eq!(
        w.git(&["rev-parse", &format!("{}^", snap.commit)]).trim(),
        w.head()
    );
    assert_eq!(
        w.git(&["rev-parse", &run.refs.run(1, 1, End::Start)])
            .trim(),
        snap.commit
    );
    assert_eq!(
        w.git(&["rev-parse", &run.refs.keep_alive()]).trim(),
        snap.commit
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_run_s_changes_list_every_kind_of_file_change() {
    let w = World::repo("diff");
    w.write("old name.txt", &numbered(30));
    w.write_bytes("image.bin", b"\x89PNG\0\0\x01\x02");
    w.write("gone.txt", "to be deleted\n");
    w.commit_all("more");
    let run = Run::new(&w, 1, 1);
    let mut before = None;
    let snaps = run.around(|_| {
        // Modified: line 3 changed, line 15 removed, a line added at the end.
        let mut lines: Vec<String> = numbered(20).lines().map(String::from).collect();
        lines[2] = "line three".into();
        lines.remove(14);
        lines.push("line 21".into());
        w.write("src/lib.rs", &(lines.join("\n") + "\n"));
        w.write("dir with space/ünïcødé file.txt", "hello\nwörld\n");
        fs::remove_file(w.path("gone.txt")).unwrap();
        fs::rename(w.path("old name.txt"), w.path("new name.txt")).unwrap();
        w.write_bytes("image.bin", b"\x89PNG\0\0\x03\x04\x05");
        before = Some(w.capture());
    });
    let before = before.unwrap();
    assert_eq!(snaps.method(), Method::Git);
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    let by_path = |p: &str| {
        c.files
            .iter()
            .find(|f| f.path == p)
            .unwrap_or_else(|| panic!("{p} missing from {:?}", c.files))
    };
    let lib = by_path("src/lib.rs");
    assert_eq!(
        (lib.status, lib.added, lib.removed),
        (Status::Modified, 2, 2)
    );
    let lines: Vec<u32> = lib.hunks.iter().map(|h| h.line).collect();
    assert_eq!(lines, [3, 15]);
    assert_eq!((lib.hunks[1].added, lib.hunks[1].removed), (1, 1));
    let new = by_path("dir with space/ünïcødé file.txt");
    assert_eq!((new.status, new.added, new.removed), (Status::Added, 2, 0));
    let gone = by_path("gone.txt");
    assert_eq!((gone.status, gone.removed), (Status::Deleted, 1));
    let renamed = by_path("new name.txt");
    assert_eq!(renamed.status, Status::Renamed);
    assert_eq!(renamed.old_path.as_deref(), Some("old name.txt"));
    let bin = by_path("image.bin");
    assert!(bin.binary);
    assert_eq!(c.files.len(), 5);
    assert_eq!(c.totals(), (5, 4, 3));

    let patch = String::from_utf8(c.patch.clone()).unwrap();
    assert!(patch.contains(
        "diff --git a/dir with space/ünïcødé file.txt b/dir with space/ünïcødé file.txt"
    ));
    assert!(patch.contains("+wörld"));
    assert!(patch.contains("-line 3\n+line three\n"));
    assert!(patch.contains("rename from old name.txt"));
    assert!(patch.contains("Binary files a/image.bin and b/image.bin differ"));

    let qf = c.quickfix();
    assert!(qf
        .iter()
        .any(|e| e.path == "src/lib.rs" && e.line == 3 && e.text == "+1 −1"));
    assert!(qf
        .iter()
        .any(|e| e.path == "gone.txt" && e.text == "deleted −1"));

    // <CR> on the "+line three" line of the diff buffer lands on line 3 of the file.
    let at = patch.lines().position(|l| l == "+line three").unwrap();
    let (f, line) = c.locate(at).unwrap();
    assert_eq!((f.path.as_str(), line), ("src/lib.rs", 3));

    // Content at the start (for the diff view) as the file was; absent where it was absent.
    let old = changes::content(&w.git, &snaps.start, Path::new("src/lib.rs"))
        .unwrap()
        .unwrap();
    assert_eq!(old, numbered(20).into_bytes());
    let none = changes::content(
        &w.git,
        &snaps.start,
        Path::new("dir with space/ünïcødé file.txt"),
    )
    .unwrap();
    assert!(none.is_none());
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn later_snapshots_reuse_the_private_index_and_survive_its_loss_and_a_gc() {
    let w = World::repo("reuse");
    let run = Run::new(&w, 1, 1);
    let before = w.capture();
    let first = run.around(|_| w.write("a.txt", "a\n"));
    let index = run.index_dir.join("index");
    assert!(index.exists(), "the private index lives on");
    // A user's `git gc --prune=now` must not break the next snapshot: the keep-alive ref keeps
    // everything the private index refers to.
    w.git(&["gc", "-q", "--prune=now"]);
    let second = Run::new(&w, 2, 1).around(|_| w.write("b.txt", "b\n"));
    w.git(&["fsck", "--no-progress", "--no-dangling"]);
    assert_eq!(
        tree_paths(&w, &second.end.commit),
        [".gitignore", "README", "a.txt", "b.txt", "src/lib.rs"]
    );
    // A corrupt private index is started anew.
    fs::write(&index, b"not an index").unwrap();
    let third = Run::new(&w, 3, 1).around(|_| w.write("c.txt", "c\n"));
    assert_eq!(
        changes::run_changes(&w.git, &third).unwrap().files[0].path,
        "c.txt"
    );
    // A stale lock of git's in our directory (a crash) does not block.
    fs::write(run.index_dir.join("index.lock"), b"").unwrap();
    Run::new(&w, 4, 1).around(|_| {});
    assert_eq!(changes::run_changes(&w.git, &first).unwrap().files.len(), 1);
    before.assert_same(&w.capture(), &["a.txt", "b.txt", "c.txt"]);
}

#[test]
fn a_start_is_the_work_tree_at_its_capture_and_a_lost_index_fails_it_honestly() {
    let w = World::repo("capture");
    let run = Run::new(&w, 1, 1);
    let before = w.capture();
    w.write("untracked.txt", "kept only by our refs\n");
    // Old enough for git to trust its stat data (not "racily clean"), so that a later `add -A`
    // does not hash it again.
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(w.path("untracked.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // What the CLI does after the capture (while the commit is made) belongs to the run.
    let captured = match changes::begin_capture(&run.place()).unwrap() {
        changes::Begun::Captured(c) => c,
        changes::Begun::Recorded(_) => panic!("a git work tree is captured"),
    };
    w.write("a.txt", "a\n");
    let start = captured.finish().unwrap();
    let first = run.finish(&start);
    let files = changes::run_changes(&w.git, &first).unwrap().files;
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["a.txt"]
    );
    // Our refs deleted by hand and the objects pruned: the private index names blobs that are
    // gone. A start committed after its capture cannot read the work tree again (the CLI may
    // have begun), so it fails and says so; the next snapshot starts from a seed.
    for r in w
        .git(&["for-each-ref", "--format=%(refname)", "refs/claude-tasks/"])
        .lines()
    {
        w.git(&["update-ref", "-d", r]);
    }
    w.git(&["gc", "-q", "--prune=now"]);
    let second = Run::new(&w, 2, 1);
    let captured = match changes::begin_capture(&second.place()).unwrap() {
        changes::Begun::Captured(c) => c,
        changes::Begun::Recorded(_) => panic!("a git work tree is captured"),
    };
    assert!(captured.finish().is_err(), "a start built on lost objects");
    let third = Run::new(&w, 3, 1).around(|_| w.write("b.txt", "b\n"));
    assert_eq!(
        tree_paths(&w, &third.end.commit),
        [
            ".gitignore",
            "README",
            "a.txt",
            "b.txt",
            "src/lib.rs",
            "untracked.txt"
        ]
    );
    w.git(&["fsck", "--no-progress", "--no-dangling"]);
    before.assert_same(&w.capture(), &["untracked.txt", "a.txt", "b.txt"]);
}

#[test]
fn a_start_in_the_repository_an_earlier_run_found_runs_git_once_and_a_gone_one_is_found_again() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::repo("known-repo");
    let before = w.capture();
    // A git that notes each of its commands.
    let log = w.tmp.0.join("git.log");
    let wrapper = w.tmp.0.join("git-logging");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec git \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let git = w.git.clone().program(&wrapper);
    let (refs, index_dir) = (Refs::new(KEY), w.state.join("git-index"));
    let run_dirs: Vec<PathBuf> = (1..=3).map(|n| w.state.join(format!("c{n}"))).collect();
    let place = |run: u32| Place {
        git: &git,
        cwd: &w.root,
        index_dir: &index_dir,
        run_dir: &run_dirs[run as usize - 1],
        refs: &refs,
        id: 1,
        run,
    };
    let captured = |b: changes::Begun| match b {
        changes::Begun::Captured(c) => c,
        changes::Begun::Recorded(_) => panic!("a git work tree is captured"),
    };
    // The first run finds the repository (two `rev-parse`), then captures (`add`).
    let first = captured(changes::begin_capture_in(&place(1), None).unwrap());
    let repo = first.repo().clone();
    first.finish().unwrap();
    // The next run, given that repository, runs `git add` alone before its prompt.
    fs::write(&log, "").unwrap();
    let second = captured(changes::begin_capture_in(&place(2), Some(&repo)).unwrap());
    let ran = fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");
    assert!(ran.contains(" add -A"), "{ran}");
    second.finish().unwrap();
    // The repository gone from there: found again (here: none), not trusted.
    fs::rename(w.root.join(".git"), w.tmp.0.join("moved.git")).unwrap();
    match changes::begin_capture_in(&place(3), Some(&repo)).unwrap() {
        changes::Begun::Recorded(start) => assert_eq!(start.method(), Method::Files),
        changes::Begun::Captured(_) => panic!("captured in a repository that is gone"),
    }
    fs::rename(w.tmp.0.join("moved.git"), w.root.join(".git")).unwrap();
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_change_the_user_s_stat_data_cannot_see_is_still_recorded() {
    // git's "racy clean" case: a file rewritten (same size, same mtime) in the instant its
    // index entry was written. Only the index file's own mtime tells git to look at the
    // content; the private index is a copy of the user's and must keep that mtime.
    let w = World::repo("racy");
    w.git(&["config", "core.trustctime", "false"]);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    let set_mtime = |p: &Path| {
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    w.write("racy.txt", "aaaa\n");
    set_mtime(&w.path("racy.txt"));
    w.git(&["add", "racy.txt"]);
    set_mtime(&w.root.join(".git/index"));
    // Rewritten in place: same inode, size and mtime.
    fs::write(w.path("racy.txt"), "bbbb\n").unwrap();
    set_mtime(&w.path("racy.txt"));
    let before = w.capture();
    let start = Run::new(&w, 1, 1).begin();
    let RunStart::Git { start } = start else {
        panic!("git expected")
    };
    assert_eq!(
        w.git(&["show", &format!("{}:racy.txt", start.commit)]),
        "bbbb\n"
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn an_empty_repository_gets_snapshots_without_a_parent() {
    let w = World::empty_repo("empty");
    w.write("first.txt", "one\n");
    let before = w.capture();
    let run = Run::new(&w, 1, 1);
    let snaps = run.around(|_| w.write("first.txt", "two\n"));
    assert_eq!(snaps.method(), Method::Git);
    let parents = w.git(&["rev-list", "--parents", "-n1", &snaps.start.commit]);
    assert_eq!(
        parents.split_whitespace().count(),
        1,
        "no parent: {parents}"
    );
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    assert_eq!((c.files[0].added, c.files[0].removed), (1, 1));
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert_eq!(w.read("first.txt"), "one\n");
    assert!(report.is_clean());
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_detached_head_is_the_parent_and_stays_detached() {
    let w = World::repo("detached");
    w.write("README", "second\n");
    w.commit_all("second");
    let first = w.git(&["rev-parse", "HEAD~1"]).trim().to_string();
    w.git(&["checkout", "-q", "--detach", &first]);
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| w.write("x.txt", "x\n"));
    assert_eq!(
        w.git(&["rev-parse", &format!("{}^", snaps.start.commit)])
            .trim(),
        first
    );
    changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(!w.exists("x.txt"));
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_submodule_is_recorded_by_its_commit_and_left_alone() {
    let w = World::repo("super");
    // The submodule's own repository, next to the work tree.
    let lib = w.tmp.0.join("libsrc");
    fs::create_dir_all(&lib).unwrap();
    w.git_ok(&lib, &["init", "-q"]);
    fs::write(lib.join("lib.txt"), "lib\n").unwrap();
    w.git_ok(&lib, &["add", "-A"]);
    w.git_ok(&lib, &["commit", "-q", "-m", "lib"]);
    w.git(&[
        "submodule",
        "add",
        "-q",
        lib.to_str().unwrap(),
        "vendor/lib",
    ]);
    w.commit_all("add submodule");
    let repo = w.repo_handle();
    assert_eq!(repo.submodules().unwrap(), [PathBuf::from("vendor/lib")]);
    let inner = Repo::discover(&w.git, &w.path("vendor/lib")).unwrap();
    assert_eq!(inner.superproject.as_deref(), Some(w.root.as_path()));

    let before = w.capture();
    let sub_before = gitrepo::UserState::capture(&w, &w.path("vendor/lib"));
    let snaps = Run::new(&w, 1, 1).around(|_| {
        w.write("README", "edited\n");
        // An edit inside the submodule is the submodule's business, not a file of ours.
        w.write("vendor/lib/lib.txt", "edited inside\n");
    });
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    let paths: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README"]);
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(w.read("README"), "read me\n");
    assert_eq!(w.read("vendor/lib/lib.txt"), "edited inside\n");
    before.assert_same(&w.capture(), &["vendor/lib/lib.txt"]);
    sub_before.assert_same(
        &gitrepo::UserState::capture(&w, &w.path("vendor/lib")),
        &["lib.txt"],
    );
}

#[test]
fn a_task_in_a_subdirectory_or_a_linked_worktree_records_its_whole_work_tree() {
    let w = World::repo("subdir");
    let refs = Refs::new(KEY);
    let index_dir = w.state.join("sub-index");
    let run_dir = w.state.join("sub-run");
    let cwd = w.path("src");
    let before = w.capture();
    let place = Place {
        git: &w.git,
        cwd: &cwd,
        index_dir: &index_dir,
        run_dir: &run_dir,
        refs: &refs,
        id: 1,
        run: 1,
    };
    let start = changes::begin(&place).unwrap();
    w.write("src/lib.rs", "changed\n");
    w.write("outside-cwd.txt", "also seen\n");
    let snaps = changes::finish(&place, &start).unwrap();
    assert_eq!(snaps.start.work_tree, w.root);
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    let paths: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["outside-cwd.txt", "src/lib.rs"]);
    assert_eq!(
        snaps.end.absolute(Path::new(&c.files[1].path)),
        w.path("src/lib.rs")
    );
    changes::revert(&w.git, &snaps, &labels()).unwrap();
    before.assert_same(&w.capture(), &[]);

    // The user works in a linked worktree of theirs: its own index and HEAD are the ones kept.
    let linked = w.tmp.0.join("linked");
    w.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        linked.to_str().unwrap(),
    ]);
    let repo = Repo::discover(&w.git, &linked).unwrap();
    assert!(repo.is_linked_worktree());
    assert_eq!(repo.common_dir, w.root.join(".git"));
    let before = gitrepo::UserState::capture(&w, &linked);
    let main_before = w.capture();
    let place = Place {
        cwd: &linked,
        id: 2,
        ..place
    };
    let start = changes::begin(&place).unwrap();
    fs::write(linked.join("README"), "in the linked worktree\n").unwrap();
    let snaps = changes::finish(&place, &start).unwrap();
    assert_eq!(
        changes::run_changes(&w.git, &snaps).unwrap().files[0].path,
        "README"
    );
    changes::revert(&w.git, &snaps, &labels()).unwrap();
    before.assert_same(&gitrepo::UserState::capture(&w, &linked), &[]);
    main_before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_user_in_the_middle_of_a_merge_keeps_their_conflicted_index() {
    let w = World::repo("mid-merge");
    w.git(&["checkout", "-q", "-b", "other"]);
    w.write("README", "theirs\n");
    w.commit_all("other");
    w.git(&["checkout", "-q", "main"]);
    w.write("README", "ours\n");
    w.commit_all("ours");
    let merged = w
        .git
        .cmd(&w.root)
        .args(["merge", "-q", "other"])
        .output()
        .unwrap();
    assert!(!merged.success(), "a conflict was wanted");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        // The task resolves the conflict in the file (not in the index).
        w.write("README", "resolved\n");
    });
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    assert_eq!(c.files.len(), 1);
    changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(w.read("README").contains("<<<<<<< HEAD"));
    assert_eq!(
        w.git(&["ls-files", "-u"]).lines().count(),
        3,
        "still unmerged"
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn a_failing_snapshot_falls_back_to_the_named_files_and_says_why() {
    let w = World::repo("snap-fails");
    let not_a_dir = w.state.join("index-is-a-file");
    fs::write(&not_a_dir, "").unwrap();
    let run = Run {
        index_dir: not_a_dir,
        ..Run::new(&w, 1, 1)
    };
    let before = w.capture();
    let start = run.begin();
    let RunStart::Files { why, .. } = &start else {
        panic!("the fallback was expected: {start:?}")
    };
    assert!(
        why.starts_with("git snapshot failed: cannot create directory"),
        "{why}"
    );
    changes::before_edit(&w.git, &start, &[w.path("README")]).unwrap();
    w.write("README", "edited\n");
    let snaps = run.finish(&start);
    assert_eq!(snaps.method(), Method::Files);
    assert_eq!(
        changes::run_changes(&w.git, &snaps).unwrap().files[0].path,
        "README"
    );
    before.assert_same(&w.capture(), &["README"]);
}

#[test]
fn revert_undoes_a_clean_run() {
    let w = World::repo("revert-clean");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        w.write("src/lib.rs", &numbered(20).replace("line 7\n", "seven\n"));
        w.write("notes/new file.md", "new\n");
        fs::remove_file(w.path("README")).unwrap();
    });
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let action = |p: &str| report.files.iter().find(|f| f.path == p).unwrap().action;
    assert_eq!(action("src/lib.rs"), Action::Updated);
    assert_eq!(action("notes/new file.md"), Action::Deleted);
    assert_eq!(action("README"), Action::Created);
    assert!(
        !w.exists("notes"),
        "the directory the run made goes with its file"
    );
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn revert_keeps_a_later_user_edit_elsewhere_in_the_file() {
    let w = World::repo("revert-merge");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        w.write(
            "src/lib.rs",
            &numbered(20).replace("line 3\n", "task's line 3\n"),
        );
    });
    // The user edits line 17 after the run.
    let edited = numbered(20)
        .replace("line 3\n", "task's line 3\n")
        .replace("line 17\n", "user's line 17\n");
    w.write("src/lib.rs", &edited);
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.files[0].action, Action::Merged);
    assert_eq!(
        w.read("src/lib.rs"),
        numbered(20).replace("line 17\n", "user's line 17\n")
    );
    before.assert_same(&w.capture(), &["src/lib.rs"]);
}

#[test]
fn revert_with_a_conflicting_edit_leaves_markers_and_lists_them() {
    let w = World::repo("revert-conflict");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        w.write(
            "src/lib.rs",
            &numbered(20).replace("line 5\n", "task's 5\n"),
        );
    });
    w.write(
        "src/lib.rs",
        &numbered(20).replace("line 5\n", "user's 5\n"),
    );
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.files[0].action, Action::Conflicted);
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].path, "src/lib.rs");
    assert_eq!(report.conflicts[0].line, 5);
    let text = w.read("src/lib.rs");
    assert!(
        text.contains("<<<<<<< yours\nuser's 5\n=======\nline 5\n>>>>>>> before task #1\n"),
        "{text}"
    );
    before.assert_same(&w.capture(), &["src/lib.rs"]);
}

#[test]
fn revert_restores_a_deleted_file_and_removes_a_created_one_only_if_unchanged() {
    let w = World::repo("revert-files");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        fs::remove_file(w.path("README")).unwrap();
        w.write("created.txt", "by the task\n");
        w.write("created too.txt", "by the task\n");
    });
    // The user edits one of the created files afterwards: it must survive the revert.
    w.write("created too.txt", "by the task\nand then by the user\n");
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert_eq!(w.read("README"), "read me\n");
    assert!(!w.exists("created.txt"));
    assert_eq!(
        w.read("created too.txt"),
        "by the task\nand then by the user\n"
    );
    let kept = report
        .files
        .iter()
        .find(|f| f.path == "created too.txt")
        .unwrap();
    assert_eq!(kept.action, Action::Left);
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(
        (report.conflicts[0].path.as_str(), report.conflicts[0].line),
        ("created too.txt", 1)
    );
    before.assert_same(&w.capture(), &["created too.txt"]);
}

#[test]
fn revert_of_a_rename_and_a_binary_file() {
    let w = World::repo("revert-rename");
    w.write_bytes("img.bin", b"\0\x01\x02");
    w.commit_all("bin");
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        fs::rename(w.path("src/lib.rs"), w.path("src/renamed lib.rs")).unwrap();
        w.write_bytes("img.bin", b"\0\x09");
    });
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    assert!(c.files.iter().any(|f| f.status == Status::Renamed));
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(w.read("src/lib.rs"), numbered(20));
    assert!(!w.exists("src/renamed lib.rs"));
    assert_eq!(fs::read(w.path("img.bin")).unwrap(), b"\0\x01\x02");
    before.assert_same(&w.capture(), &[]);

    // A binary file changed again by the user since: left as it is, listed.
    let snaps = Run::new(&w, 2, 1).around(|_| w.write_bytes("img.bin", b"\0task"));
    w.write_bytes("img.bin", b"\0user");
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert_eq!(report.files[0].action, Action::Left);
    assert_eq!(fs::read(w.path("img.bin")).unwrap(), b"\0user");
}

#[test]
fn outside_git_the_named_files_are_kept_and_reverted() {
    let w = World::plain("fallback");
    w.write("keep.txt", &numbered(5));
    w.write("delete me.txt", "bye\n");
    w.write("untouched.txt", "same\n");
    let before_files = w.capture_plain();
    let run = Run::new(&w, 1, 1);
    let start = run.begin();
    let RunStart::Files { why, .. } = &start else {
        panic!("not a git work tree: {start:?}")
    };
    assert!(why.contains("not in a git work tree"), "{why}");
    // The caller names the files of each edit before it runs (repeats are harmless).
    let kept = changes::before_edit(
        &w.git,
        &start,
        &[
            w.path("keep.txt"),
            PathBuf::from("ünï new.txt"),
            w.path("delete me.txt"),
        ],
    )
    .unwrap();
    assert_eq!(kept.kept.len(), 3);
    w.write("keep.txt", &numbered(5).replace("line 2\n", "two\n"));
    w.write("ünï new.txt", "new\n");
    let again = changes::before_edit(
        &w.git,
        &start,
        &[w.path("keep.txt"), PathBuf::from("/etc/passwd")],
    )
    .unwrap();
    assert!(again.kept.is_empty(), "kept once per run: {again:?}");
    assert_eq!(again.ignored.len(), 1);
    fs::remove_file(w.path("delete me.txt")).unwrap();
    let snaps = run.finish(&start);
    assert_eq!(snaps.method(), Method::Files);

    let c = changes::run_changes(&w.git, &snaps).unwrap();
    let mut got: Vec<(String, Status)> =
        c.files.iter().map(|f| (f.path.clone(), f.status)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("delete me.txt".to_string(), Status::Deleted),
            ("keep.txt".to_string(), Status::Modified),
            ("ünï new.txt".to_string(), Status::Added),
        ]
    );
    let old = changes::content(&w.git, &snaps.start, Path::new("keep.txt"))
        .unwrap()
        .unwrap();
    assert_eq!(old, numbered(5).into_bytes());

    // A later edit of the user elsewhere in the file is kept by the revert.
    w.write(
        "keep.txt",
        &numbered(5)
            .replace("line 2\n", "two\n")
            .replace("line 5\n", "five\n"),
    );
    let report = changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        w.read("keep.txt"),
        numbered(5).replace("line 5\n", "five\n")
    );
    assert_eq!(w.read("delete me.txt"), "bye\n");
    assert!(!w.exists("ünï new.txt"));
    let after = w.capture_plain();
    for (k, v) in &before_files {
        if k != Path::new("keep.txt") {
            assert_eq!(after.get(k), Some(v), "{}", k.display());
        }
    }
    assert!(
        !w.root.join(".git").exists(),
        "no repository appears in the user's directory"
    );
}

#[test]
fn dispose_removes_the_task_s_refs_only() {
    let w = World::repo("dispose");
    let before = w.capture();
    Run::new(&w, 1, 1).around(|_| w.write("a", "a\n"));
    Run::new(&w, 1, 2).around(|_| w.write("a", "b\n"));
    Run::new(&w, 2, 1).around(|_| w.write("a", "c\n"));
    let refs = Refs::new(KEY);
    let n = changes::dispose(&w.git, &w.root, &refs, 1).unwrap();
    assert_eq!(n, 4);
    let left = w.git(&["for-each-ref", "--format=%(refname)", "refs/claude-tasks/"]);
    assert_eq!(
        left,
        format!(
            "{}\n{}\n{}\n",
            refs.run(2, 1, End::End),
            refs.run(2, 1, End::Start),
            refs.keep_alive()
        )
    );
    before.assert_same(&w.capture(), &["a"]);
}

#[test]
fn two_runs_of_one_project_can_snapshot_at_once() {
    let w = World::repo("parallel");
    let before = w.capture();
    std::thread::scope(|s| {
        for id in 1..=4u64 {
            let w = &w;
            s.spawn(move || {
                let snaps = Run::new(w, id, 1).around(|_| {});
                assert_eq!(snaps.method(), Method::Git);
            });
        }
    });
    before.assert_same(&w.capture(), &[]);
}

#[test]
fn hostile_user_configuration_changes_nothing() {
    let w = World::repo("hostile");
    w.write("ünï.txt", "a\n");
    w.commit_all("u");
    let hooks = w.failing_hooks(&[
        "post-checkout",
        "post-index-change",
        "pre-commit",
        "post-commit",
    ]);
    let mut config = fs::read_to_string(&w.gitconfig).unwrap();
    config.push_str(&format!(
        "[color]\n\tui = always\n[core]\n\tquotePath = true\n\thooksPath = {}\n\tpager = false\n\
         [diff]\n\texternal = false\n\tnoprefix = true\n\tmnemonicPrefix = true\n\trenames = false\n\
         \trelative = true\n\tcontext = 9\n\talgorithm = patience\n\
         [commit]\n\tgpgSign = true\n[gpg]\n\tprogram = false\n\
         [status]\n\tshowUntrackedFiles = no\n[advice]\n\taddEmbeddedRepo = true\n",
        hooks.display()
    ));
    fs::write(&w.gitconfig, config).unwrap();
    let before = w.capture();
    let snaps = Run::new(&w, 1, 1).around(|_| {
        w.write("ünï.txt", "b\n");
        fs::rename(w.path("README"), w.path("README.md")).unwrap();
    });
    let c = changes::run_changes(&w.git, &snaps).unwrap();
    let patch = String::from_utf8(c.patch.clone()).unwrap();
    assert!(!patch.contains('\x1b'), "no colour");
    assert!(patch.contains("diff --git a/ünï.txt b/ünï.txt"), "{patch}");
    assert!(c.files.iter().any(|f| f.status == Status::Renamed));
    assert!(!w.hook_ran(), "a hook ran");
    changes::revert(&w.git, &snaps, &labels()).unwrap();
    assert!(!w.hook_ran(), "a hook ran");
    before.assert_same(&w.capture(), &[]);
}

impl World {
    /// The files of a plain directory (no repository to compare).
    fn capture_plain(&self) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        for e in fs::read_dir(&self.root).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                out.insert(PathBuf::from(e.file_name()), fs::read(e.path()).unwrap());
            }
        }
        out
    }
}
