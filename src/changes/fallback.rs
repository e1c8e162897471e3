//! The fallback outside a git work tree: the files a run names (its Write, Edit, MultiEdit and
//! NotebookEdit calls), each kept as it was before the run's first edit of it, in a private git
//! repository in the run's directory; at the run's end the same files as they are then.
//!
//! Both states become commits of that private repository, so diff, content and revert work on
//! them exactly as on snapshots of a git work tree. A file that did not exist before its first
//! edit is absent from the start commit; one deleted by the run is absent from the end commit.
//! Files the run changed without naming them (through Bash) are not seen: that is the
//! fallback's limit.
//!
//! Never touched: the user's files (only read), anything outside the run's directory.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::private::{create_private_dir, lock, replace_file};
use super::snapshot::IDENTITY;
use super::{Method, Snapshot};
use crate::git::objects::{update_refs, RefChange};
use crate::git::{io_error, Git, Repo, Result};

const REPO: &str = "repo.git";
const START_INDEX: &str = "start.index";
const END_INDEX: &str = "end.index";
/// The run's named files so far, relative to the root, each followed by a NUL.
const SEEN: &str = "seen";
const LOCK: &str = "lock";
const START_REF: &str = "refs/claude-tasks/start";
const END_REF: &str = "refs/claude-tasks/end";

/// A run's kept files: `root` is the task's directory, `dir` the run's own directory of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBackup {
    pub root: PathBuf,
    pub dir: PathBuf,
}

/// What `keep` did with the paths it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Newly kept (relative to the root); a path already kept in this run is not repeated.
    pub kept: Vec<PathBuf>,
    /// Paths left out, with the reason (outside the task's directory, a directory).
    pub ignored: Vec<(PathBuf, String)>,
}

impl FileBackup {
    /// Prepares `dir` (created if needed) for a run in `root`.
    pub fn create(git: &Git, root: &Path, dir: &Path) -> Result<FileBackup> {
        create_private_dir(dir)?;
        let repo = dir.join(REPO);
        if !repo.join("HEAD").exists() {
            git.cmd(dir)
                // Copies of the user's files: only the user may read them, whatever the umask
                // (git then makes every file it writes for this repository, our index files
                // included, 0600 and every directory 0700).
                .args(["init", "--bare", "--quiet", "--template=", "--shared=0600"])
                .arg(&repo)
                .run()?;
        }
        Ok(FileBackup::open(root, dir))
    }

    /// A backup made earlier (after a restart of the backend, for instance).
    pub fn open(root: &Path, dir: &Path) -> FileBackup {
        FileBackup {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    fn repo(&self, git: &Git) -> Repo {
        Repo::at(git, &self.dir.join(REPO), &self.root)
    }

    /// Keeps the current content of every path not kept yet in this run (call it before the
    /// edit happens). A path that does not exist is remembered as absent: the run creates it.
    pub fn keep(&self, git: &Git, paths: &[PathBuf]) -> Result<Kept> {
        let _lock = lock(&self.dir.join(LOCK))?;
        let seen_path = self.dir.join(SEEN);
        let mut seen = read_seen(&seen_path)?;
        let root = fs::canonicalize(&self.root).map_err(|e| io_error("resolve", &self.root, e))?;
        let mut out = Kept::default();
        let mut present = Vec::new();
        for p in paths {
            let Some(rel) = relative_to(&root, p) else {
                out.ignored
                    .push((p.clone(), "outside the task's directory".into()));
                continue;
            };
            if seen.contains(rel.as_os_str().as_bytes()) || out.kept.contains(&rel) {
                continue;
            }
            match fs::symlink_metadata(root.join(&rel)) {
                Ok(m) if m.is_dir() => {
                    out.ignored.push((p.clone(), "a directory".into()));
                    continue;
                }
                Ok(_) => present.push(rel.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("read", &root.join(&rel), e)),
            }
            out.kept.push(rel);
        }
        if out.kept.is_empty() {
            return Ok(out);
        }
        self.add(git, &self.dir.join(START_INDEX), &present)?;
        // Only once their content is safe are the paths marked as kept.
        let mut bytes = fs::read(&seen_path).unwrap_or_default();
        for rel in &out.kept {
            bytes.extend_from_slice(rel.as_os_str().as_bytes());
            bytes.push(0);
            seen.insert(rel.as_os_str().as_bytes().to_vec());
        }
        replace_file(&seen_path, &bytes)?;
        Ok(out)
    }

    /// The paths kept so far in this run.
    pub fn kept(&self) -> Result<Vec<PathBuf>> {
        let seen = read_seen(&self.dir.join(SEEN))?;
        let mut v: Vec<PathBuf> = seen
            .into_iter()
            .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Records the kept files as they are now, and returns the run's start and end snapshots.
    /// Can be called again (after a crash in the middle): it records the present state anew.
    pub fn finish(&self, git: &Git, message: &str) -> Result<(Snapshot, Snapshot)> {
        let _lock = lock(&self.dir.join(LOCK))?;
        let repo = self.repo(git);
        let paths = self.kept()?;
        let present: Vec<PathBuf> = paths
            .into_iter()
            .filter(|p| fs::symlink_metadata(self.root.join(p)).is_ok_and(|m| !m.is_dir()))
            .collect();
        let end_index = self.dir.join(END_INDEX);
        let _ = fs::remove_file(&end_index);
        self.add(git, &end_index, &present)?;
        let start_tree = write_tree(&repo, &self.dir.join(START_INDEX))?;
        let end_tree = write_tree(&repo, &end_index)?;
        let start = commit(&repo, &start_tree, None, &format!("{message} (before)"))?;
        let end = commit(
            &repo,
            &end_tree,
            Some(&start),
            &format!("{message} (after)"),
        )?;
        update_refs(
            &repo,
            &[
                RefChange::Set {
                    name: START_REF,
                    new: &start,
                },
                RefChange::Set {
                    name: END_REF,
                    new: &end,
                },
            ],
        )?;
        let snap = |commit: String| Snapshot {
            method: Method::Files,
            commit,
            git_dir: repo.git_dir.clone(),
            work_tree: self.root.clone(),
        };
        Ok((snap(start), snap(end)))
    }

    /// Adds the current content of `paths` (relative to the root, all existing) to `index`.
    fn add(&self, git: &Git, index: &Path, paths: &[PathBuf]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut input = Vec::new();
        for p in paths {
            input.extend_from_slice(p.as_os_str().as_bytes());
            input.push(0);
        }
        self.repo(git)
            .cmd()
            .args(["update-index", "--add", "--remove", "-z", "--stdin"])
            .index(index)
            .stdin(input)
            .run()
            .map(drop)
    }
}

fn write_tree(repo: &Repo, index: &Path) -> Result<String> {
    // A missing index file is an empty one: the empty tree.
    repo.cmd().arg("write-tree").index(index).run_line()
}

fn commit(repo: &Repo, tree: &str, parent: Option<&str>, message: &str) -> Result<String> {
    let mut cmd = repo
        .cmd()
        .args(["commit-tree", "--no-gpg-sign", "-m", message]);
    if let Some(p) = parent {
        cmd = cmd.args(["-p", p]);
    }
    for (k, v) in IDENTITY {
        cmd = cmd.env(k, v);
    }
    cmd.arg(tree).run_line()
}

fn read_seen(path: &Path) -> Result<HashSet<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(crate::git::split_nul(&bytes)
            .filter(|r| !r.is_empty())
            .map(<[u8]>::to_vec)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// `path` (absolute, or relative to `root`) relative to `root` (canonical), `None` outside it.
/// The file need not exist: its deepest existing ancestor is resolved (symbolic links, `..`),
/// the rest is taken by name.
pub fn relative_to(root: &Path, path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match fs::canonicalize(existing) {
            Ok(p) => break p,
            Err(_) => {
                rest.push(existing.file_name()?.to_os_string());
                existing = existing.parent()?;
            }
        }
    };
    let mut full = resolved;
    for name in rest.iter().rev() {
        full.push(name);
    }
    let rel = full.strip_prefix(root).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_inside_the_root_only() {
        let root = fs::canonicalize(std::env::temp_dir()).unwrap();
        let sub = root.join(format!("ct-rel-{}", std::process::id()));
        fs::create_dir_all(&sub).unwrap();
        let rel = sub.strip_prefix(&root).unwrap().to_path_buf();
        assert_eq!(
            relative_to(&root, &sub.join("new/dir/f.txt")),
            Some(rel.join("new/dir/f.txt"))
        );
        assert_eq!(
            relative_to(&root, Path::new("a/../b.txt")),
            Some(PathBuf::from("b.txt"))
        );
        assert_eq!(relative_to(&sub, Path::new("/etc/passwd")), None);
        assert_eq!(relative_to(&sub, Path::new("../x")), None);
        assert_eq!(relative_to(&sub, &sub), None);
        fs::remove_dir_all(&sub).unwrap();
    }
}
