//! Snapshots of a git work tree: its files at a moment (untracked included, ignored excluded) as
//! a commit under a private ref, made through a private index that lives on per project.
//!
//! The private index is a copy of the user's index at first (so git's stat cache is valid from
//! the start and only changed files are hashed), then ours alone: `git add -A` into it,
//! `write-tree`, `commit-tree`, and one `update-ref` transaction that sets the snapshot's ref and
//! a keep-alive ref of the project. The keep-alive ref keeps every object the private index
//! refers to reachable, so a `git gc` by the user can never leave the index pointing at pruned
//! objects (its cached trees would then build snapshots with holes).
//!
//! Never touched: the user's index (only copied), HEAD, branches, stash, files. Written: objects,
//! refs under the given names, and the files in the private index's directory.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::Flock;

use super::private::{create_private_dir, lock, replace_file};
use super::{Method, Snapshot};
use crate::git::objects::{update_refs, RefChange};
use crate::git::{io_error, Repo, Result};

const INDEX: &str = "index";
const LOCK: &str = "lock";
/// The work tree the private index describes: a different one (the project's directory now in
/// another repository) starts a new index.
const OWNER: &str = "work-tree";

/// Who snapshot commits are by: fixed, so a repository without `user.email` works and nobody
/// mistakes them for the user's commits.
pub const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "claude-tasks"),
    ("GIT_AUTHOR_EMAIL", "claude-tasks@localhost"),
    ("GIT_COMMITTER_NAME", "claude-tasks"),
    ("GIT_COMMITTER_EMAIL", "claude-tasks@localhost"),
];

/// Settings for commands on the private index: a split index would tie it to the user's
/// shared index files.
const PRIVATE_INDEX_CONFIG: [&str; 2] = ["-c", "core.splitIndex=false"];

/// A project's private index: a directory of ours (`index`, `lock`, `work-tree`).
#[derive(Debug, Clone)]
pub struct PrivateIndex {
    pub dir: PathBuf,
}

/// Where a snapshot goes and what it says.
pub struct Take<'a> {
    /// The snapshot's ref (`refs/claude-tasks/<key>/<id>/<run>/start`).
    pub ref_name: &'a str,
    /// The keep-alive ref of the private index's objects (`refs/claude-tasks/<key>/index`
    /// for a project's; it may be `ref_name` itself for an index used by one task only).
    pub keep_ref: &'a str,
    /// Parent commit; `None` is HEAD's commit (none in a repository without commits).
    pub parent: Option<&'a str>,
    pub message: &'a str,
}

impl PrivateIndex {
    pub fn new(dir: &Path) -> PrivateIndex {
        PrivateIndex {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(INDEX)
    }

    /// Records the work tree of `repo` as a commit (see the module's doc). Several callers may
    /// snapshot one project at once: they take turns on the index's lock.
    pub fn snapshot(&self, repo: &Repo, take: &Take<'_>) -> Result<Snapshot> {
        let mut captured = self.capture(repo)?;
        // Both halves run now: an index found unusable at `write-tree` may be seeded again and
        // the work tree read anew.
        captured.now = true;
        captured.commit(take)
    }

    /// The first half of a snapshot, the only one that reads the work tree: its files go into
    /// the private index (`git add -A`). The index stays locked until [`Captured::commit`] (or
    /// the drop of what this returns).
    pub fn capture(&self, repo: &Repo) -> Result<Captured> {
        create_private_dir(&self.dir)?;
        let lock = lock(&self.dir.join(LOCK))?;
        let index = self.path();
        // A git killed while writing our index leaves this behind; with the lock held nobody
        // else can be writing it.
        let _ = fs::remove_file(self.dir.join("index.lock"));
        let owner = self.dir.join(OWNER);
        let owned = fs::read(&owner).ok();
        let top = repo.top.as_os_str().as_encoded_bytes();
        let mut seeded = false;
        if owned.as_deref() != Some(top) || !index.exists() {
            self.seed(repo)?;
            replace_file(&owner, top)?;
            seeded = true;
        }
        match self.add_all(repo) {
            Ok(()) => {}
            // An index of ours that git cannot read (corrupt): start it again once.
            Err(_) if !seeded => {
                self.seed(repo)?;
                seeded = true;
                self.add_all(repo)?
            }
            Err(e) => return Err(e),
        }
        Ok(Captured {
            index: self.clone(),
            repo: repo.clone(),
            seeded,
            now: false,
            _lock: lock,
        })
    }

    /// `git add -A` into the private index.
    fn add_all(&self, repo: &Repo) -> Result<()> {
        repo.cmd()
            .args(PRIVATE_INDEX_CONFIG)
            .args(["add", "-A"])
            .index(&self.path())
            .run()
            .map(drop)
    }

    /// The private index as a tree. Reads the index and the repository's objects only.
    fn write_tree(&self, repo: &Repo) -> Result<String> {
        let index = self.path();
        repo.cmd()
            .args(PRIVATE_INDEX_CONFIG)
            .arg("write-tree")
            .index(&index)
            .run_line()
    }

    /// Starts the private index from a copy of the user's (its stat data spares hashing every
    /// file again), or empty when there is none or it is split (its entries then live in
    /// shared files of the repository that our copy must not depend on).
    fn seed(&self, repo: &Repo) -> Result<()> {
        let index = self.path();
        let _ = fs::remove_file(&index);
        let user = repo.git_dir.join("index");
        if !user.exists() || split_index(repo)? {
            return Ok(());
        }
        let tmp = self.dir.join("index.seed");
        if let Err(e) = copy_keeping_mtime(&user, &tmp) {
            let _ = fs::remove_file(&tmp);
            // The user's index may vanish or change under us (a commit being made); start empty.
            crate::log_warn!(
                "snapshot: cannot copy {} ({e}); hashing every file instead",
                user.display()
            );
            return Ok(());
        }
        fs::rename(&tmp, &index).map_err(|e| io_error("rename", &tmp, e))
    }
}

/// A snapshot whose files are in the private index (their blobs written), not yet its tree,
/// commit and refs. What is left reads only the index and the repository's objects, never the
/// work tree, so it may run while the CLI already works: a run's prompt waits only for the
/// capture.
pub struct Captured {
    index: PrivateIndex,
    repo: Repo,
    /// The index was seeded from the user's for this snapshot.
    seeded: bool,
    /// The commit follows the capture at once (`PrivateIndex::snapshot`).
    now: bool,
    _lock: Flock<File>,
}

impl Captured {
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The snapshot's tree, commit and refs; the private index is unlocked after them.
    pub fn commit(self, take: &Take<'_>) -> Result<Snapshot> {
        match self.make(take) {
            Ok(snapshot) => Ok(snapshot),
            // An index of ours that git cannot build from (its objects gone: our keep-alive
            // ref deleted and the objects pruned). When this is still the moment of the
            // capture, it is seeded again and the work tree read anew; else this snapshot fails
            // (a work tree read now could hold the CLI's first edits) and the next capture
            // starts from a seed.
            Err(_) if !self.seeded && self.now => {
                self.index.seed(&self.repo)?;
                self.index.add_all(&self.repo)?;
                self.make(take)
            }
            Err(e) => {
                let _ = fs::remove_file(self.index.path());
                Err(e)
            }
        }
    }

    fn make(&self, take: &Take<'_>) -> Result<Snapshot> {
        let (repo, index) = (&self.repo, self.index.path());
        let tree = self.index.write_tree(repo)?;
        // git wrote the index as the umask says; it lists the user's file names.
        fs::set_permissions(&index, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error("protect", &index, e))?;
        // The parent is HEAD now, which may be a few ms later than the capture: it only tells
        // a person browsing our refs where the work tree stood; every diff reads the trees.
        let parent = match take.parent {
            Some(p) => Some(p.to_string()),
            None => repo.resolve("HEAD")?,
        };
        let mut cmd = repo
            .cmd()
            .args(["commit-tree", "--no-gpg-sign", "-m", take.message]);
        if let Some(p) = &parent {
            cmd = cmd.args(["-p", p]);
        }
        for (k, v) in IDENTITY {
            cmd = cmd.env(k, v);
        }
        let commit = cmd.arg(&tree).run_line()?;
        let mut refs = vec![RefChange::Set {
            name: take.ref_name,
            new: &commit,
        }];
        if take.keep_ref != take.ref_name {
            refs.push(RefChange::Set {
                name: take.keep_ref,
                new: &commit,
            });
        }
        update_refs(repo, &refs)?;
        Ok(Snapshot {
            method: Method::Git,
            commit,
            git_dir: repo.git_dir.clone(),
            work_tree: repo.top.clone(),
        })
    }
}

/// True when the repository asks for a split index.
fn split_index(repo: &Repo) -> Result<bool> {
    let out = repo
        .cmd()
        .args(["config", "--type=bool", "--get", "core.splitIndex"])
        .output()?;
    Ok(out.success() && out.stdout.starts_with(b"true"))
}

/// Copies `from` to `to` and gives the copy `from`'s modification time: git trusts an index
/// entry's stat data only if the file is older than the index, so a newer copy would hide a
/// change made in the same instant the user's index was written (git's "racy clean" case).
fn copy_keeping_mtime(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let mtime: SystemTime = src.metadata()?.modified()?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.set_modified(mtime)?;
    dst.sync_all()
}
