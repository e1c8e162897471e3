//! Scaffolding for the git tests (`mod gitrepo;`): temporary repositories made with the git on
//! PATH, isolated from the machine's git configuration, and [`UserState`], the user's side of a
//! repository (index bytes, HEAD, branches, stash, files) captured before and compared after
//! every operation.
//!
//! Every git command goes through the library's runner: the backend's reaper (started by the
//! first command) reaps all children, so `std::process::Command::output` would race it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use claude_tasks::git::{Git, Repo};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = fs::canonicalize(std::env::temp_dir()).unwrap();
        let p = base.join(format!("ct-git-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A test's world: the user's work tree `root`, a state directory of ours, and a `Git` whose
/// global configuration is a file of the test's own.
pub struct World {
    pub tmp: TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
    pub git: Git,
    pub gitconfig: PathBuf,
}

impl World {
    /// An empty directory (no repository yet).
    pub fn plain(name: &str) -> World {
        let tmp = TempDir::new(name);
        let root = tmp.0.join("work");
        let state = tmp.0.join("state");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&state).unwrap();
        let gitconfig = tmp.0.join("gitconfig");
        fs::write(
            &gitconfig,
            "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n",
        )
        .unwrap();
        let git = Git::new()
            .env("GIT_CONFIG_GLOBAL", &gitconfig)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &tmp.0);
        World {
            tmp,
            root,
            state,
            git,
            gitconfig,
        }
    }

    /// A repository with no commit yet.
    pub fn empty_repo(name: &str) -> World {
        let w = World::plain(name);
        w.git_ok(&w.root, &["init", "-q"]);
        w.git_ok(&w.root, &["config", "user.name", "The User"]);
        w.git_ok(&w.root, &["config", "user.email", "user@example.com"]);
        w
    }

    /// A repository with one commit: `README`, `src/lib.rs` (20 lines), `.gitignore`
    /// ignoring `target/` and `*.log`.
    pub fn repo(name: &str) -> World {
        let w = World::empty_repo(name);
        w.write("README", "read me\n");
        w.write("src/lib.rs", &numbered(20));
        w.write(".gitignore", "target/\n*.log\n");
        w.commit_all("first");
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Runs git as the user would (their identity), in `dir`; panics on failure.
    pub fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .git
            .cmd(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "The User")
            .env("GIT_AUTHOR_EMAIL", "user@example.com")
            .env("GIT_COMMITTER_NAME", "The User")
            .env("GIT_COMMITTER_EMAIL", "user@example.com")
            .run()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_ok(&self.root, args)
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }

    pub fn repo_handle(&self) -> Repo {
        Repo::discover(&self.git, &self.root).unwrap()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A hooks directory whose `names` hooks fail and leave `$HOME/hook-ran` behind; see
    /// [`World::hook_ran`].
    pub fn failing_hooks(&self, names: &[&str]) -> PathBuf {
        let hooks = self.tmp.0.join("hooks");
        fs::create_dir_all(&hooks).unwrap();
        for hook in names {
            let p = hooks.join(hook);
            fs::write(&p, "#!/bin/sh\ntouch \"$HOME/hook-ran\"\nexit 1\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        hooks
    }

    pub fn hook_ran(&self) -> bool {
        self.tmp.0.join("hook-ran").exists()
    }

    pub fn capture(&self) -> UserState {
        UserState::capture(self, &self.root)
    }
}

/// `line 1\n` … `line n\n`.
pub fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

/// A file as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    File { bytes: Vec<u8>, mode: u32 },
    Link(PathBuf),
    Dir,
}

/// The user's side of a repository: what no operation may change unless asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub index: Option<Vec<u8>>,
    pub head_file: Vec<u8>,
    pub head: String,
    pub branches: String,
    pub stash: String,
    pub files: BTreeMap<PathBuf, FileState>,
}

impl UserState {
    /// Captures the work tree at `top` and its repository.
    pub fn capture(w: &World, top: &Path) -> UserState {
        let git_dir = PathBuf::from(
            w.git_ok(top, &["rev-parse", "--absolute-git-dir"])
                .trim()
                .to_string(),
        );
        let head = w
            .git
            .cmd(top)
            .args(["rev-parse", "-q", "--verify", "HEAD"])
            .output()
            .unwrap();
        let mut files = BTreeMap::new();
        walk(top, top, &mut files);
        UserState {
            index: fs::read(git_dir.join("index")).ok(),
            head_file: fs::read(git_dir.join("HEAD")).unwrap(),
            head: String::from_utf8_lossy(&head.stdout).into_owned(),
            // Columns of `git branch -v` widen with the longest name: compare words.
            branches: w
                .git_ok(top, &["branch", "-a", "-v", "--no-abbrev"])
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
                .collect::<String>()
                + &w.git_ok(
                    top,
                    &[
                        "for-each-ref",
                        "--format=%(refname) %(objectname)",
                        "refs/heads",
                    ],
                ),
            stash: w.git_ok(top, &["stash", "list"])
                + &w.git_ok(top, &["for-each-ref", "refs/stash"]),
            files,
        }
    }

    /// The same state without the branches of worktree tasks (`claude-tasks/…`), for tests
    /// where the task's own branch is meant to come and go.
    pub fn without_task_branches(mut self) -> UserState {
        self.branches = self
            .branches
            .lines()
            .filter(|l| !l.contains("claude-tasks/"))
            .map(|l| format!("{l}\n"))
            .collect();
        self
    }

    /// Panics with the differences if anything but the files in `changed` differs.
    pub fn assert_same(&self, after: &UserState, changed: &[&str]) {
        assert!(self.index == after.index, "the user's index changed");
        assert_eq!(self.head_file, after.head_file, "HEAD changed");
        assert_eq!(self.head, after.head, "HEAD's commit changed");
        assert_eq!(self.branches, after.branches, "branches changed");
        assert_eq!(self.stash, after.stash, "the stash changed");
        self.assert_files_same(after, changed);
    }

    /// Only the files: for operations that are meant to change the index or HEAD.
    pub fn assert_files_same(&self, after: &UserState, changed: &[&str]) {
        let changed: Vec<PathBuf> = changed.iter().map(PathBuf::from).collect();
        let keys: std::collections::BTreeSet<&PathBuf> =
            self.files.keys().chain(after.files.keys()).collect();
        for k in keys {
            if changed.iter().any(|c| k == c || k.starts_with(c)) {
                continue;
            }
            // A directory that only holds changed files may come and go with them.
            if matches!(
                (self.files.get(k), after.files.get(k)),
                (Some(FileState::Dir), None) | (None, Some(FileState::Dir))
            ) && changed.iter().any(|c| c.starts_with(k))
            {
                continue;
            }
            assert_eq!(
                self.files.get(k),
                after.files.get(k),
                "{} changed, and it was not meant to",
                k.display()
            );
        }
    }
}

fn walk(top: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, FileState>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(top).unwrap().to_path_buf();
        if rel == Path::new(".git") {
            continue;
        }
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(rel, FileState::Link(fs::read_link(&p).unwrap()));
        } else if meta.is_dir() {
            out.insert(rel, FileState::Dir);
            walk(top, &p, out);
        } else {
            out.insert(
                rel,
                FileState::File {
                    bytes: fs::read(&p).unwrap(),
                    mode: meta.permissions().mode(),
                },
            );
        }
    }
}
